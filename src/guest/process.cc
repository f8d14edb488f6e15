#include "guest/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "base/io.h"

extern char** environ;

namespace pinata::guest {

Result<pid_t> spawn(const std::vector<std::string>& argv, int output_fd) {
  if (argv.empty()) return fail(ErrorKind::kInvalidInput, "spawn: empty argv");
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, output_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, output_fd, 2);
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &all);  // undo our SIG_IGN of SIGPIPE and handlers
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return fail_errno("spawn " + argv[0], rc);
  return pid;
}

Result<int> run_and_wait(const std::vector<std::string>& argv, const std::string& prefix) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail_errno("pipe");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  TRY_ASSIGN(pid_t pid, spawn(argv, write_end.get()));
  write_end.reset();
  pump_lines_to_console(std::move(read_end), prefix);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return fail_errno("waitpid " + argv[0]);
  }
  return status;
}

void pump_lines_to_console(UniqueFd fd, std::string prefix) {
  std::thread([fd = std::move(fd), prefix = std::move(prefix)]() {
    constexpr size_t kMaxLine = 4096;
    std::string pending;
    char buf[8192];
    auto emit = [&](std::string_view line) {
      std::string out = "[" + prefix + "] ";
      out.append(line);
      out.push_back('\n');
      (void)write_all(STDOUT_FILENO, out);
    };
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      pending.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      for (;;) {
        size_t nl = pending.find('\n', start);
        if (nl == std::string::npos) break;
        emit(std::string_view(pending).substr(start, nl - start));
        start = nl + 1;
      }
      pending.erase(0, start);
      while (pending.size() > kMaxLine) {  // a very long line is split, never buffered forever
        emit(std::string_view(pending).substr(0, kMaxLine));
        pending.erase(0, kMaxLine);
      }
    }
    if (!pending.empty()) emit(pending);
  }).detach();
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "wait status " + std::to_string(status);
}

std::string join_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

}  // namespace pinata::guest
