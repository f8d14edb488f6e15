#include "guest/modinfo.h"

#include <gtest/gtest.h>

#include <cstring>

namespace pinata::guest {
namespace {

void put(std::vector<uint8_t>& b, size_t off, uint64_t v, size_t n) {
  if (b.size() < off + n) b.resize(off + n, 0);
  for (size_t i = 0; i < n; i++) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

// A minimal ELF64 with sections: [0] null, [1] .shstrtab, [2] .modinfo.
std::vector<uint8_t> fake_module(std::string_view modinfo) {
  std::vector<uint8_t> b(64, 0);
  std::memcpy(b.data(),
              "\x7f"
              "ELF",
              4);
  b[4] = 2;
  b[5] = 1;
  std::string shstr("\0.shstrtab\0.modinfo\0", 20);
  size_t shstr_off = b.size();
  b.insert(b.end(), shstr.begin(), shstr.end());
  size_t info_off = b.size();
  b.insert(b.end(), modinfo.begin(), modinfo.end());
  size_t shoff = b.size();
  b.resize(shoff + 3 * 64, 0);
  put(b, 0x28, shoff, 8);
  put(b, 0x3a, 64, 2);
  put(b, 0x3c, 3, 2);
  put(b, 0x3e, 1, 2);
  put(b, shoff + 64 + 0, 1, 4);  // name ".shstrtab"
  put(b, shoff + 64 + 0x18, shstr_off, 8);
  put(b, shoff + 64 + 0x20, shstr.size(), 8);
  put(b, shoff + 128 + 0, 11, 4);  // name ".modinfo"
  put(b, shoff + 128 + 0x18, info_off, 8);
  put(b, shoff + 128 + 0x20, modinfo.size(), 8);
  return b;
}

TEST(ModInfo, ReadsNameAndDepends) {
  std::string info("license=GPL\0depends=virtio,virtio_ring\0name=virtio_blk\0", 56);
  auto m = parse_modinfo(fake_module(info));
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->name, "virtio_blk");
  EXPECT_EQ(m->depends, (std::vector<std::string>{"virtio", "virtio_ring"}));
}

TEST(ModInfo, EmptyDepends) {
  std::string info("depends=\0name=ext-4\0", 20);
  auto m = parse_modinfo(fake_module(info));
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->depends.empty());
  EXPECT_EQ(m->name, "ext_4");
}

TEST(ModInfo, RejectsNonElfAndTruncation) {
  EXPECT_FALSE(parse_modinfo(std::vector<uint8_t>(10, 0)));
  auto b = fake_module(std::string("name=x\0", 7));
  for (size_t n = 0; n < b.size(); n++) {
    std::vector<uint8_t> cut(b.begin(), b.begin() + n);
    EXPECT_FALSE(parse_modinfo(cut)) << n;  // the section table is at the end
  }
}

TEST(ModInfo, RejectsOutOfRangeSection) {
  auto b = fake_module(std::string("name=x\0", 7));
  size_t shoff = b.size() - 3 * 64;
  put(b, shoff + 128 + 0x20, 1ull << 40, 8);
  EXPECT_FALSE(parse_modinfo(b));
}

TEST(ModuleName, FromPath) {
  EXPECT_EQ(module_name_from_path("/lib/modules/6.1/kernel/fs/ext4/ext4.ko"), "ext4");
  EXPECT_EQ(module_name_from_path("/x/nf-nat.ko.xz"), "nf_nat");
  EXPECT_EQ(module_name_from_path("virtio_blk.ko.zst"), "virtio_blk");
}

TEST(FirstGroup, TakesNamedModulesAndTheirDependencies) {
  std::vector<ModInfo> mods = {
      {"crc16", {}},       {"mbcache", {}},  {"jbd2", {}}, {"ext4", {"crc16", "mbcache", "jbd2"}},
      {"bridge", {"stp"}}, {"stp", {"llc"}}, {"llc", {}},  {"virtio_blk", {}}};
  auto first = first_group(mods, std::vector<bool>(mods.size(), true), {"ext4", "virtio-blk"});
  EXPECT_EQ(first, (std::vector<bool>{true, true, true, true, false, false, false, true}));
}

TEST(FirstGroup, FollowsDependenciesTransitively) {
  std::vector<ModInfo> mods = {{"llc", {}}, {"stp", {"llc"}}, {"bridge", {"stp"}}, {"veth", {}}};
  auto first = first_group(mods, std::vector<bool>(mods.size(), true), {"bridge"});
  EXPECT_EQ(first, (std::vector<bool>{true, true, true, false}));
}

TEST(FirstGroup, NamesNotInTheListAreIgnored) {
  std::vector<ModInfo> mods = {{"a", {"builtin_dep"}}, {"b", {}}};
  auto first = first_group(mods, {true, true}, {"a", "missing"});
  EXPECT_EQ(first, (std::vector<bool>{true, false}));
}

TEST(FirstGroup, UnknownMetadataPutsEverythingFirst) {
  std::vector<ModInfo> mods = {{"a", {}}, {"b", {}}, {"c", {}}};
  auto first = first_group(mods, {true, false, true}, {"a"});
  EXPECT_EQ(first, (std::vector<bool>{true, true, true}));
}

}  // namespace
}  // namespace pinata::guest
