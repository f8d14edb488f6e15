#include "guest/backoff.h"

#include <algorithm>

namespace pinata::guest {

RestartBackoff::ms RestartBackoff::on_exit(ms uptime) {
  if (uptime >= reset_after_) next_ = initial_;
  ms delay = next_;
  next_ = std::min(next_ * 2, max_);
  return delay;
}

}  // namespace pinata::guest
