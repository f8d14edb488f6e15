// Boot timeline logging: every step's log line carries the time since the kernel started.
#pragma once

#include <chrono>

namespace pinata::guest {

// Time since boot (CLOCK_BOOTTIME).
std::chrono::nanoseconds since_boot();

// Logs "[  3.456s] message" at info level.
[[gnu::format(printf, 1, 2)]] void step(const char* fmt, ...);

}  // namespace pinata::guest
