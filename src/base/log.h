// Logging with timestamps: "2026-11-28T09:01:02.345Z pinatad[123]: message".
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace pinata::log {

enum class Level { kDebug, kInfo, kWarn, kError };

// Sets the program name shown in each line and the minimum level printed.
void init(std::string_view program, Level min_level = Level::kInfo);
// Sends log lines to `fd` (default stderr). The fd is not owned.
void set_fd(int fd);

void write(Level level, std::string_view message);

// printf-style helpers.
[[gnu::format(printf, 1, 2)]] void debug(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void info(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void warn(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void error(const char* fmt, ...);

// "2026-11-28T09:01:02.345Z" for the current time (UTC).
std::string timestamp();

// Warnings about a peer's bad input (a guest can send millions): at most `per_second` lines a
// second; the count of suppressed lines goes into the next line written. Not thread-safe.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(unsigned per_second = 20) : per_second_(per_second) {}
  [[gnu::format(printf, 2, 3)]] void warn(const char* fmt, ...);

 private:
  unsigned per_second_;
  std::chrono::steady_clock::time_point window_{};
  unsigned in_window_ = 0;
  unsigned long suppressed_ = 0;
};

}  // namespace pinata::log
