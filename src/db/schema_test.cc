#include "db/schema.h"

#include <gtest/gtest.h>

namespace pinata::db {
namespace {

const KeySpec& key(std::string_view name) {
  const KeySpec* k = find_key(name);
  EXPECT_NE(k, nullptr) << name;
  return *k;
}

std::string accept(std::string_view name, std::string_view value) {
  auto v = normalize(key(name), value);
  EXPECT_TRUE(v) << name << "=" << value << ": " << (v ? "" : v.error().message());
  return v ? *v : "";
}

std::string refuse(std::string_view name, std::string_view value) {
  auto v = normalize(key(name), value);
  EXPECT_FALSE(v) << name << "=" << value << " was accepted as " << (v ? *v : "");
  return v ? "" : v.error().message();
}

TEST(Schema, HasEveryKeyOfTheSeed) {
  for (const char* path : {"etc/docker/daemon.json",
                           "etc/hostname",
                           "etc/sysctl.conf",
                           "expose-docker-socket",
                           "filesystem",
                           "hypervisor",
                           "insecure-registry",
                           "memory",
                           "ncpu",
                           "native/boot-protocol",
                           "native/port-forwarding",
                           "native/uefi-boot-disk",
                           "network",
                           "on-sleep",
                           "proxy-verbose",
                           "schema-version",
                           "slirp/docker",
                           "slirp/host",
                           "version",
                           "vmnet-simulate-failure"}) {
    const KeySpec* k = find_key(path);
    ASSERT_NE(k, nullptr) << path;
    EXPECT_EQ(k->full_path(), std::string("com.docker.driver.amd64-linux/") + path);
    EXPECT_FALSE(k->description.empty()) << path;
  }
}

TEST(Schema, EveryDefaultIsValidAndNormalized) {
  for (const auto& k : schema()) {
    auto v = normalize(k, k.default_value);
    ASSERT_TRUE(v) << k.name << ": " << v.error().message();
    EXPECT_EQ(*v, k.default_value) << k.name;
  }
  EXPECT_TRUE(check_consistency(resolve_values({})));
}

TEST(Schema, EveryParameterNamesAKeyThatPointsBack) {
  for (const auto& k : schema()) {
    for (const auto& p : k.params) {
      const KeySpec* param = find_key(p);
      ASSERT_NE(param, nullptr) << p;
      EXPECT_EQ(param->param_of, k.name);
    }
  }
}

TEST(Schema, FindsKeysByShortNameAliasAndPath) {
  EXPECT_EQ(find_key("daemon"), find_key("etc/docker/daemon.json"));
  EXPECT_EQ(find_key("daemon.json"), find_key("daemon"));
  EXPECT_EQ(find_key("com.docker.driver.amd64-linux/etc/docker/daemon.json"), find_key("daemon"));
  EXPECT_EQ(find_key("sysctl"), find_key("etc/sysctl.conf"));
  EXPECT_EQ(find_key("external-bind"), find_key("slirp/external-bind"));
  EXPECT_EQ(find_key("nosuchkey"), nullptr);
  EXPECT_EQ(find_key("com.docker.driver.amd64-linux/"), nullptr);
  EXPECT_NE(unknown_key_message("nosuchkey").find("known settings: daemon, "), std::string::npos);
}

TEST(Schema, IntegersAreCheckedAgainstTheirRange) {
  EXPECT_EQ(accept("memory", "4"), "4");
  EXPECT_EQ(accept("memory", " 64\n"), "64");
  EXPECT_EQ(accept("ncpu", "1"), "1");
  EXPECT_EQ(refuse("ncpu", "0"), "ncpu must be an integer from 1 to 64, got \"0\"");
  refuse("ncpu", "65");
  refuse("memory", "-1");
  refuse("memory", "2x");
  refuse("memory", "");
  refuse("memory", "4 GiB");
  refuse("memory", "99999999999999999999999");
}

TEST(Schema, EnumsAcceptOptionsAndExplainUnsupportedValues) {
  EXPECT_EQ(accept("hypervisor", "qemu"), "qemu");
  EXPECT_EQ(refuse("hypervisor", "native"),
            "hypervisor \"native\" is not yet supported on Linux; accepted: qemu");
  EXPECT_NE(refuse("hypervisor", "hyperkit").find("macOS only"), std::string::npos);
  EXPECT_EQ(refuse("hypervisor", "xen"), "hypervisor must be qemu, got \"xen\"");
  EXPECT_EQ(accept("network", "slirp"), "slirp");
  EXPECT_NE(refuse("network", "hostnet").find("not yet supported on Linux"), std::string::npos);
  EXPECT_NE(refuse("network", "vmnet").find("accepted on Linux: slirp"), std::string::npos);
  EXPECT_EQ(accept("filesystem", "virtio-fs"), "virtio-fs");
  EXPECT_EQ(accept("filesystem", "none"), "none");
  EXPECT_NE(refuse("filesystem", "osxfs").find("macOS only"), std::string::npos);
  EXPECT_EQ(refuse("filesystem", "nfs"), "filesystem must be one of virtio-fs, none, got \"nfs\"");
  EXPECT_EQ(accept("on-sleep", "freeze"), "freeze");
  EXPECT_EQ(accept("on-sleep", "none"), "none");
  refuse("on-sleep", "sleep");
  EXPECT_EQ(accept("native/boot-protocol", "linux"), "linux");
  refuse("native/boot-protocol", "uefi");
}

TEST(Schema, BooleansAreTrueOrFalse) {
  EXPECT_EQ(accept("proxy-verbose", "TRUE"), "true");
  EXPECT_EQ(accept("external-bind", "false"), "false");
  EXPECT_EQ(accept("native/port-forwarding", "false"), "false");
  EXPECT_EQ(refuse("proxy-verbose", "yes"),
            "proxy-verbose must be one of true, false, got \"yes\"");
  EXPECT_EQ(accept("expose-docker-socket", "false"), "false");
  EXPECT_NE(refuse("expose-docker-socket", "true").find("not yet supported on Linux"),
            std::string::npos);
  EXPECT_EQ(accept("vmnet-simulate-failure", "false"), "false");
  EXPECT_NE(refuse("vmnet-simulate-failure", "true").find("macOS only"), std::string::npos);
}

TEST(Schema, HostnameIsAnRfc1123Label) {
  EXPECT_EQ(accept("hostname", "pinata"), "pinata");
  EXPECT_EQ(accept("hostname", "Docker-VM-2"), "Docker-VM-2");
  EXPECT_EQ(accept("hostname", std::string(63, 'a')), std::string(63, 'a'));
  refuse("hostname", std::string(64, 'a'));
  refuse("hostname", "");
  refuse("hostname", "-lead");
  refuse("hostname", "trail-");
  refuse("hostname", "has.dot");
  refuse("hostname", "under_score");
  refuse("hostname", "two words");
}

TEST(Schema, SlirpAddressesAreUnicastIpv4InOneSlash24) {
  EXPECT_EQ(accept("slirp/docker", "10.0.75.2"), "10.0.75.2");
  refuse("slirp/docker", "10.0.75");
  refuse("slirp/docker", "10.0.75.256");
  refuse("slirp/docker", "10.0.075.2");
  refuse("slirp/docker", "10.0.75.0");
  refuse("slirp/host", "10.0.75.255");
  refuse("slirp/host", "127.0.0.1");
  refuse("slirp/host", "224.0.0.1");
  refuse("slirp/host", "host.example");
  Values v = resolve_values({});
  v.by_name["slirp/host"] = "10.0.0.1";
  auto bad = check_consistency(v);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("same /24"), std::string::npos);
  v.by_name["slirp/docker"] = "10.0.0.1";
  EXPECT_FALSE(check_consistency(v));  // the same address twice
  v.by_name["slirp/docker"] = "10.0.0.2";
  EXPECT_TRUE(check_consistency(v));
}

TEST(Schema, DaemonJsonMustBeAJsonObject) {
  EXPECT_EQ(accept("daemon", "{\"debug\":true}\n"), "{\"debug\":true}");
  EXPECT_EQ(accept("daemon", "{\n  \"debug\": true\n}\n"), "{\n  \"debug\": true\n}");
  EXPECT_NE(refuse("daemon", "{\"debug\":tru}").find("daemon must be a JSON object: line 1"),
            std::string::npos);
  refuse("daemon", "[]");
  refuse("daemon", "");
  refuse("daemon", "{\"a\":1,\"a\":2}");
  refuse("daemon", std::string(70000, ' ') + "{}");
}

TEST(Schema, SysctlIsKeyValueLinesOrComments) {
  EXPECT_EQ(accept("sysctl",
                   "# comment\n\nnet.ipv4.ip_forward = 1\n; other\n"
                   "-kernel.panic=10\nnet/ipv4/ip_local_port_range = 32768 60999\n"),
            "# comment\n\nnet.ipv4.ip_forward = 1\n; other\n-kernel.panic=10\n"
            "net/ipv4/ip_local_port_range = 32768 60999");
  EXPECT_EQ(accept("sysctl", ""), "");
  EXPECT_NE(refuse("sysctl", "vm.swappiness = 10\nnonsense\n").find("sysctl line 2 must be"),
            std::string::npos);
  refuse("sysctl", "net.ipv4.ip_forward =");
  refuse("sysctl", "= 1");
  refuse("sysctl", "net..ipv4 = 1");
  refuse("sysctl", "../../etc/passwd = 1");
  refuse("sysctl", "/abs = 1");
  refuse("sysctl", "kernel.panic = 1\x1b[0m");
}

TEST(Schema, InsecureRegistriesAreHostPortItems) {
  EXPECT_EQ(accept("insecure-registry", ""), "");
  EXPECT_EQ(accept("insecure-registry", "registry.local:5000, 10.1.2.3\nmirror.example"),
            "registry.local:5000,10.1.2.3,mirror.example");
  EXPECT_EQ(accept("insecure-registry", "a.example,a.example,"), "a.example");
  refuse("insecure-registry", "http://registry.local");
  refuse("insecure-registry", "registry.local:0");
  refuse("insecure-registry", "registry.local:65536");
  refuse("insecure-registry", "registry.local:");
  refuse("insecure-registry", "bad host");
  refuse("insecure-registry", "-bad.example");
}

TEST(Schema, PathsAndTextAreOneLine) {
  EXPECT_EQ(accept("native/uefi-boot-disk", ""), "");
  EXPECT_EQ(accept("native/uefi-boot-disk", "/var/lib/disk.img"), "/var/lib/disk.img");
  refuse("native/uefi-boot-disk", "relative.img");
  refuse("native/uefi-boot-disk", "/a\nb");
  EXPECT_EQ(accept("version", "1"), "1");
  refuse("version", "1\n2");
}

TEST(Schema, ReadOnlyKeysCannotBeSet) {
  auto r = normalize_for_set(key("schema-version"), "2");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "schema-version is managed by pinata and cannot be set");
  EXPECT_FALSE(normalize_for_set(key("version"), "2"));
  EXPECT_TRUE(normalize_for_set(key("memory"), "2"));
}

