#include "guest/disks.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace pinata::guest {
namespace {

std::vector<uint8_t> superblock(uint16_t magic, const char* label) {
  std::vector<uint8_t> sb(kSuperblockSize, 0);
  sb[kMagicOffset] = static_cast<uint8_t>(magic & 0xff);
  sb[kMagicOffset + 1] = static_cast<uint8_t>(magic >> 8);
  std::memcpy(sb.data() + kLabelOffset, label, std::min(std::strlen(label), kLabelSize));
  return sb;
}

TEST(Ext4Superblock, ReadsLabel) {
  auto sb = parse_ext4_superblock(superblock(0xEF53, "pinata-root"));
  ASSERT_TRUE(sb);
  EXPECT_EQ(sb->label, "pinata-root");
}

TEST(Ext4Superblock, EmptyLabel) {
  auto sb = parse_ext4_superblock(superblock(0xEF53, ""));
  ASSERT_TRUE(sb);
  EXPECT_EQ(sb->label, "");
}

TEST(Ext4Superblock, FullSixteenByteLabelWithoutNul) {
  auto sb = parse_ext4_superblock(superblock(0xEF53, "0123456789abcdefXYZ"));
  ASSERT_TRUE(sb);
  EXPECT_EQ(sb->label, "0123456789abcdef");
}

TEST(Ext4Superblock, RejectsWrongMagic) {
  EXPECT_FALSE(parse_ext4_superblock(superblock(0x53EF, "pinata-root")));
  EXPECT_FALSE(parse_ext4_superblock(std::vector<uint8_t>(kSuperblockSize, 0)));
}

TEST(Ext4Superblock, RejectsTruncatedBuffer) {
  auto sb = superblock(0xEF53, "pinata-root");
  sb.resize(kLabelOffset + kLabelSize - 1);
  EXPECT_FALSE(parse_ext4_superblock(sb));
  EXPECT_FALSE(parse_ext4_superblock({}));
}

DiskProbe probe(const char* name, std::optional<const char*> label) {
  DiskProbe d{name, std::nullopt};
  if (label) d.ext4 = Ext4Superblock{*label};
  return d;
}

TEST(ClassifyDisks, RootByLabelDataIsTheOther) {
  auto layout = classify_disks({probe("vda", std::nullopt), probe("vdb", "pinata-root")});
  EXPECT_EQ(layout.root, "vdb");
  EXPECT_EQ(layout.data, "vda");
  EXPECT_TRUE(layout.warnings.empty());
}

TEST(ClassifyDisks, FormattedDataDiskIsFound) {
  auto layout = classify_disks({probe("vda", "pinata-root"), probe("vdb", "pinata-data")});
  EXPECT_EQ(layout.root, "vda");
  EXPECT_EQ(layout.data, "vdb");
}

TEST(ClassifyDisks, NoDataDisk) {
  auto layout = classify_disks({probe("vda", "pinata-root")});
  EXPECT_EQ(layout.root, "vda");
  EXPECT_FALSE(layout.data);
}

TEST(ClassifyDisks, NoRootDisk) {
  auto layout = classify_disks({probe("vda", std::nullopt), probe("vdb", "other")});
  EXPECT_FALSE(layout.root);
}

TEST(ClassifyDisks, SeveralCandidatesPreferDataLabelAndWarn) {
  auto layout = classify_disks(
      {probe("vdc", "pinata-data"), probe("vda", "pinata-root"), probe("vdb", std::nullopt)});
  EXPECT_EQ(layout.data, "vdc");
  EXPECT_EQ(layout.warnings.size(), 1u);
}

TEST(ClassifyDisks, DuplicateRootIsNeverData) {
  auto layout = classify_disks({probe("vda", "pinata-root"), probe("vdb", "pinata-root")});
  EXPECT_EQ(layout.root, "vda");
  EXPECT_FALSE(layout.data);
  EXPECT_EQ(layout.warnings.size(), 1u);
}

}  // namespace
}  // namespace pinata::guest
