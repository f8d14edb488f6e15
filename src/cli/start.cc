// pinata start: start pinatad in the background if needed, and return when Docker responds.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "base/io.h"
#include "cli/client.h"
#include "cli/config_cmds.h"
#include "daemon/settings.h"

namespace pinata::cli {
namespace {

// Starts pinatad detached from this terminal; returns its start-up verdict.
Status spawn_daemon(const Paths& paths) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return fail_errno("pipe");
  std::string exe = find_program("pinatad", "daemon");
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno("fork");
  if (pid == 0) {
    ::setsid();
    if (::fork() != 0) _exit(0);  // the daemon is not our child: no zombie, no terminal
    int devnull = ::open("/dev/null", O_RDONLY);
    int logfd = ::open(paths.daemon_log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (devnull >= 0) ::dup2(devnull, 0);
    if (logfd >= 0) {
      ::dup2(logfd, 1);
      ::dup2(logfd, 2);
    }
    ::fcntl(pipefd[1], F_SETFD, 0);
    std::string fd = std::to_string(pipefd[1]);
    ::execl(exe.c_str(), "pinatad", "--ready-fd", fd.c_str(), nullptr);
    ::execlp("pinatad", "pinatad", "--ready-fd", fd.c_str(), nullptr);
    dprintf(pipefd[1], "error cannot run pinatad (%s): %s\n", exe.c_str(), std::strerror(errno));
    _exit(127);
  }
  ::close(pipefd[1]);
  UniqueFd ready(pipefd[0]);
  int status;
  ::waitpid(pid, &status, 0);
  auto line = read_line(ready.get(), 4096);
  if (!line) {
    return fail(ErrorKind::kIo, "pinatad exited during start-up; see " + paths.daemon_log);
  }
  if (line->rfind("error ", 0) == 0) return fail(ErrorKind::kIo, line->substr(6));
  if (*line != "ok") return fail(ErrorKind::kIo, "unexpected answer from pinatad: " + *line);
  return {};
}

void print_failure(const Paths& paths, const std::string& why) {
  // pinatad exits right after a failed start: let it finish so the next command sees a
  // consistent state (no half-exited daemon holding the lock).
  wait_daemon_exit(paths, 15000);
  std::fprintf(stderr, "pinata: start failed: %s\n", why.c_str());
  std::string tail = console_tail(paths, 20);
  if (!tail.empty()) {
    std::fprintf(stderr, "Last console lines (%s):\n%s\n", paths.console_ring.c_str(),
                 tail.c_str());
  }
  std::fprintf(stderr, "See also: pinata logs\n");
}

}  // namespace

int cmd_start(const Paths& paths, const std::vector<std::string>& args) {
  int timeout_s = 600;
  std::vector<std::pair<std::string, std::string>> changes;
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
    if (a == "--timeout") {
      const std::string* v = value();
      if (!v || std::atoi(v->c_str()) <= 0) return usage_error("--timeout needs a number of seconds");
      timeout_s = std::atoi(v->c_str());
    } else if (a == "--memory" || a == "--cpus") {
      const std::string* v = value();
      if (!v) return usage_error(a + " needs a value");
      changes.emplace_back(a == "--memory" ? "memory" : "ncpu", *v);
    } else {
      return usage_error("start: unknown option '" + a + "'");
    }
  }
  auto home = ensure_home_writable(paths);
  if (!home) {
    std::fprintf(stderr, "pinata: %s\n", home.error().message().c_str());
    return kExitFailure;
  }
  // --memory/--cpus are settings in the configuration database, like `pinata set`: one
  // commit, validated by the schema (a refusal changes nothing and starts nothing).
  if (!changes.empty()) {
    std::vector<std::string> set_args = {"hypervisor", "qemu"};
    for (const auto& [key, val] : changes) set_args.push_back(key + "=" + val);
    if (int rc = cmd_set(paths, set_args); rc != kExitOk) return rc;
  }

  DaemonProbe probe = probe_daemon(paths);
  if (probe.running) {
    auto status = control_call(paths, "status");
    if (status && status->find("state=running") != std::string::npos) {
      std::printf("pinata is already running (%s)\n",
                  status->substr(0, status->find('\n')).c_str());
      if (!changes.empty()) std::printf("pinatad restarts the VM with the new settings.\n");
      return kExitOk;
    }
    if (!status) {
      std::fprintf(stderr, "pinata: pinatad (pid %d) holds %s but does not answer on %s\n",
                   probe.pid, paths.lock_file.c_str(), paths.control_sock.c_str());
      return kExitFailure;
    }
    std::printf("pinata is already starting; waiting for it\n");
  } else {
    remove_stale_pid_file(paths, probe);
    std::printf("Starting pinata...\n");
    std::fflush(stdout);
    auto spawned = spawn_daemon(paths);
    if (!spawned) {
      if (spawned.error().message().find("already running") != std::string::npos) {
        std::printf("pinata is already running\n");
        return kExitOk;
      }
      std::fprintf(stderr, "pinata: %s\n", spawned.error().message().c_str());
      return kExitFailure;
    }
  }

  auto conn = control_request(paths, "wait " + std::to_string(timeout_s));
  if (!conn) {
    print_failure(paths, "cannot reach pinatad: " + conn.error().message());
    return kExitFailure;
  }
  for (;;) {
    auto line = read_line(conn->get(), 1 << 16);
    if (!line) {
      print_failure(paths, "pinatad stopped before Docker responded; see " + paths.daemon_log);
      return kExitFailure;
    }
    if (line->rfind("accel ", 0) == 0) {
      std::printf("%s\n", line->substr(6).c_str());
      std::fflush(stdout);
    } else if (*line == "ready") {
      std::printf("Docker is ready: %s\n%s", paths.docker_sock.c_str(), docker_hint(paths).c_str());
      return kExitOk;
    } else if (line->rfind("failed ", 0) == 0) {
      print_failure(paths, line->substr(7));
      return kExitFailure;
    } else if (*line == "timeout") {
      (void)control_call(paths, "stop 10");
      print_failure(paths, "Docker did not respond within " + std::to_string(timeout_s) +
                               " s; stopped the VM");
      return kExitFailure;
    }
  }
}

}  // namespace pinata::cli
