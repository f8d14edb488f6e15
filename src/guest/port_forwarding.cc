#include "guest/port_forwarding.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include "base/io.h"
#include "base/log.h"
#include "guest/boot_clock.h"
#include "guest/docker_vsock.h"
#include "ports/guest_forwarder.h"
#include "ports/wire.h"

namespace pinata::guest {
namespace {
constexpr unsigned kHostCid = 2;
}  // namespace

bool mount_port_tree(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Result<UniqueFd> conn = fail(ErrorKind::kInternal, "not tried");
  while (true) {
    conn = vsock_connect(kHostCid, ports::kControlVsockPort);
    if (conn || std::chrono::steady_clock::now() >= deadline) break;
    // A reset: the transport works and nothing listens (pinata-net absent): don't wait.
    if (conn.error().code() == ECONNRESET || conn.error().code() == ECONNREFUSED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!conn) {
    log::warn("ports: %s; published ports will be reachable inside the VM only",
              conn.error().message().c_str());
    return false;
  }
  if (auto st = make_dirs(kPortTreeMount, 0755); !st) {
    log::warn("ports: %s", st.error().message().c_str());
    return false;
  }
  int fd = conn->get();
  std::string options = "trans=fd,rfdno=" + std::to_string(fd) + ",wfdno=" + std::to_string(fd) +
                        ",version=9p2000.L,msize=65536,access=any";
  if (::mount("pinata-port", kPortTreeMount, "9p", MS_NOSUID | MS_NODEV | MS_NOEXEC, options.c_str()) != 0) {
    log::warn("ports: mount 9p on %s: %s; published ports will be reachable inside the VM only",
              kPortTreeMount, std::strerror(errno));
    return false;
  }
  step("ports: mounted the port-forwarding tree on %s", kPortTreeMount);
  return true;
}

void start_port_forwarder() {
  std::thread([] {
    Result<UniqueFd> listener = fail(ErrorKind::kInternal, "not tried");
    for (int attempt = 0; attempt < 600; attempt++) {  // 30 s
      listener = vsock_listen(ports::kDataVsockPort);
      if (listener) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!listener) {
      log::error("ports: forwarder: %s: published ports will not reach the VM from the host",
                 listener.error().message().c_str());
      return;
    }
    auto forwarder = ports::GuestForwarder::start(std::move(*listener));
    if (!forwarder) {
      log::error("ports: forwarder: %s", forwarder.error().message().c_str());
      return;
    }
    step("ports: forwarder listening on vsock port %u", ports::kDataVsockPort);
    // Lives as long as pinata-init: released, never destroyed.
    (void)forwarder->release();
  }).detach();
}

bool install_userland_proxy() {
  UniqueFd in(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (!in || ::fstat(in.get(), &st) != 0) {
    log::error("ports: reading /proc/self/exe: %s", std::strerror(errno));
    return false;
  }
  if (auto dirs = make_dirs("/usr/local/sbin", 0755); !dirs) {
    log::error("ports: %s", dirs.error().message().c_str());
    return false;
  }
  std::string tmp = std::string(kUserlandProxyPath) + ".tmp";
  UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755));
  if (!out) {
    log::error("ports: creating %s: %s", tmp.c_str(), std::strerror(errno));
    return false;
  }
  off_t offset = 0;
  while (offset < st.st_size) {
    ssize_t n = ::sendfile(out.get(), in.get(), &offset, static_cast<size_t>(st.st_size - offset));
    if (n <= 0) {
      log::error("ports: copying the hook to %s: %s", tmp.c_str(), n < 0 ? std::strerror(errno) : "short copy");
      ::unlink(tmp.c_str());
      return false;
    }
  }
  out.reset();
  if (::rename(tmp.c_str(), kUserlandProxyPath) != 0) {
    log::error("ports: installing %s: %s", kUserlandProxyPath, std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace pinata::guest
