#include "daemon/paths.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/io.h"

namespace pinata {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : fallback;
}

}  // namespace

Paths Paths::from_env() {
  std::string user_home = env_or("HOME", "/root");
  std::string home = env_or("PINATA_HOME", path_join(user_home, ".pinata"));
  std::string cache =
      env_or("PINATA_CACHE", path_join(env_or("XDG_CACHE_HOME", path_join(user_home, ".cache")),
                                       "pinata"));
  return for_home(home, env_or("PINATA_GUEST_DIR", path_join(cache, "guest")));
}

Paths Paths::for_home(const std::string& home, const std::string& guest_dir) {
  Paths p;
  p.home = home;
  p.docker_sock = path_join(home, "docker.sock");
  p.control_sock = path_join(home, "pinatad.sock");
  p.qmp_sock = path_join(home, "qmp.sock");
  p.vsock_dir = path_join(home, "vsock");
  p.vsock_vhost = path_join(home, "vhost-vsock.sock");
  p.blk_vhost = path_join(home, "vhost-blk.sock");
  p.blk_control = path_join(home, "blk-control.sock");
  p.net_vhost = path_join(home, "vhost-net.sock");
  p.disk = path_join(home, "Docker.qcow2");
  p.console_ring = path_join(home, "console-ring");
  p.log_dir = path_join(home, "log");
  p.daemon_log = path_join(p.log_dir, "pinatad.log");
  p.vm_args = path_join(home, "vm.args");
  p.pid_file = path_join(home, "pinatad.pid");
  p.lock_file = path_join(home, "pinatad.lock");
  p.settings = path_join(home, "settings");
  p.guest_dir = guest_dir;
  return p;
}

Status ensure_home_writable(const Paths& paths) {
  auto made = make_dirs(paths.home, 0700);
  if (!made) {
    return fail(ErrorKind::kIo, "cannot create " + paths.home + " (" + made.error().message() +
                                    "); set PINATA_HOME to a writable directory");
  }
  std::string probe = path_join(paths.home, ".write-test." + std::to_string(getpid()));
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    return fail(ErrorKind::kIo, paths.home + " is not writable (" + std::strerror(err) +
                                    "); fix its permissions or set PINATA_HOME");
  }
  ::close(fd);
  ::unlink(probe.c_str());
  auto logs = make_dirs(paths.log_dir, 0700);
  if (!logs) return fail(logs.error().context("cannot create the log directory"));
  return {};
}

}  // namespace pinata
