#include "disk/qcow2_format.h"

#include <gtest/gtest.h>

#include <cstring>

namespace pinata::disk::qcow2 {
namespace {

// A valid v3 image's first cluster: header at 0, refcount table at cluster 1, L1 at cluster 3.
Header valid_header() {
  Header h;
  h.version = 3;
  h.cluster_bits = 16;
  h.size = 1 << 30;
  h.l1_size = 2;
  h.l1_table_offset = 3 << 16;
  h.refcount_table_offset = 1 << 16;
  h.refcount_table_clusters = 1;
  h.refcount_order = 4;
  h.header_length = kV3HeaderLength;
  return h;
}

constexpr uint64_t kFileSize = 4 << 16;

Result<Header> parse(const std::vector<uint8_t>& bytes) { return parse_header(bytes, kFileSize); }

std::string error_of(const std::vector<uint8_t>& bytes) {
  auto r = parse(bytes);
  return r ? "" : r.error().message();
}

TEST(Qcow2Format, ParsesWhatItSerializes) {
  Header h = valid_header();
  h.backing_file = "base.img";
  h.backing_format = "raw";
  auto parsed = parse(serialize_header(h));
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->version, 3u);
  EXPECT_EQ(parsed->cluster_size(), 65536u);
  EXPECT_EQ(parsed->size, uint64_t{1} << 30);
  EXPECT_EQ(parsed->l1_table_offset, 3u << 16);
  EXPECT_EQ(parsed->backing_file, "base.img");
  EXPECT_EQ(parsed->backing_format, "raw");
  EXPECT_FALSE(parsed->feature_names.empty());
}

TEST(Qcow2Format, ParsesVersion2WithImpliedFields) {
  Header h = valid_header();
  h.version = 2;
  auto parsed = parse(serialize_header(h));
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->header_length, kV2HeaderLength);
  EXPECT_EQ(parsed->refcount_order, 4u);
  EXPECT_EQ(parsed->incompatible_features, 0u);
}

TEST(Qcow2Format, RejectsBadMagicAsNotQcow2) {
  auto bytes = serialize_header(valid_header());
  bytes[0] = 'X';
  auto r = parse(bytes);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidInput);
}

TEST(Qcow2Format, RejectsUnsupportedVersion) {
  auto bytes = serialize_header(valid_header());
  store_be32(bytes.data() + 4, 4);
  auto r = parse(bytes);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kUnsupported);
}

TEST(Qcow2Format, RejectsUnknownIncompatibleFeatureNamingTheBitAndItsName) {
  auto bytes = serialize_header(valid_header());
  store_be64(bytes.data() + kOffIncompatible, (1ull << 9) | kIncompatDirty);
  auto r = parse(bytes);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kUnsupported);
  EXPECT_NE(r.error().message().find("bit 9"), std::string::npos) << r.error().message();
  EXPECT_EQ(r.error().message().find("bit 0"), std::string::npos) << r.error().message();

  // A feature-name table entry for the bit gives it a name in the message.
  Header h = valid_header();
  auto named = serialize_header(h);
  // Rewrite the first feature-table entry (incompatible bit 0) as incompatible bit 9.
  uint64_t off = h.header_length;
  ASSERT_EQ(load_be32(named.data() + off), kExtFeatureTable);
  named[off + 8 + 1] = 9;
  std::memset(named.data() + off + 8 + 2, 0, 46);
  std::memcpy(named.data() + off + 8 + 2, "frobnication", 12);
  store_be64(named.data() + kOffIncompatible, 1ull << 9);
  EXPECT_NE(error_of(named).find("bit 9 (frobnication)"), std::string::npos) << error_of(named);
}

TEST(Qcow2Format, RejectsKnownButUnsupportedIncompatibleFeatures) {
  for (uint64_t bit : {kIncompatDataFile, kIncompatCompressionType, kIncompatExtendedL2}) {
    auto bytes = serialize_header(valid_header());
    store_be64(bytes.data() + kOffIncompatible, bit);
    auto r = parse(bytes);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind(), ErrorKind::kUnsupported);
  }
  auto bytes = serialize_header(valid_header());
  store_be64(bytes.data() + kOffIncompatible, kIncompatExtendedL2);
  EXPECT_NE(error_of(bytes).find("extended L2 entries"), std::string::npos);
}

TEST(Qcow2Format, RejectsClusterBitsOutOfRange) {
  for (uint32_t bits : {0u, 8u, 22u, 63u, 0xffffffffu}) {
    auto bytes = serialize_header(valid_header());
    store_be32(bytes.data() + 20, bits);
    auto r = parse(bytes);
    ASSERT_FALSE(r) << bits;
    EXPECT_EQ(r.error().kind(), ErrorKind::kCorrupt);
  }
}

