#include "base/log.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace pinata::log {
namespace {

std::string drain(int fd) {
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) n++;
  return n;
}

TEST(RateLimitedLog, WritesAtMostTheLimitPerSecondAndCountsTheRest) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK), 0);
  set_fd(fds[1]);
  RateLimitedLog limited(5);

  for (int i = 0; i < 12; i++) limited.warn("bad packet %d", i);
  std::string first_second = drain(fds[0]);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  limited.warn("bad packet again");
  std::string later = drain(fds[0]);
  set_fd(2);
  ::close(fds[0]);
  ::close(fds[1]);

  EXPECT_EQ(count(first_second, "bad packet"), 5u);
  EXPECT_NE(later.find("bad packet again (7 similar lines suppressed)"), std::string::npos);
}

}  // namespace
}  // namespace pinata::log
