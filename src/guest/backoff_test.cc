#include "guest/backoff.h"

#include <gtest/gtest.h>

namespace pinata::guest {
namespace {

using ms = std::chrono::milliseconds;

TEST(RestartBackoff, DoublesUpToTheMaximum) {
  RestartBackoff b;
  std::vector<long> delays;
  for (int i = 0; i < 8; i++) delays.push_back(b.on_exit(ms(10)).count());
  EXPECT_EQ(delays, (std::vector<long>{1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000}));
}

TEST(RestartBackoff, ResetsAfterALongRun) {
  RestartBackoff b;
  b.on_exit(ms(0));
  b.on_exit(ms(0));
  EXPECT_EQ(b.on_exit(ms(59999)).count(), 4000);
  EXPECT_EQ(b.on_exit(ms(60000)).count(), 1000);
  EXPECT_EQ(b.on_exit(ms(5)).count(), 2000);
}

}  // namespace
}  // namespace pinata::guest
