#include "guest/docker_vsock.h"

#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "base/io.h"
#include "base/log.h"
#include "base/splice_proxy.h"
#include "guest/boot_clock.h"

namespace pinata::guest {
namespace {

constexpr auto kRetry = std::chrono::milliseconds(50);
constexpr int kMaxListenAttempts = 600;  // 30 s: the transport module loads in the background

struct sockaddr_vm vsock_address(unsigned cid, unsigned port) {
  struct sockaddr_vm addr;
  std::memset(&addr, 0, sizeof addr);
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = cid;
  addr.svm_port = port;
  return addr;
}

void serve(UniqueFd listener, std::string docker_socket) {
  for (;;) {
    int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      log::error("docker-vsock: accept: %s", strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // e.g. EMFILE
      continue;
    }
    UniqueFd conn(fd);
    auto docker = unix_connect(docker_socket);
    if (!docker) continue;  // dockerd isn't up yet: close, the host retries
    proxy_streams_detached(std::move(conn), std::move(*docker));
  }
}

}  // namespace

Result<UniqueFd> vsock_listen(unsigned port) {
  UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket(AF_VSOCK)");
  struct sockaddr_vm addr = vsock_address(VMADDR_CID_ANY, port);
  if (::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) {
    return fail_errno("bind vsock port " + std::to_string(port));
  }
  if (::listen(fd.get(), 512) != 0) return fail_errno("listen");
  return fd;
}

Result<UniqueFd> vsock_connect(unsigned cid, unsigned port) {
  UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket(AF_VSOCK)");
  struct sockaddr_vm addr = vsock_address(cid, port);
  if (::connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) {
    return fail_errno("connect to vsock " + std::to_string(cid) + ":" + std::to_string(port));
  }
  return fd;
}

void start_docker_vsock_service(const DockerVsockConfig& config) {
  std::thread([config]() {
    Result<UniqueFd> listener = fail(ErrorKind::kInternal, "not tried");
    for (int attempt = 0; attempt < kMaxListenAttempts; attempt++) {
      listener = vsock_listen(config.port);
      if (listener) break;
      std::this_thread::sleep_for(kRetry);
    }
    if (!listener) {
      log::error("docker-vsock: %s: the Docker API is unreachable from the host",
                 listener.error().message().c_str());
      return;
    }
    step("docker-vsock: listening on vsock port %u", config.port);
    serve(std::move(*listener), config.docker_socket);
  }).detach();
}

}  // namespace pinata::guest
