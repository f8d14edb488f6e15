#include "guest/shutdown.h"

#include <linux/magic.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "base/io.h"
#include "base/log.h"
#include "guest/boot_clock.h"
#include "guest/disk_setup.h"

namespace pinata::guest {
namespace {

using std::chrono::milliseconds;

std::mutex g_mutex;
std::string g_reason;
int g_fd = -1;

int trigger_fd_locked() {
  if (g_fd < 0) g_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return g_fd;
}

// Mount points at or below `prefix`, deepest first (from /proc/self/mountinfo).
std::vector<std::string> mounts_under(const std::string& prefix) {
  std::vector<std::string> out;
  auto info = read_file("/proc/self/mountinfo");
  if (!info) return out;
  size_t pos = 0;
  while (pos < info->size()) {
    size_t end = info->find('\n', pos);
    if (end == std::string::npos) end = info->size();
    std::string line = info->substr(pos, end - pos);
    pos = end + 1;
    // Fields: id parent major:minor root mountpoint ...
    size_t f = 0;
    for (int i = 0; i < 4 && f != std::string::npos; i++) f = line.find(' ', f + 1);
    if (f == std::string::npos) continue;
    size_t e = line.find(' ', f + 1);
    std::string mp = line.substr(f + 1, e - f - 1);
    if (mp == prefix || mp.starts_with(prefix + "/")) out.push_back(mp);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

void reap_for(milliseconds how_long) {
  auto until = std::chrono::steady_clock::now() + how_long;
  for (;;) {
    int status;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    }
    if (pid < 0 && errno == ECHILD) return;  // no children left
    if (std::chrono::steady_clock::now() >= until) return;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

void unmount_data_disk() {
  // Container mounts (overlays, shm) dockerd may have left below it go first.
  for (const std::string& mp : mounts_under(kDockerDataDir)) {
    if (mp == kDockerDataDir) continue;
    if (::umount2(mp.c_str(), 0) != 0) ::umount2(mp.c_str(), MNT_DETACH);
  }
  struct statfs sfs;
  bool is_tmpfs = ::statfs(kDockerDataDir, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC;
  for (int attempt = 1; attempt <= 10; attempt++) {
    if (::umount2(kDockerDataDir, 0) == 0) {
      if (is_tmpfs) {
        step("unmounted %s (a tmpfs: nothing to keep)", kDockerDataDir);
      } else {
        step("unmounted data disk cleanly");
      }
      return;
    }
    if (errno == EINVAL || errno == ENOENT) {
      log::info("%s is not mounted", kDockerDataDir);
      return;
    }
    log::warn("unmounting %s (attempt %d): %s", kDockerDataDir, attempt, strerror(errno));
    ::sync();
    std::this_thread::sleep_for(milliseconds(200));
  }
  if (::umount2(kDockerDataDir, MNT_DETACH) == 0) {
    log::error("data disk still busy: detached it lazily (it may need a check on next boot)");
  } else {
    log::error("could not unmount %s: %s", kDockerDataDir, strerror(errno));
  }
}

}  // namespace

void request_shutdown(const std::string& reason) {
  std::lock_guard lock(g_mutex);
  if (g_reason.empty()) g_reason = reason;
  uint64_t one = 1;
  if (::write(trigger_fd_locked(), &one, sizeof one) < 0) {
    // Only fails if the counter would overflow: a shutdown is pending anyway.
  }
}

int shutdown_trigger_fd() {
  std::lock_guard lock(g_mutex);
  return trigger_fd_locked();
}

std::string shutdown_reason() {
  std::lock_guard lock(g_mutex);
  return g_reason;
}

void shutdown_vm(Supervisor& supervisor) {
  step("shutting down (%s)", shutdown_reason().c_str());
  supervisor.freeze();
  supervisor.stop("dockerd", milliseconds(10000));
  supervisor.stop("containerd", milliseconds(10000));
  step("stopping remaining processes: SIGTERM");
  ::kill(-1, SIGTERM);
  reap_for(milliseconds(2000));
  ::kill(-1, SIGKILL);
  reap_for(milliseconds(1000));
  step("syncing");
  ::sync();
  unmount_data_disk();
  ::sync();
  power_off("shutdown complete");
}

void power_off(const char* why) {
  step("powering off: %s", why);
  ::sync();
  ::reboot(RB_POWER_OFF);
  log::error("power off failed (%s); rebooting instead", strerror(errno));
  ::reboot(RB_AUTOBOOT);
  for (;;) ::pause();  // nothing left to do; never exit
}

}  // namespace pinata::guest
