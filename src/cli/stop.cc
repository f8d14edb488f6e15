// pinata stop: a clean guest shutdown, then a kill if the guest does not power off in time.
#include <unistd.h>

#include <cstdio>

#include "base/io.h"
#include "cli/client.h"

namespace pinata::cli {

int cmd_stop(const Paths& paths, const std::vector<std::string>& args) {
  int timeout_s = 30;
  for (size_t i = 0; i < args.size(); i++) {
    if (args[i] == "--timeout" && i + 1 < args.size() && std::atoi(args[i + 1].c_str()) > 0) {
      timeout_s = std::atoi(args[++i].c_str());
    } else {
      return usage_error("stop: expected [--timeout SECONDS], got '" + args[i] + "'");
    }
  }
  DaemonProbe probe = probe_daemon(paths);
  if (!probe.running) {
    remove_stale_pid_file(paths, probe);
    std::printf("pinata is not running\n");
    return kExitOk;
  }
  auto conn = control_request(paths, "stop " + std::to_string(timeout_s));
  if (!conn) {
    std::fprintf(stderr, "pinata: pinatad (pid %d) does not answer: %s\n", probe.pid,
                 conn.error().message().c_str());
    return kExitFailure;
  }
  std::printf("Stopping pinata...\n");
  std::fflush(stdout);
  bool killed = false;
  for (;;) {
    auto line = read_line(conn->get(), 4096);
    if (!line) break;
    if (*line == "stopped killed") killed = true;
  }
  // pinatad exits once the VM is down; its lock is released then.
  if (!wait_daemon_exit(paths, 10000)) {
    std::fprintf(stderr, "pinata: pinatad (pid %d) is still running\n", probe.pid);
    return kExitFailure;
  }
  if (killed) {
    std::printf("pinata stopped (the guest did not shut down within %d s and was killed)\n",
                timeout_s);
  } else {
    std::printf("pinata stopped\n");
  }
  return kExitOk;
}

}  // namespace pinata::cli
