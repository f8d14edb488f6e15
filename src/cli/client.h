// What the CLI subcommands share: talking to pinatad and starting it.
#pragma once

#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "daemon/paths.h"

namespace pinata::cli {

// Exit codes (documented in README.md).
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNotRunning = 3;  // `pinata status` when stopped

// Sends one command line to pinatad's control socket and returns the connection.
Result<UniqueFd> control_request(const Paths& paths, const std::string& command);
// The whole reply of a one-shot command.
Result<std::string> control_call(const Paths& paths, const std::string& command);

// Whether a pinatad holds the lock for this home, and its pid (from the pid file) if known.
struct DaemonProbe {
  bool running = false;
  int pid = 0;
  bool stale_pid_file = false;
};
DaemonProbe probe_daemon(const Paths& paths);

// Waits up to `timeout_ms` for pinatad to exit (its lock to be released); true when it has.
bool wait_daemon_exit(const Paths& paths, int timeout_ms);

// Removes a stale pid file, saying so.
void remove_stale_pid_file(const Paths& paths, const DaemonProbe& probe);

// The last `n` lines of the console ring file.
std::string console_tail(const Paths& paths, size_t n);

// How to point docker at the socket.
std::string docker_hint(const Paths& paths);

int usage_error(const std::string& message);

int cmd_start(const Paths& paths, const std::vector<std::string>& args);
int cmd_stop(const Paths& paths, const std::vector<std::string>& args);
int cmd_status(const Paths& paths, const std::vector<std::string>& args);
int cmd_logs(const Paths& paths, const std::vector<std::string>& args);
int cmd_console(const Paths& paths, const std::vector<std::string>& args);
int cmd_disk(const Paths& paths, const std::vector<std::string>& args);

}  // namespace pinata::cli
