#include "daemon/guest_link.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cstring>

#include "base/io.h"

namespace pinata {
namespace {

void set_timeouts(int fd, std::chrono::milliseconds timeout) {
  struct timeval tv;
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

Result<UniqueFd> GuestLink::open(const std::string& command) const {
  TRY_ASSIGN(UniqueFd fd, tcp_connect("127.0.0.1", port_));
  TRY(write_all(fd.get(), token_ + " " + command + "\n"));
  return fd;
}

Result<UniqueFd> GuestLink::connect_docker() const { return open("docker"); }

Result<bool> GuestLink::ping_docker(std::chrono::milliseconds timeout) const {
  TRY_ASSIGN(UniqueFd fd, open("docker"));
  set_timeouts(fd.get(), timeout);
  TRY(write_all(fd.get(), "GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"));
  // QEMU accepts the forwarded connection even when nothing listens in the guest, and
  // closes it at once: an empty answer means "not yet".
  auto reply = read_all(fd.get(), 1 << 16);
  if (!reply) return false;
  return reply->rfind("HTTP/1.", 0) == 0 && reply->find(" 200 ") != std::string::npos &&
         reply->size() >= 2 && reply->substr(reply->size() - 2) == "OK";
}

Status GuestLink::request_shutdown(std::chrono::milliseconds timeout) const {
  TRY_ASSIGN(UniqueFd fd, open("shutdown"));
  set_timeouts(fd.get(), timeout);
  auto line = read_line(fd.get(), 64);
  if (!line) return fail(line.error().context("guest did not acknowledge the shutdown"));
  if (*line != "ok") return fail(ErrorKind::kInvalidInput, "guest answered '" + *line + "'");
  return {};
}

Result<std::string> make_token() {
  unsigned char raw[16];
  if (::getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) {
    return fail_errno("getrandom");
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : raw) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

Result<int> pick_free_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  struct sockaddr_in addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) {
    return fail_errno("bind 127.0.0.1:0");
  }
  socklen_t len = sizeof addr;
  if (::getsockname(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), &len) != 0) {
    return fail_errno("getsockname");
  }
  return static_cast<int>(ntohs(addr.sin_port));
}

}  // namespace pinata
