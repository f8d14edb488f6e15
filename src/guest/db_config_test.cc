#include "guest/db_config.h"

#include <gtest/gtest.h>

namespace pinata::guest {
namespace {

TEST(ParseSysctlConf, ReadsSettingsAndSkipsCommentsAndBlankLines) {
  std::vector<std::string> errors;
  auto s = parse_sysctl_conf(
      "# comment\n; also\n\nnet.ipv4.ip_forward = 1\n  vm.max_map_count=262144  \n"
      "-kernel.foo = a b c\n",
      &errors);

  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].key, "net.ipv4.ip_forward");
  EXPECT_EQ(s[0].value, "1");
  EXPECT_EQ(s[1].key, "vm.max_map_count");
  EXPECT_EQ(s[1].value, "262144");
  EXPECT_EQ(s[2].key, "kernel.foo");
  EXPECT_EQ(s[2].value, "a b c");
  EXPECT_TRUE(errors.empty());
}

TEST(ParseSysctlConf, ReportsLinesThatAreNotSettings) {
  std::vector<std::string> errors;
  auto s = parse_sysctl_conf("garbage\n../../etc/passwd = x\nok.key = 2\n", &errors);

  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].key, "ok.key");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0], "line 1: not `key = value`");
  EXPECT_EQ(errors[1], "line 2: invalid key");
}

TEST(ParseRegistryList, SplitsOnCommasSpacesAndNewlines) {
  auto r = parse_registry_list("a.example:5000, b.example\nc:1 ,,\n");

  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0], "a.example:5000");
  EXPECT_EQ(r[1], "b.example");
  EXPECT_EQ(r[2], "c:1");
  EXPECT_TRUE(parse_registry_list(" \n").empty());
}

TEST(JsonMentionsKey, FindsObjectKeysOnly) {
  EXPECT_TRUE(json_mentions_key(R"({"insecure-registries" : ["x"]})", "insecure-registries"));
  EXPECT_FALSE(json_mentions_key(R"({"labels": ["insecure-registries"]})", "insecure-registries"));
  EXPECT_FALSE(json_mentions_key("{}", "debug"));
}

}  // namespace
}  // namespace pinata::guest
