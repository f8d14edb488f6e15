#include "guest/cmdline.h"

#include <gtest/gtest.h>

namespace pinata::guest {
namespace {

TEST(Cmdline, SplitsOnWhitespaceAndHonoursQuotes) {
  auto words = split_cmdline("console=ttyS0  a=\"x y\"\tpanic=-1\n");
  ASSERT_EQ(words.size(), 3u);
  EXPECT_EQ(words[0], "console=ttyS0");
  EXPECT_EQ(words[1], "a=x y");
  EXPECT_EQ(words[2], "panic=-1");
}

TEST(Cmdline, FindsValueOfKey) {
  EXPECT_EQ(cmdline_value("console=ttyS0 pinata.hostname=box quiet", "pinata.hostname"), "box");
}

TEST(Cmdline, LastOccurrenceWins) { EXPECT_EQ(cmdline_value("k=1 k=2", "k"), "2"); }

TEST(Cmdline, DoesNotMatchKeyPrefix) {
  EXPECT_EQ(cmdline_value("pinata.hostnamex=box", "pinata.hostname"), std::nullopt);
  EXPECT_EQ(cmdline_value("xpinata.hostname=box", "pinata.hostname"), std::nullopt);
}

TEST(Cmdline, BareKeyHasEmptyValue) { EXPECT_EQ(cmdline_value("quiet", "quiet"), ""); }

TEST(Cmdline, IgnoresWordsAfterDoubleDash) {
  EXPECT_EQ(cmdline_value("a=1 -- pinata.hostname=x", "pinata.hostname"), std::nullopt);
}

TEST(Cmdline, HostnameDefaultsWhenAbsent) {
  EXPECT_EQ(hostname_from_cmdline("console=ttyS0"), "pinata");
}

TEST(Cmdline, HostnameFromParameter) {
  EXPECT_EQ(hostname_from_cmdline("console=ttyS0 pinata.hostname=docker-vm\n"), "docker-vm");
}

TEST(Cmdline, RejectsInvalidHostnameAndReportsIt) {
  std::string invalid;
  EXPECT_EQ(hostname_from_cmdline("pinata.hostname=bad/name", &invalid), "pinata");
  EXPECT_EQ(invalid, "bad/name");
  EXPECT_EQ(hostname_from_cmdline("pinata.hostname="), "pinata");
  EXPECT_EQ(hostname_from_cmdline("pinata.hostname=-x"), "pinata");
  EXPECT_EQ(hostname_from_cmdline("pinata.hostname=" + std::string(64, 'a')), "pinata");
}

TEST(Cmdline, HostsFileMapsHostnameToLoopback) {
  std::string hosts = hosts_file("box");
  EXPECT_NE(hosts.find("127.0.0.1\tlocalhost\n"), std::string::npos);
  EXPECT_NE(hosts.find("127.0.1.1\tbox\n"), std::string::npos);
}

TEST(Text, StripWhitespaceTrimsBothEnds) {
  EXPECT_EQ(strip_whitespace("  tok\n"), "tok");
  EXPECT_EQ(strip_whitespace("\t\r\n"), "");
  EXPECT_EQ(strip_whitespace("a b"), "a b");
}

TEST(TrimPolicy, DefaultIsOnlineDiscardPlusFstrimEveryFiveMinutes) {
  TrimPolicy p = trim_policy_from_cmdline("console=ttyS0");
  EXPECT_TRUE(p.mount_discard);
  EXPECT_EQ(p.fstrim_interval_seconds, kDefaultTrimSeconds);
}

TEST(TrimPolicy, MountSelectsOnlineDiscardOnly) {
  TrimPolicy p = trim_policy_from_cmdline("pinata.trim=mount quiet");
  EXPECT_TRUE(p.mount_discard);
  EXPECT_EQ(p.fstrim_interval_seconds, 0);
}

TEST(TrimPolicy, SecondsSelectFstrimOnlyAndZeroTurnsTrimmingOff) {
  TrimPolicy five = trim_policy_from_cmdline("pinata.trim=5");
  EXPECT_FALSE(five.mount_discard);
  EXPECT_EQ(five.fstrim_interval_seconds, 5);
  TrimPolicy off = trim_policy_from_cmdline("pinata.trim=0");
  EXPECT_FALSE(off.mount_discard);
  EXPECT_EQ(off.fstrim_interval_seconds, 0);
}

TEST(TrimPolicy, MalformedValueGivesTheDefaultAndIsReported) {
  for (const char* bad : {"pinata.trim=-1", "pinata.trim=5s", "pinata.trim=", "pinata.trim=99999999",
                          "pinata.trim=discard"}) {
    std::string invalid = "unset";
    TrimPolicy p = trim_policy_from_cmdline(bad, &invalid);
    EXPECT_EQ(p, TrimPolicy{}) << bad;
    EXPECT_NE(invalid, "unset") << bad;
  }
}

}  // namespace
}  // namespace pinata::guest
