#include "guest/config_db.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "base/fd.h"
#include "base/io.h"
#include "base/log.h"
#include "guest/boot_clock.h"
#include "guest/cmdline.h"
#include "guest/db_config.h"
#include "guest/docker_vsock.h"
#include "guest/modules.h"
#include "guest/system_config.h"

namespace pinata::guest {
namespace {

constexpr unsigned kHostCid = 2;
constexpr const char* kDaemonJsonWatch =
    "/run/pinata/database/branch/master/watch/com.docker.driver.amd64-linux.node/etc.node/"
    "docker.node/daemon.json.node/tree.live";

std::string strip(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

Result<std::string> read_setting(const std::string& key) {
  return read_file(std::string(kDbSettingsDir) + "/" + key, 1 << 20);
}

Status write_daemon_json(const std::string& json) {
  TRY(make_dirs("/etc/docker", 0755));
  return write_file_atomic(kDaemonJson, json, 0644);
}

void apply_sysctls(const std::string& text) {
  std::vector<std::string> errors;
  auto settings = parse_sysctl_conf(text, &errors);
  for (const std::string& e : errors) log::warn("db: etc/sysctl.conf %s: skipped", e.c_str());
  for (const SysctlSetting& s : settings) {
    if (auto st = set_sysctl(s.key, s.value); !st) {
      log::warn("db: sysctl %s = %s: %s", s.key.c_str(), s.value.c_str(),
                st.error().message().c_str());
    }
  }
  if (!settings.empty()) log::info("db: applied %zu sysctl settings", settings.size());
}

}  // namespace

DbBootConfig mount_and_apply_db(std::chrono::milliseconds timeout) {
  DbBootConfig out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!wait_for_soon_modules(timeout)) log::warn("db: vsock and 9p modules still loading");
  Result<UniqueFd> conn = fail(ErrorKind::kInternal, "not tried");
  while (true) {
    conn = vsock_connect(kHostCid, kDbVsockPort);
    if (conn || std::chrono::steady_clock::now() >= deadline) break;
    // A reset means the transport is up and nothing listens on the host: don't wait for it.
    // Other errors (no AF_VSOCK, no transport yet) mean the modules are still loading.
    if (conn.error().code() == ECONNRESET || conn.error().code() == ECONNREFUSED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!conn) {
    log::warn("db: %s; using Docker's defaults", conn.error().message().c_str());
    return out;
  }
  if (auto st = make_dirs(kDbMount, 0755); !st) {
    log::warn("db: %s", st.error().message().c_str());
    return out;
  }
  int fd = conn->get();
  std::string options = "trans=fd,rfdno=" + std::to_string(fd) + ",wfdno=" + std::to_string(fd) +
                        ",version=9p2000.L,msize=262144,access=any";
  if (::mount("pinata-db", kDbMount, "9p", MS_NOSUID | MS_NODEV | MS_NOEXEC, options.c_str()) !=
      0) {
    log::warn("db: mount 9p on %s: %s; using Docker's defaults", kDbMount, std::strerror(errno));
    return out;
  }
  // The kernel holds its own reference to the socket; ours closes with `conn`.
  out.mounted = true;
  step("db: mounted the configuration database on %s", kDbMount);

  if (auto sysctl = read_setting("etc/sysctl.conf"); sysctl) apply_sysctls(*sysctl);
  auto daemon_json = read_setting("etc/docker/daemon.json");
  if (daemon_json) {
    if (auto st = write_daemon_json(*daemon_json); !st) {
      log::warn("db: %s", st.error().message().c_str());
    } else {
      log::info("db: wrote %s (%zu bytes)", kDaemonJson, daemon_json->size());
    }
  } else {
    log::warn("db: etc/docker/daemon.json: %s", daemon_json.error().message().c_str());
  }
  if (auto regs = read_setting("insecure-registry"); regs) {
    auto list = parse_registry_list(*regs);
    if (!list.empty() && daemon_json && json_mentions_key(*daemon_json, "insecure-registries")) {
      log::warn("db: daemon.json sets insecure-registries; ignoring insecure-registry (%zu)",
                list.size());
    } else {
      for (const std::string& r : list) out.dockerd_args.push_back("--insecure-registry=" + r);
      if (!list.empty()) log::info("db: %zu insecure registries", list.size());
    }
  }
  if (auto name = read_setting("etc/hostname"); name) {
    std::string h = strip(*name);
    if (is_valid_hostname(h)) {
      out.hostname = h;
    } else if (!h.empty()) {
      log::warn("db: ignoring invalid etc/hostname \"%s\"", h.c_str());
    }
  }
  return out;
}

int start_daemon_json_watch() {
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) {
    log::warn("db: eventfd: %s", std::strerror(errno));
    return -1;
  }
  std::thread([efd] {
    // O_NONBLOCK: the kernel's 9p client then sends one Tread per read(2). Without it, a
    // read keeps sending Treads until the buffer is full, so it would only return after
    // enough changes to fill 4 KiB (the server answers each Tread when there is news).
    auto opened = [] {
      return UniqueFd(::open(kDaemonJsonWatch, O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    }();
    if (!opened) {
      log::warn("db: cannot follow daemon.json (%s): %s", kDaemonJsonWatch, std::strerror(errno));
      return;
    }
    // Each line is the hash of daemon.json at a new head; the first is the current one.
    std::string pending;
    bool first = true;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(opened.get(), buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        log::warn("db: daemon.json watch ended: %s", n == 0 ? "EOF" : std::strerror(errno));
        return;
      }
      pending.append(buf, static_cast<size_t>(n));
      size_t nl;
      bool changed = false;
      while ((nl = pending.find('\n')) != std::string::npos) {
        pending.erase(0, nl + 1);
        if (!first) changed = true;
        first = false;
      }
      if (!changed) continue;
      auto json = read_setting("etc/docker/daemon.json");
      auto current = read_file(kDaemonJson, 1 << 20);
      if (!json || (current && *current == *json)) continue;
      if (auto st = write_daemon_json(*json); !st) {
        log::warn("db: %s", st.error().message().c_str());
        continue;
      }
      log::info("db: daemon.json changed: restarting dockerd");
      uint64_t one = 1;
      (void)!::write(efd, &one, sizeof one);
    }
  }).detach();
  return efd;
}

}  // namespace pinata::guest
