// Child processes of PID 1: spawning with a clean signal state, console line prefixing.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace pinata::guest {

// The PATH every child gets (pinata-init also sets it in its own environment).
inline constexpr const char* kPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Spawns argv[0] (searched in PATH) in a new session with default signal dispositions and an
// empty signal mask; stdin is /dev/null, stdout and stderr go to `output_fd`.
Result<pid_t> spawn(const std::vector<std::string>& argv, int output_fd);

// Spawns `argv` with its output written to the console as "[prefix] line", then waits for it.
// Returns the wait status. Only for use before the main loop reaps children.
Result<int> run_and_wait(const std::vector<std::string>& argv, const std::string& prefix);

// Reads lines from `fd` on a detached thread and writes each one to the console (stdout) as
// "[prefix] line\n" in a single write; ends at EOF.
void pump_lines_to_console(UniqueFd fd, std::string prefix);

// "exited with status 1" / "killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

// Joins argv for log lines.
std::string join_argv(const std::vector<std::string>& argv);

}  // namespace pinata::guest
