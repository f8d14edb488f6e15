#include "guest/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "base/log.h"
#include "guest/boot_clock.h"
#include "guest/process.h"

namespace pinata::guest {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

}  // namespace

void Supervisor::start(const std::string& name, std::vector<std::string> argv) {
  Service s;
  s.name = name;
  s.argv = std::move(argv);
  services_.push_back(std::move(s));
  spawn(services_.back());
}

void Supervisor::spawn(Service& s) {
  s.restart_at.reset();
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    log::error("%s: pipe: %s", s.name.c_str(), strerror(errno));
    s.restart_at = Clock::now() + s.backoff.on_exit(milliseconds(0));
    return;
  }
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  auto pid = guest::spawn(s.argv, write_end.get());
  if (!pid) {
    auto delay = s.backoff.on_exit(milliseconds(0));
    log::error("starting %s: %s; retrying in %lld ms", s.name.c_str(),
               pid.error().message().c_str(), static_cast<long long>(delay.count()));
    s.restart_at = Clock::now() + delay;
    return;
  }
  s.pid = *pid;
  s.started = Clock::now();
  pump_lines_to_console(std::move(read_end), s.name);
  step("started %s (pid %d): %s", s.name.c_str(), s.pid, join_argv(s.argv).c_str());
}

void Supervisor::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) return;
    on_exit(pid, status);
  }
}

void Supervisor::on_exit(pid_t pid, int status) {
  for (Service& s : services_) {
    if (s.pid != pid) continue;
    s.pid = -1;
    auto uptime = duration_cast<milliseconds>(Clock::now() - s.started);
    if (s.stopped || frozen_) {
      log::info("%s (pid %d) %s", s.name.c_str(), pid, describe_wait_status(status).c_str());
      return;
    }
    auto delay = s.backoff.on_exit(uptime);
    log::error("%s (pid %d) %s after %.1f s; restarting in %.1f s", s.name.c_str(), pid,
               describe_wait_status(status).c_str(), uptime.count() / 1000.0,
               delay.count() / 1000.0);
    s.restart_at = Clock::now() + delay;
    return;
  }
}

std::optional<milliseconds> Supervisor::restart_due() {
  std::optional<milliseconds> next;
  auto now = Clock::now();
  for (Service& s : services_) {
    if (!s.restart_at || s.stopped || frozen_) continue;
    if (*s.restart_at <= now) {
      spawn(s);
    }
    if (s.restart_at) {
      auto left = std::max(milliseconds(0), duration_cast<milliseconds>(*s.restart_at - now));
      if (!next || left < *next) next = left;
    }
  }
  return next;
}

void Supervisor::stop(const std::string& name, milliseconds grace) {
  for (Service& s : services_) {
    if (s.name != name) continue;
    s.stopped = true;
    s.restart_at.reset();
    if (s.pid <= 0) {
      log::info("%s is not running", name.c_str());
      return;
    }
    pid_t pid = s.pid;
    auto t0 = Clock::now();
    log::info("stopping %s (pid %d): SIGTERM", name.c_str(), pid);
    ::kill(pid, SIGTERM);
    bool killed = false;
    auto deadline = t0 + grace;
    while (s.pid > 0) {
      reap();
      if (s.pid <= 0) break;
      if (!killed && Clock::now() >= deadline) {
        log::warn("%s (pid %d) still running after %lld s: SIGKILL", name.c_str(), pid,
                  static_cast<long long>(grace.count() / 1000));
        ::kill(pid, SIGKILL);
        killed = true;
        deadline = Clock::now() + milliseconds(5000);
      } else if (killed && Clock::now() >= deadline) {
        log::error("%s (pid %d) survived SIGKILL; giving up on it", name.c_str(), pid);
        return;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    step("%s stopped after %.1f s", name.c_str(),
         duration_cast<milliseconds>(Clock::now() - t0).count() / 1000.0);
    return;
  }
}

void Supervisor::restart(const std::string& name, milliseconds grace) {
  if (frozen_) return;
  stop(name, grace);
  for (Service& s : services_) {
    if (s.name != name) continue;
    s.stopped = false;
    s.backoff = RestartBackoff();
    spawn(s);
    return;
  }
}

}  // namespace pinata::guest
