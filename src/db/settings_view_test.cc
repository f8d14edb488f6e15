#include "db/settings_view.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

namespace pinata::db {
namespace {

const std::string kDir = std::string(kDriverDir) + "/";

TEST(SettingsView, DefaultsWithoutADatabase) {
  char tmpl[] = "/tmp/pinata-db-view.XXXXXX";
  std::string home = ::mkdtemp(tmpl);
  auto s = read_settings_at_home(home);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->head, "");
  EXPECT_EQ(s->hypervisor, "qemu");
  EXPECT_EQ(s->memory_gib, 2);
  EXPECT_EQ(s->ncpu, 2);
  EXPECT_EQ(s->daemon_json, "{\"debug\":false}");
  EXPECT_EQ(s->hostname, "pinata");
  EXPECT_EQ(s->network, "slirp");
  EXPECT_FALSE(s->external_bind);
  EXPECT_EQ(s->slirp_docker, "192.168.65.2");
  EXPECT_EQ(s->slirp_host, "192.168.65.1");
  EXPECT_TRUE(s->insecure_registries.empty());
  EXPECT_TRUE(s->warnings.empty());
  EXPECT_FALSE(std::filesystem::exists(home + "/database"));  // reading creates nothing
  std::filesystem::remove_all(home);
}

TEST(SettingsView, TypedValuesFromTheFiles) {
  DbSettings s = settings_from_files({{kDir + "memory", "6\n"},
                                      {kDir + "ncpu", "3\n"},
                                      {kDir + "insecure-registry", "a.example:5000,10.0.0.9\n"},
                                      {kDir + "slirp/external-bind", "true\n"},
                                      {kDir + "etc/sysctl.conf", "vm.swappiness = 5\n"}});
  EXPECT_EQ(s.memory_gib, 6);
  EXPECT_EQ(s.ncpu, 3);
  EXPECT_EQ(s.insecure_registries, (std::vector<std::string>{"a.example:5000", "10.0.0.9"}));
  EXPECT_TRUE(s.external_bind);
  EXPECT_EQ(s.sysctl_conf, "vm.swappiness = 5");
}

TEST(SettingsView, InvalidStoredValuesFallBackToDefaultsWithWarnings) {
  DbSettings s = settings_from_files({{kDir + "memory", "lots\n"},
                                      {kDir + "hypervisor", "native\n"},
                                      {kDir + "slirp/host", "10.9.9.1\n"}});
  EXPECT_EQ(s.memory_gib, 2);
  EXPECT_EQ(s.hypervisor, "qemu");
  EXPECT_EQ(s.slirp_host, "192.168.65.1");
  EXPECT_EQ(s.slirp_docker, "192.168.65.2");
  EXPECT_EQ(s.warnings.size(), 3u);
}

TEST(SettingsView, ReadsAtTheHeadOfAStore) {
  char tmpl[] = "/tmp/pinata-db-view.XXXXXX";
  std::string home = ::mkdtemp(tmpl);
  auto store = Store::open_or_init(database_path(home), seed_files());
  ASSERT_TRUE(store) << store.error().message();
  Transaction t;
  t.change.puts[kDir + "memory"] = "5\n";
  t.message = "set memory=5";
  auto c = store->commit(t);
  ASSERT_TRUE(c);
  auto s = read_settings(*store);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->memory_gib, 5);
  EXPECT_EQ(s->head, c->id);
  auto again = read_settings_at_home(home);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->memory_gib, 5);
  std::filesystem::remove_all(home);
}

}  // namespace
}  // namespace pinata::db
