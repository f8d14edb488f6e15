#include "ports/wire.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace pinata::ports {

std::string format_header(const Destination& destination) {
  return std::string(proto_name(destination.proto)) + ":" + format_endpoint(destination.endpoint) +
         "\n";
}

Result<Destination> parse_header(std::string_view line) {
  if (line.size() + 1 > kMaxHeaderBytes) {
    return fail(ErrorKind::kInvalidInput, "header of " + std::to_string(line.size()) +
                                              " bytes is too long (at most " +
                                              std::to_string(kMaxHeaderBytes - 1) + ")");
  }
  size_t first = line.find(':');
  size_t last = line.rfind(':');
  if (first == std::string_view::npos || first == last) {
    return fail(ErrorKind::kInvalidInput, "header is not proto:ipv4:port");
  }
  Destination d;
  TRY_ASSIGN(d.proto, parse_proto(line.substr(0, first)));
  TRY_ASSIGN(d.endpoint.ip, parse_ipv4(line.substr(first + 1, last - first - 1)));
  TRY_ASSIGN(d.endpoint.port, parse_port(line.substr(last + 1)));
  return d;
}

Result<Destination> read_header(int fd, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char line[kMaxHeaderBytes];
  size_t len = 0;
  for (;;) {
    ssize_t n = ::recv(fd, line + len, 1, MSG_DONTWAIT);
    if (n == 1) {
      if (line[len] == '\n') return parse_header(std::string_view(line, len));
      if (++len == kMaxHeaderBytes) {
        return fail(ErrorKind::kInvalidInput,
                    "no newline in the first " + std::to_string(kMaxHeaderBytes) + " bytes");
      }
      continue;
    }
    if (n == 0) return fail(ErrorKind::kInvalidInput, "connection closed inside the header");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return fail_errno("reading the header");
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return fail(ErrorKind::kTimeout, "no complete header in time");
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count()) + 1) < 0 && errno != EINTR) {
      return fail_errno("poll");
    }
  }
}

bool append_frame(std::string& out, std::string_view payload) {
  if (payload.size() > kMaxFramePayload) return false;
  out += static_cast<char>(payload.size() >> 8);
  out += static_cast<char>(payload.size() & 0xff);
  out.append(payload);
  return true;
}

void FrameDecoder::feed(std::string_view bytes) {
  // Drop what was returned before growing, so the buffer stays one partial frame + `bytes`.
  if (start_ > 0) {
    buf_.erase(0, start_);
    start_ = 0;
  }
  buf_.append(bytes);
}

std::optional<std::string_view> FrameDecoder::next() {
  size_t avail = buf_.size() - start_;
  if (avail < kFrameHeaderBytes) return std::nullopt;
  size_t len = (static_cast<size_t>(static_cast<uint8_t>(buf_[start_])) << 8) |
               static_cast<uint8_t>(buf_[start_ + 1]);
  if (avail < kFrameHeaderBytes + len) return std::nullopt;
  std::string_view payload(buf_.data() + start_ + kFrameHeaderBytes, len);
  start_ += kFrameHeaderBytes + len;
  return payload;
}

}  // namespace pinata::ports
