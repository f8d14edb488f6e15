#include "base/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace pinata::log {
namespace {

std::mutex g_mutex;
std::string g_program = "pinata";
Level g_min_level = Level::kInfo;
int g_fd = 2;

const char* level_tag(Level level) {
  switch (level) {
    case Level::kDebug: return "debug: ";
    case Level::kInfo: return "";
    case Level::kWarn: return "warning: ";
    case Level::kError: return "error: ";
  }
  return "";
}

void vlog(Level level, const char* fmt, va_list ap) {
  char buf[4096];
  vsnprintf(buf, sizeof buf, fmt, ap);
  write(level, buf);
}

}  // namespace

void init(std::string_view program, Level min_level) {
  std::lock_guard lock(g_mutex);
  g_program = std::string(program);
  g_min_level = min_level;
}

void set_fd(int fd) {
  std::lock_guard lock(g_mutex);
  g_fd = fd;
}

std::string timestamp() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
  return buf;
}

void write(Level level, std::string_view message) {
  std::lock_guard lock(g_mutex);
  if (level < g_min_level) return;
  std::string line = timestamp() + " " + g_program + "[" + std::to_string(getpid()) + "]: " +
                     level_tag(level) + std::string(message);
  if (line.empty() || line.back() != '\n') line += '\n';
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(g_fd, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

#define PINATA_DEFINE_LOG(name, level) \
  void name(const char* fmt, ...) {    \
    va_list ap;                        \
    va_start(ap, fmt);                 \
    vlog(level, fmt, ap);              \
    va_end(ap);                        \
  }
PINATA_DEFINE_LOG(debug, Level::kDebug)
PINATA_DEFINE_LOG(info, Level::kInfo)
PINATA_DEFINE_LOG(warn, Level::kWarn)
PINATA_DEFINE_LOG(error, Level::kError)
#undef PINATA_DEFINE_LOG

void RateLimitedLog::warn(const char* fmt, ...) {
  auto now = std::chrono::steady_clock::now();
  if (now - window_ >= std::chrono::seconds(1)) {
    window_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= per_second_) {
    suppressed_++;
    return;
  }
  in_window_++;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (suppressed_ > 0) {
    ::pinata::log::warn("%s (%lu similar lines suppressed)", buf, suppressed_);
    suppressed_ = 0;
  } else {
    ::pinata::log::warn("%s", buf);
  }
}

}  // namespace pinata::log
