#include "disk/raw_disk.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "disk/qcow2_disk.h"

namespace pinata::disk {
namespace {

class RawDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pinata-raw-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST_F(RawDiskTest, WritesReadBackAndDiscardReadsZerosAndFreesSpace) {
  std::string p = dir_ + "/a.raw";
  ASSERT_TRUE(RawDisk::create(p, 8 << 20));
  auto d = open_disk(p);
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ((*d)->format(), ImageFormat::kRaw);
  std::vector<uint8_t> data(4 << 20, 0xab);
  ASSERT_TRUE((*d)->write(4096, data));
  ASSERT_TRUE((*d)->flush());
  uint64_t allocated = (*d)->info()->allocated_bytes;
  ASSERT_TRUE((*d)->discard(4096, 2 << 20));
  EXPECT_LT((*d)->info()->allocated_bytes, allocated);
  std::vector<uint8_t> got(4 << 20);
  ASSERT_TRUE((*d)->read(4096, got));
  EXPECT_TRUE(std::all_of(got.begin(), got.begin() + (2 << 20), [](uint8_t b) { return b == 0; }));
  EXPECT_TRUE(std::all_of(got.begin() + (2 << 20), got.end(), [](uint8_t b) { return b == 0xab; }));
  ASSERT_TRUE((*d)->write_zeroes(3 << 20, 100, Unmap::kNo));
  ASSERT_TRUE((*d)->read(3 << 20, std::span<uint8_t>(got.data(), 200)));
  EXPECT_TRUE(std::all_of(got.begin(), got.begin() + 100, [](uint8_t b) { return b == 0; }));
  EXPECT_EQ(got[100], 0xab);
  EXPECT_FALSE((*d)->read((8 << 20) - 10, std::span<uint8_t>(got.data(), 20)));
}

TEST_F(RawDiskTest, ProbeTellsQcow2FromRaw) {
  std::string raw = dir_ + "/a.raw", q = dir_ + "/a.qcow2";
  ASSERT_TRUE(RawDisk::create(raw, 1 << 20));
  Qcow2CreateOptions o;
  o.virtual_size = 1 << 20;
  ASSERT_TRUE(Qcow2Disk::create(q, o));
  EXPECT_EQ(*probe_format(raw), ImageFormat::kRaw);
  EXPECT_EQ(*probe_format(q), ImageFormat::kQcow2);
  auto d = open_disk(q);
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)->format(), ImageFormat::kQcow2);
  EXPECT_FALSE(probe_format(dir_ + "/missing"));
}

}  // namespace
}  // namespace pinata::disk
