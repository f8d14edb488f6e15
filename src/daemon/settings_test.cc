#include "daemon/settings.h"

#include <gtest/gtest.h>

namespace pinata {
namespace {

TEST(Settings, DefaultsAreTwoGibAndTwoCpus) {
  auto s = parse_settings("", 8, 16);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->memory_gib, 2);
  EXPECT_EQ(s->ncpu, 2);
}

TEST(Settings, ParsesKeyValueLinesWithComments) {
  auto s = parse_settings("# comment\nmemory = 4\n\nncpu=1\n", 8, 16);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->memory_gib, 4);
  EXPECT_EQ(s->ncpu, 1);
  EXPECT_EQ(*parse_settings(format_settings(*s), 8, 16), *s);
}

TEST(Settings, RejectsOutOfRangeValuesSayingWhatIsAccepted) {
  auto zero = parse_settings("ncpu=0\n", 8, 16);
  ASSERT_FALSE(zero);
  EXPECT_NE(zero.error().message().find("from 1 to 8"), std::string::npos);
  EXPECT_FALSE(parse_settings("memory=17\n", 8, 16));
  EXPECT_FALSE(parse_settings("memory=2x\n", 8, 16));
  EXPECT_FALSE(parse_settings("memory\n", 8, 16));
}

TEST(Settings, RejectsUnknownKeys) {
  auto s = apply_setting(VmSettings{}, "nosuchkey", "1", 8, 16);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("known settings are memory, ncpu"), std::string::npos);
}

TEST(Settings, GuestForwardsAlwaysIncludeTheDockerPort) {
  auto s = parse_settings("guest_forwards=1525; 5000;1525\n", 8, 16);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->guest_forwards, (std::vector<uint32_t>{2376, 1525, 5000}));
  EXPECT_EQ(*parse_settings(format_settings(*s), 8, 16), *s);
  EXPECT_FALSE(parse_settings("guest_forwards=2376;x\n", 8, 16));
  EXPECT_FALSE(parse_settings("guest_forwards=70000\n", 8, 16));
}

TEST(Settings, TrimIsMountOrSecondsAndRoundTrips) {
  auto s = parse_settings("trim=5\ndisk_driver=qemu\nnet_driver=qemu\n", 8, 16);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->trim, "5");
  EXPECT_EQ(s->disk_driver, VmSettings::DiskDriver::kQemu);
  EXPECT_EQ(s->net_driver, VmSettings::NetDriver::kQemu);
  EXPECT_FALSE(parse_settings("net_driver=tap\n", 8, 16));
  EXPECT_EQ(*parse_settings(format_settings(*s), 8, 16), *s);
  EXPECT_EQ(parse_settings("trim=mount\n", 8, 16)->trim, "mount");
  EXPECT_EQ(parse_settings("", 8, 16)->disk_driver, VmSettings::DiskDriver::kPinataBlk);
  EXPECT_FALSE(parse_settings("trim=-1\n", 8, 16));
  EXPECT_FALSE(parse_settings("trim=discard\n", 8, 16));
  auto bad = parse_settings("disk_driver=virtio\n", 8, 16);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("expected pinata-blk or qemu"), std::string::npos);
}

}  // namespace
}  // namespace pinata

namespace pinata {
bool operator==(const VmSettings& a, const VmSettings& b) {
  return a.memory_gib == b.memory_gib && a.ncpu == b.ncpu &&
         a.guest_forwards == b.guest_forwards && a.trim == b.trim && a.disk_driver == b.disk_driver &&
         a.net_driver == b.net_driver;
}
}  // namespace pinata
