#include "p9/testing/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "base/io.h"

namespace pinata::p9::testing {

TestClient::TestClient(UniqueFd fd, uint32_t msize) : fd_(std::move(fd)), msize_(msize) {}

TestClient::TestClient(UniqueFd read_fd, UniqueFd write_fd, uint32_t msize)
    : fd_(std::move(read_fd)), write_fd_(std::move(write_fd)), msize_(msize) {}

uint16_t TestClient::new_tag() {
  if (next_tag_ == kNoTag) next_tag_ = 1;
  return next_tag_++;
}

Status TestClient::send(uint16_t tag, const TMessage& message) {
  std::vector<uint8_t> frame = encode_tmessage(tag, message);
  return send_raw(frame);
}

Status TestClient::send_raw(std::span<const uint8_t> bytes) {
  return write_all(write_fd_ ? write_fd_.get() : fd_.get(),
                   std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

Result<RFrame> TestClient::receive(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (buf_.size() >= 4) {
      TRY_ASSIGN(Header h, decode_header(buf_));
      if (h.size > msize_ + 4096) return fail(ErrorKind::kInvalidInput, "reply too large");
      if (buf_.size() >= h.size) {
        std::vector<uint8_t> frame(buf_.begin(), buf_.begin() + h.size);
        buf_.erase(buf_.begin(), buf_.begin() + h.size);
        return decode_rmessage(frame, msize_ + 4096);
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return fail(ErrorKind::kTimeout, "no reply from the server");
    struct pollfd pfd = {fd_.get(), POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(left));
    if (r < 0 && errno != EINTR) return fail_errno("poll");
    if (r <= 0) continue;
    uint8_t chunk[65536];
    ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
    if (n == 0) return fail(ErrorKind::kIo, "server closed the connection");
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("read");
    }
    buf_.insert(buf_.end(), chunk, chunk + n);
  }
}

bool TestClient::wait_for_eof(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return false;
    struct pollfd pfd = {fd_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
    uint8_t chunk[4096];
    ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
  }
}

bool TestClient::quiet_for(int timeout_ms) {
  if (buf_.size() > 0) return false;
  struct pollfd pfd = {fd_.get(), POLLIN, 0};
  return ::poll(&pfd, 1, timeout_ms) == 0;
}

Result<RMessage> TestClient::call(const TMessage& message) {
  uint16_t tag = std::holds_alternative<Tversion>(message) ? kNoTag : new_tag();
  TRY(send(tag, message));
  TRY_ASSIGN(RFrame reply, receive());
  if (reply.tag != tag) {
    return fail(ErrorKind::kInvalidInput, "reply tag " + std::to_string(reply.tag) +
                                              " for request tag " + std::to_string(tag));
  }
  return std::move(reply.message);
}

Status TestClient::handshake(uint32_t fid, const std::string& aname) {
  TRY_ASSIGN(Rversion v, call_as<Rversion>(Tversion{msize_, std::string(kVersion9P2000L)}));
  if (v.version != kVersion9P2000L) return fail(ErrorKind::kInvalidInput, "version refused");
  msize_ = v.msize;
  TRY(call_as<Rattach>(Tattach{fid, kNoFid, "user", aname, kNoUname}));
  return {};
}

Result<std::vector<Qid>> TestClient::walk(uint32_t fid, uint32_t newfid, const std::string& path) {
  Twalk w{fid, newfid, {}};
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) w.names.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  TRY_ASSIGN(Rwalk r, call_as<Rwalk>(w));
  return r.qids;
}

Result<std::vector<Dirent>> TestClient::readdir_all(uint32_t fid, uint32_t count) {
  std::vector<Dirent> out;
  uint64_t offset = 0;
  for (int i = 0; i < 100000; i++) {
    TRY_ASSIGN(Rreaddir r, call_as<Rreaddir>(Treaddir{fid, offset, count}));
    if (r.data.empty()) return out;
    TRY_ASSIGN(std::vector<Dirent> batch, decode_dirents(r.data));
    for (auto& d : batch) {
      offset = d.offset;
      out.push_back(std::move(d));
    }
  }
  return fail(ErrorKind::kInvalidInput, "readdir does not end");
}

}  // namespace pinata::p9::testing
