// Restart policy for supervised services (pure).
#pragma once

#include <chrono>

namespace pinata::guest {

// Delay before restarting a service that exited: 1 s, doubling up to 30 s; a run that lasted
// at least `reset_after` (60 s) starts again from the initial delay.
class RestartBackoff {
 public:
  using ms = std::chrono::milliseconds;
  explicit RestartBackoff(ms initial = ms(1000), ms max = ms(30000), ms reset_after = ms(60000))
      : initial_(initial), max_(max), reset_after_(reset_after), next_(initial) {}

  // The service exited after running for `uptime`; returns how long to wait before restarting.
  ms on_exit(ms uptime);

 private:
  ms initial_;
  ms max_;
  ms reset_after_;
  ms next_;
};

}  // namespace pinata::guest
