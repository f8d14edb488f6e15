#include "daemon/guest_link.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <cstdio>

#include "base/io.h"

namespace pinata {

std::string vsock_forward_path(const std::string& vsock_dir, unsigned port, unsigned cid) {
  char name[32];
  std::snprintf(name, sizeof name, "%08x.%08x", cid, port);
  return path_join(vsock_dir, name);
}

Result<UniqueFd> GuestLink::connect_docker() const { return unix_connect(docker_forward_); }

Result<bool> GuestLink::ping_docker(std::chrono::milliseconds timeout) const {
  TRY_ASSIGN(UniqueFd fd, connect_docker());
  struct timeval tv;
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  TRY(write_all(fd.get(), "GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"));
  // Before dockerd listens the guest closes (or resets) the connection: "not yet".
  auto reply = read_all(fd.get(), 1 << 16);
  if (!reply) return false;
  return reply->rfind("HTTP/1.", 0) == 0 && reply->find(" 200 ") != std::string::npos &&
         reply->size() >= 2 && reply->substr(reply->size() - 2) == "OK";
}

}  // namespace pinata
