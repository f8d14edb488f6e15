#include "cli/client.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>

#include "base/io.h"

namespace pinata::cli {

Result<UniqueFd> control_request(const Paths& paths, const std::string& command) {
  TRY_ASSIGN(UniqueFd fd, unix_connect(paths.control_sock));
  TRY(write_all(fd.get(), command + "\n"));
  return fd;
}

Result<std::string> control_call(const Paths& paths, const std::string& command) {
  TRY_ASSIGN(UniqueFd fd, control_request(paths, command));
  return read_all(fd.get(), 1 << 20);
}

DaemonProbe probe_daemon(const Paths& paths) {
  DaemonProbe p;
  if (auto text = read_file(paths.pid_file, 64)) p.pid = std::atoi(text->c_str());
  UniqueFd fd(::open(paths.lock_file.c_str(), O_RDWR | O_CLOEXEC));
  if (fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    p.running = true;
    return p;
  }
  // Nobody holds the lock: any pid file is left over from a pinatad that died.
  p.stale_pid_file = ::access(paths.pid_file.c_str(), F_OK) == 0;
  return p;
}

bool wait_daemon_exit(const Paths& paths, int timeout_ms) {
  for (int waited = 0; probe_daemon(paths).running; waited += 50) {
    if (waited >= timeout_ms) return false;
    ::usleep(50 * 1000);
  }
  return true;
}

void remove_stale_pid_file(const Paths& paths, const DaemonProbe& probe) {
  if (!probe.stale_pid_file) return;
  bool alive = probe.pid > 0 && ::kill(probe.pid, 0) == 0;
  std::fprintf(stderr, "pinata: removing stale pid file %s (pid %d %s)\n", paths.pid_file.c_str(),
               probe.pid, alive ? "is not pinatad" : "is not running");
  ::unlink(paths.pid_file.c_str());
}

std::string console_tail(const Paths& paths, size_t n) {
  auto text = read_file(paths.console_ring, 4 << 20);
  if (!text) return "";
  std::string t;
  for (char c : *text) {
    if (c != '\r') t += c;
  }
  while (!t.empty() && t.back() == '\n') t.pop_back();
  size_t pos = t.size();
  for (size_t lines = 0; pos > 0 && lines < n; lines++) {
    size_t nl = t.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      pos = 0;
      break;
    }
    pos = nl;
  }
  if (pos > 0) pos++;
  return t.substr(pos);
}

std::string docker_hint(const Paths& paths) {
  return "To use it with the docker CLI:\n"
         "  export DOCKER_HOST=unix://" + paths.docker_sock + "\n"
         "or create and select a context:\n"
         "  docker context create pinata --docker host=unix://" + paths.docker_sock + "\n"
         "  docker context use pinata\n";
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "pinata: %s\nRun 'pinata help' for usage.\n", message.c_str());
  return kExitUsage;
}

}  // namespace pinata::cli
