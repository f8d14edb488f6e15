// Supervision of long-running services (containerd, dockerd): spawn with their output
// prefixed on the console, restart with backoff when they die, stop in order at shutdown.
//
// Single-threaded: only PID 1's main loop calls it (it is also the only reaper).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "guest/backoff.h"

namespace pinata::guest {

class Supervisor {
 public:
  using Clock = std::chrono::steady_clock;

  // Spawns a service now. A spawn failure is logged and retried with the backoff.
  void start(const std::string& name, std::vector<std::string> argv);

  // Reaps every exited child (waitpid(-1, WNOHANG) loop); exits of services are logged and
  // schedule a restart. Other children (orphans re-parented to PID 1) are just reaped.
  void reap();

  // Restarts services whose backoff has elapsed. Returns the time until the next pending
  // restart, if any.
  std::optional<std::chrono::milliseconds> restart_due();

  // Stops `name` for good: SIGTERM, then SIGKILL after `grace`; waits for it (reaping).
  void stop(const std::string& name, std::chrono::milliseconds grace);

  // Stops `name` as stop() does, then starts it again at once (a configuration change).
  void restart(const std::string& name, std::chrono::milliseconds grace);

  // No more restarts (shutdown has begun).
  void freeze() { frozen_ = true; }

 private:
  struct Service {
    std::string name;
    std::vector<std::string> argv;
    pid_t pid = -1;
    Clock::time_point started;
    RestartBackoff backoff;
    std::optional<Clock::time_point> restart_at;
    bool stopped = false;
  };

  void spawn(Service& s);
  void on_exit(pid_t pid, int status);

  std::vector<Service> services_;
  bool frozen_ = false;
};

}  // namespace pinata::guest