TEST(Schema, StoredValuesEndWithOneNewline) {
  EXPECT_EQ(encode_value("4"), "4\n");
  EXPECT_EQ(decode_value("4\n"), "4");
  EXPECT_EQ(decode_value("4\r\n\n"), "4");
  EXPECT_EQ(decode_value("a\nb\n"), "a\nb");
}

TEST(Schema, MissingAndInvalidStoredValuesReadAsDefaults) {
  Files files = {{"com.docker.driver.amd64-linux/memory", "8\n"},
                 {"com.docker.driver.amd64-linux/ncpu", "lots\n"},
                 {"com.docker.driver.amd64-linux/unrelated", "x\n"}};
  Values v = resolve_values(files);
  EXPECT_EQ(v["memory"], "8");
  EXPECT_EQ(v["ncpu"], "2");
  EXPECT_EQ(v["hypervisor"], "qemu");
  EXPECT_EQ(v.stored, std::set<std::string>{"memory"});
  ASSERT_EQ(v.warnings.size(), 1u);
  EXPECT_NE(v.warnings[0].find("ncpu is invalid"), std::string::npos);
}

TEST(Schema, SeedHasEveryKeyAtItsDefault) {
  Files seed = seed_files();
  EXPECT_EQ(seed.size(), schema().size());
  EXPECT_EQ(seed.at("com.docker.driver.amd64-linux/hypervisor"), "qemu\n");
  EXPECT_EQ(seed.at("com.docker.driver.amd64-linux/insecure-registry"), "\n");
  EXPECT_TRUE(is_schema_path("com.docker.driver.amd64-linux/etc/hostname"));
  EXPECT_FALSE(is_schema_path("com.docker.driver.amd64-linux/etc"));
  EXPECT_FALSE(is_schema_path("README"));
}

}  // namespace
}  // namespace pinata::db
