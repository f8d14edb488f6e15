// pinata status: one line about the VM; exit 0 when running, 3 when not.
#include <cstdio>

#include "cli/client.h"

namespace pinata::cli {

int cmd_status(const Paths& paths, const std::vector<std::string>& args) {
  if (!args.empty()) return usage_error("status takes no arguments");
  DaemonProbe probe = probe_daemon(paths);
  if (!probe.running) {
    std::printf("pinata is not running\n");
    return kExitNotRunning;
  }
  auto status = control_call(paths, "status");
  if (!status && wait_daemon_exit(paths, 2000)) {
    std::printf("pinata is not running\n");  // it was just exiting
    return kExitNotRunning;
  }
  if (!status) {
    std::fprintf(stderr, "pinata: pinatad (pid %d) does not answer: %s\n", probe.pid,
                 status.error().message().c_str());
    return kExitFailure;
  }
  std::printf("%s", status->c_str());
  std::printf("docker socket: %s\n", paths.docker_sock.c_str());
  return kExitOk;
}

}  // namespace pinata::cli
