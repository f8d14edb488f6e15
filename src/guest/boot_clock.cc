#include "guest/boot_clock.h"

#include <time.h>

#include <cstdarg>
#include <cstdio>

#include "base/log.h"

namespace pinata::guest {

std::chrono::nanoseconds since_boot() {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

void step(const char* fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  double secs = std::chrono::duration<double>(since_boot()).count();
  log::info("[%8.3fs] %s", secs, msg);
}

}  // namespace pinata::guest