TEST(Qcow2Format, RejectsL1TableTooLargeOrTooSmall) {
  auto bytes = serialize_header(valid_header());
  store_be32(bytes.data() + 36, 0x10000000);
  EXPECT_NE(error_of(bytes).find("too large"), std::string::npos) << error_of(bytes);
  store_be32(bytes.data() + 36, 1);  // 1 GiB with 64 KiB clusters needs 2 entries
  EXPECT_NE(error_of(bytes).find("too small"), std::string::npos) << error_of(bytes);
}

TEST(Qcow2Format, RejectsHugeVirtualSize) {
  auto bytes = serialize_header(valid_header());
  store_be64(bytes.data() + 24, ~0ull);
  EXPECT_NE(error_of(bytes).find("virtual size"), std::string::npos);
}

TEST(Qcow2Format, RejectsTablesThatAreUnalignedBeyondTheFileOrInTheHeader) {
  auto bytes = serialize_header(valid_header());
  store_be64(bytes.data() + kOffL1TableOffset, (3 << 16) + 512);
  EXPECT_FALSE(parse(bytes));
  store_be64(bytes.data() + kOffL1TableOffset, 100ull << 16);
  EXPECT_FALSE(parse(bytes));
  store_be64(bytes.data() + kOffL1TableOffset, 0);
  EXPECT_NE(error_of(bytes).find("header"), std::string::npos);

  bytes = serialize_header(valid_header());
  store_be64(bytes.data() + kOffRefcountTable, 0);
  EXPECT_FALSE(parse(bytes));
  store_be64(bytes.data() + kOffRefcountTable, 3 << 16);  // on top of the L1 table
  EXPECT_NE(error_of(bytes).find("overlaps the L1"), std::string::npos) << error_of(bytes);
}

TEST(Qcow2Format, RejectsHeaderExtensionOverrunningTheCluster) {
  Header h = valid_header();
  auto bytes = serialize_header(h);
  store_be32(bytes.data() + h.header_length + 4, 0x7fffffff);
  EXPECT_NE(error_of(bytes).find("overruns"), std::string::npos);
}

TEST(Qcow2Format, SkipsUnknownHeaderExtensions) {
  Header h = valid_header();
  auto bytes = serialize_header(h);
  // Insert an unknown extension in front of the others.
  std::vector<uint8_t> ext(16, 0);
  store_be32(ext.data(), 0x12345678);
  store_be32(ext.data() + 4, 5);
  bytes.insert(bytes.begin() + h.header_length, ext.begin(), ext.end());
  bytes.resize(h.cluster_size());
  auto r = parse(bytes);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->unknown_extensions.size(), 1u);
  EXPECT_EQ(r->unknown_extensions[0], 0x12345678u);
  EXPECT_FALSE(r->feature_names.empty());
}

TEST(Qcow2Format, RejectsEncryptedImages) {
  auto bytes = serialize_header(valid_header());
  store_be32(bytes.data() + 32, 2);
  auto r = parse(bytes);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kUnsupported);
}

TEST(Qcow2Format, RejectsRefcountOrderAboveSixAndBadHeaderLength) {
  auto bytes = serialize_header(valid_header());
  store_be32(bytes.data() + 96, 7);
  EXPECT_FALSE(parse(bytes));
  bytes = serialize_header(valid_header());
  store_be32(bytes.data() + 100, 105);
  EXPECT_FALSE(parse(bytes));
}

TEST(Qcow2Format, RejectsBackingFileNameOutsideTheFirstCluster) {
  Header h = valid_header();
  h.backing_file = "base";
  auto bytes = serialize_header(h);
  store_be64(bytes.data() + 8, 70000);
  EXPECT_NE(error_of(bytes).find("backing file name"), std::string::npos);
  store_be64(bytes.data() + 8, 1024);
  store_be32(bytes.data() + 16, 5000);
  EXPECT_FALSE(parse(bytes));
}

TEST(Qcow2Format, RejectsTruncatedFile) {
  std::vector<uint8_t> bytes(40, 0);
  EXPECT_FALSE(parse_header(bytes, 40));
}

TEST(Qcow2Format, DecodesCompressedClusterDescriptor) {
  // 64 KiB clusters: x = 62 - 8 = 54 offset bits; 3 additional sectors.
  uint64_t entry = kOflagCompressed | (3ull << 54) | 0x50123;
  CompressedExtent e = decode_compressed(entry, 16);
  EXPECT_EQ(e.offset, 0x50123u);
  EXPECT_EQ(e.length, 4 * 512 - 0x123u);
}

TEST(Qcow2Format, ComputesL1EntriesForSize) {
  EXPECT_EQ(l1_entries_for(0, 16), 0u);
  EXPECT_EQ(l1_entries_for(1, 16), 1u);
  EXPECT_EQ(l1_entries_for(512ull << 20, 16), 1u);
  EXPECT_EQ(l1_entries_for((512ull << 20) + 1, 16), 2u);
  EXPECT_EQ(l1_entries_for(2ull << 20, 12), 1u);
}

}  // namespace
}  // namespace pinata::disk::qcow2
