#include "disk/qcow2_disk.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "disk/raw_disk.h"

namespace pinata::disk {
namespace {

using qcow2::load_be64;
using qcow2::store_be64;

constexpr uint64_t kMiB = 1 << 20;

class Qcow2DiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pinata-qcow2-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string create(const std::string& name, uint64_t size, uint32_t cluster = 65536, uint32_t version = 3,
                     uint32_t refcount_order = 4) {
    Qcow2CreateOptions o;
    o.virtual_size = size;
    o.cluster_size = cluster;
    o.version = version;
    o.refcount_order = refcount_order;
    auto st = Qcow2Disk::create(path(name), o);
    EXPECT_TRUE(st) << st.error().message();
    return path(name);
  }

  std::unique_ptr<Qcow2Disk> open(const std::string& p, Access access = Access::kReadWrite, size_t cache = 32 << 20) {
    OpenOptions o;
    o.access = access;
    o.cache_bytes = cache;
    auto d = Qcow2Disk::open(p, o);
    EXPECT_TRUE(d) << d.error().message();
    return d ? std::move(*d) : nullptr;
  }

  static std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
    std::vector<uint8_t> v(n);
    std::mt19937 rng(seed);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  }
  static std::vector<uint8_t> read(Disk& d, uint64_t off, size_t n) {
    std::vector<uint8_t> v(n);
    auto st = d.read(off, v);
    EXPECT_TRUE(st) << st.error().message();
    return v;
  }
  static bool all_zero(const std::vector<uint8_t>& v) {
    return std::all_of(v.begin(), v.end(), [](uint8_t b) { return b == 0; });
  }
  static uint64_t file_size(const std::string& p) {
    struct stat st;
    ::stat(p.c_str(), &st);
    return static_cast<uint64_t>(st.st_size);
  }
  static void poke(const std::string& p, uint64_t off, const void* data, size_t n) {
    int fd = ::open(p.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, data, n, static_cast<off_t>(off)), static_cast<ssize_t>(n));
    ::close(fd);
  }
  static void peek(const std::string& p, uint64_t off, void* data, size_t n) {
    int fd = ::open(p.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pread(fd, data, n, static_cast<off_t>(off)), static_cast<ssize_t>(n));
    ::close(fd);
  }
  static uint64_t peek64(const std::string& p, uint64_t off) {
    uint8_t b[8];
    peek(p, off, b, 8);
    return load_be64(b);
  }
  static void poke64(const std::string& p, uint64_t off, uint64_t v) {
    uint8_t b[8];
    store_be64(b, v);
    poke(p, off, b, 8);
  }
  void expect_clean(Qcow2Disk& d) {
    auto r = d.check();
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->corruptions, 0u) << (r->messages.empty() ? "" : r->messages[0]);
    EXPECT_EQ(r->leaks, 0u);
  }

  std::string dir_;
};

TEST_F(Qcow2DiskTest, CreatedImageReopensEmptyWithItsSize) {
  auto p = create("a.qcow2", 100 * kMiB + 512);
  auto d = open(p);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->virtual_size(), 100 * kMiB + 512);
  EXPECT_TRUE(all_zero(read(*d, 0, kMiB)));
  EXPECT_TRUE(all_zero(read(*d, 100 * kMiB - 100, 612)));
  expect_clean(*d);
}

TEST_F(Qcow2DiskTest, WritesReadBackAcrossClusterAndTableBoundariesAfterReopen) {
  for (uint32_t cluster : {4096u, 65536u, 2097152u}) {
    auto p = create("rt-" + std::to_string(cluster), 64 * kMiB, cluster);
    auto data = pattern(3 * cluster + 777, cluster);
    const uint64_t off = 4 * kMiB - cluster - 123;  // crosses an L2 table with 4 KiB clusters
    {
      auto d = open(p);
      ASSERT_TRUE(d->write(off, data));
      EXPECT_EQ(read(*d, off, data.size()), data);
      ASSERT_TRUE(d->close());
    }
    auto d = open(p);
    EXPECT_EQ(read(*d, off, data.size()), data);
    EXPECT_TRUE(all_zero(read(*d, off - 1000, 1000)));
    EXPECT_TRUE(all_zero(read(*d, off + data.size(), 1000)));
    expect_clean(*d);
  }
}

TEST_F(Qcow2DiskTest, RejectsRequestsBeyondTheDiskAndWritesWhenReadOnly) {
  auto p = create("a.qcow2", kMiB);
  {
    auto d = open(p);
    std::vector<uint8_t> buf(10);
    auto r = d->read(kMiB - 5, buf);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidInput);
    EXPECT_FALSE(d->write(~0ull - 3, buf));
  }
  auto ro = open(p, Access::kReadOnly);
  std::vector<uint8_t> buf(10, 1);
  EXPECT_FALSE(ro->write(0, buf));
  EXPECT_FALSE(ro->discard(0, 65536));
}

TEST_F(Qcow2DiskTest, WriteZeroesReadsAsZerosWithoutAllocating) {
  auto p = create("a.qcow2", 16 * kMiB);
  auto d = open(p);
  auto data = pattern(4 * kMiB, 1);
  ASSERT_TRUE(d->write(0, data));
  ASSERT_TRUE(d->flush());
  ASSERT_TRUE(d->write_zeroes(100, 3 * kMiB, Unmap::kAllowed));
  ASSERT_TRUE(d->write_zeroes(8 * kMiB, 4 * kMiB, Unmap::kAllowed));  // never written: no-op
  ASSERT_TRUE(d->flush());
  auto got = read(*d, 0, 4 * kMiB);
  std::vector<uint8_t> want = data;
  std::fill(want.begin() + 100, want.begin() + 100 + 3 * kMiB, 0);
  EXPECT_EQ(got, want);
  auto info = d->info();
  ASSERT_TRUE(info);
  // 3 MiB minus a partial head cluster was unmapped: about 1 MiB of data clusters remain.
  EXPECT_LT(info->used_bytes, 2 * kMiB);
  expect_clean(*d);
}

TEST_F(Qcow2DiskTest, WriteZeroesWithoutUnmapKeepsClustersAllocated) {
  auto p = create("a.qcow2", 16 * kMiB);
  auto d = open(p);
  ASSERT_TRUE(d->write(0, pattern(2 * kMiB, 2)));
  ASSERT_TRUE(d->flush());
  uint64_t used = d->info()->used_bytes;
  ASSERT_TRUE(d->write_zeroes(0, 2 * kMiB, Unmap::kNo));
  ASSERT_TRUE(d->flush());
  EXPECT_TRUE(all_zero(read(*d, 0, 2 * kMiB)));
  EXPECT_EQ(d->info()->used_bytes, used);
  // A partial write into a preallocated zero cluster keeps the rest zero.
  auto small = pattern(100, 3);
  ASSERT_TRUE(d->write(1000, small));
  auto got = read(*d, 0, 65536);
  EXPECT_TRUE(std::equal(small.begin(), small.end(), got.begin() + 1000));
  EXPECT_TRUE(std::all_of(got.begin(), got.begin() + 1000, [](uint8_t b) { return b == 0; }));
  EXPECT_TRUE(std::all_of(got.begin() + 1100, got.end(), [](uint8_t b) { return b == 0; }));
  expect_clean(*d);
}

TEST_F(Qcow2DiskTest, DiscardUnmapsWholeClustersAndPunchesHoles) {
  auto p = create("a.qcow2", 64 * kMiB);
  auto d = open(p);
  auto data = pattern(32 * kMiB, 4);
  ASSERT_TRUE(d->write(0, data));
  ASSERT_TRUE(d->flush());
  auto before = *d->info();
  ASSERT_TRUE(d->discard(1000, 30 * kMiB));
  ASSERT_TRUE(d->flush());
  auto after = *d->info();
  EXPECT_LT(after.used_bytes + 29 * kMiB, before.used_bytes);
  EXPECT_LT(after.allocated_bytes + 29 * kMiB, before.allocated_bytes);
  auto got = read(*d, 0, 32 * kMiB);
  // The partial clusters at both ends keep their data, whole ones read zeros.
  EXPECT_TRUE(std::equal(data.begin(), data.begin() + 65536, got.begin()));
  EXPECT_TRUE(std::all_of(got.begin() + 65536, got.begin() + 30 * kMiB, [](uint8_t b) { return b == 0; }));
  EXPECT_TRUE(std::equal(data.begin() + 31 * kMiB, data.end(), got.begin() + 31 * kMiB));
  expect_clean(*d);
}

TEST_F(Qcow2DiskTest, DiscardedClustersAreReusedByLaterWrites) {
  auto p = create("a.qcow2", 64 * kMiB);
  auto d = open(p);
  ASSERT_TRUE(d->write(0, pattern(16 * kMiB, 5)));
  ASSERT_TRUE(d->flush());
  uint64_t size = file_size(p);
  ASSERT_TRUE(d->discard(0, 16 * kMiB));
  ASSERT_TRUE(d->flush());
  auto other = pattern(16 * kMiB, 6);
  ASSERT_TRUE(d->write(32 * kMiB, other));
  ASSERT_TRUE(d->flush());
  EXPECT_EQ(file_size(p), size);  // the freed clusters took the new data
  EXPECT_EQ(read(*d, 32 * kMiB, other.size()), other);
  EXPECT_TRUE(all_zero(read(*d, 0, 16 * kMiB)));
  expect_clean(*d);
}

TEST_F(Qcow2DiskTest, DiscardingAWholeL2RangeFreesTheL2Table) {
  auto p = create("a.qcow2", 8 * kMiB, 4096);  // one L2 table maps 2 MiB
  auto d = open(p);
  ASSERT_TRUE(d->write(2 * kMiB, pattern(2 * kMiB, 7)));
  ASSERT_TRUE(d->flush());
  uint64_t used = d->info()->used_bytes;
  ASSERT_TRUE(d->discard(2 * kMiB, 2 * kMiB));
  ASSERT_TRUE(d->flush());
  EXPECT_EQ(d->info()->used_bytes, used - 2 * kMiB - 4096);
  expect_clean(*d);
}

TEST_F(Qcow2DiskTest, CompactionShrinksTheFileAndKeepsTheData) {
  for (uint32_t cluster : {4096u, 65536u}) {
    auto p = create("c-" + std::to_string(cluster), 128 * kMiB, cluster);
    auto d = open(p);
    auto data = pattern(128 * kMiB, 8);
    ASSERT_TRUE(d->write(0, data));
    ASSERT_TRUE(d->flush());
    // Keep 1 MiB of every 16.
    for (uint64_t off = 0; off < 128 * kMiB; off += 16 * kMiB) ASSERT_TRUE(d->discard(off + kMiB, 15 * kMiB));
    ASSERT_TRUE(d->flush());
    EXPECT_GT(file_size(p), 120 * kMiB);
    auto st = d->compact();
    ASSERT_TRUE(st) << st.error().message();
    EXPECT_LT(file_size(p), 9 * kMiB) << cluster;
    for (uint64_t off = 0; off < 128 * kMiB; off += 16 * kMiB) {
      auto got = read(*d, off, kMiB);
      ASSERT_TRUE(std::equal(got.begin(), got.end(), data.begin() + off)) << off;
      EXPECT_TRUE(all_zero(read(*d, off + kMiB, 15 * kMiB)));
    }
    expect_clean(*d);
    ASSERT_TRUE(d->close());
    d = open(p);
    auto got = read(*d, 112 * kMiB, kMiB);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin() + 112 * kMiB));
    expect_clean(*d);
  }
}

TEST_F(Qcow2DiskTest, DirtyBitIsSetWhileMetadataIsAheadAndClearedByFlush) {
  auto p = create("a.qcow2", 64 * kMiB, 4096);
  auto d = open(p, Access::kReadWrite, 16 * 4096);  // a tiny cache: L2 tables get evicted
  EXPECT_FALSE(d->dirty_bit_on_disk());
  for (uint64_t off = 0; off < 64 * kMiB; off += 2 * kMiB) ASSERT_TRUE(d->write(off, pattern(4096, 9)));
  EXPECT_TRUE(d->dirty_bit_on_disk());
  EXPECT_EQ(peek64(p, qcow2::kOffIncompatible) & qcow2::kIncompatDirty, qcow2::kIncompatDirty);
  ASSERT_TRUE(d->flush());
  EXPECT_FALSE(d->dirty_bit_on_disk());
  EXPECT_EQ(peek64(p, qcow2::kOffIncompatible) & qcow2::kIncompatDirty, 0u);
}

TEST_F(Qcow2DiskTest, OpeningADirtyImageRepairsItsRefcounts) {
  auto p = create("a.qcow2", 16 * kMiB);
  auto data = pattern(4 * kMiB, 10);
  uint64_t rb_offset;
  {
    auto d = open(p);
    ASSERT_TRUE(d->write(0, data));
    ASSERT_TRUE(d->close());
    rb_offset = peek64(p, d->header().refcount_table_offset);
  }
  // As after a crash: a leaked cluster (refcount 1, no reference) far out, a data cluster with
  // refcount 0, and the dirty bit.
  auto file_clusters = file_size(p) / 65536;
  uint8_t one[2] = {0, 1}, zero[2] = {0, 0};
  poke(p, rb_offset + 2 * (file_clusters + 3), one, 2);
  poke(p, rb_offset + 2 * (file_clusters - 1), zero, 2);
  poke64(p, qcow2::kOffIncompatible, qcow2::kIncompatDirty);
  {
    auto ro = open(p, Access::kReadOnly);
    auto r = ro->check();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->leaks, 1u);
    EXPECT_EQ(r->corruptions, 1u);
  }
  auto d = open(p);
  EXPECT_FALSE(d->dirty_bit_on_disk());
  expect_clean(*d);
  EXPECT_EQ(read(*d, 0, data.size()), data);
}

TEST_F(Qcow2DiskTest, Version2ImagesReadAndWrite) {
  auto p = create("v2.qcow2", 32 * kMiB, 65536, 2);
  auto data = pattern(5 * kMiB, 11);
  {
    auto d = open(p);
    EXPECT_EQ(d->header().version, 2u);
    ASSERT_TRUE(d->write(12345, data));
    ASSERT_TRUE(d->write_zeroes(kMiB, kMiB, Unmap::kAllowed));  // v2: no zero flag, unallocates
    ASSERT_TRUE(d->discard(3 * kMiB, kMiB));
    ASSERT_TRUE(d->close());
  }
  std::fill(data.begin() + kMiB - 12345, data.begin() + 2 * kMiB - 12345, 0);
  std::fill(data.begin() + 3 * kMiB - 12345, data.begin() + 4 * kMiB - 12345, 0);
  auto d = open(p);
  EXPECT_EQ(read(*d, 12345, data.size()), data);
  EXPECT_EQ(peek64(p, 72), 0u);  // no v3 fields were written into a v2 header
  expect_clean(*d);
}

TEST_F(Qcow2DiskTest, EveryRefcountWidthWorks) {
  for (uint32_t order = 0; order <= 6; order++) {
    auto p = create("r" + std::to_string(order), 8 * kMiB, 4096, 3, order);
    auto data = pattern(3 * kMiB, order);
    {
      auto d = open(p);
      ASSERT_TRUE(d->write(kMiB, data));
      ASSERT_TRUE(d->discard(kMiB, kMiB));
      ASSERT_TRUE(d->flush());
      ASSERT_TRUE(d->write(5 * kMiB, data));
      ASSERT_TRUE(d->close());
    }
    auto d = open(p);
    EXPECT_EQ(read(*d, 5 * kMiB, data.size()), data) << order;
    expect_clean(*d);
  }
}

TEST_F(Qcow2DiskTest, RefusesUnknownIncompatibleFeaturesNamingTheBits) {
  auto p = create("a.qcow2", kMiB);
  poke64(p, qcow2::kOffIncompatible, (1ull << 7) | (1ull << 40));
  auto d = Qcow2Disk::open(p);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message().find("bit 7, bit 40"), std::string::npos) << d.error().message();
}

TEST_F(Qcow2DiskTest, ClearsUnknownAutoclearBitsWhenOpenedForWriting) {
  auto p = create("a.qcow2", kMiB);
  poke64(p, qcow2::kOffAutoclear, 1ull << 17);
  { open(p, Access::kReadOnly); }
  EXPECT_EQ(peek64(p, qcow2::kOffAutoclear), 1ull << 17);
  { open(p); }
  EXPECT_EQ(peek64(p, qcow2::kOffAutoclear), 0u);
}

TEST_F(Qcow2DiskTest, RefusesWritableOpenOfImagesMarkedCorrupt) {
  auto p = create("a.qcow2", kMiB);
  poke64(p, qcow2::kOffIncompatible, qcow2::kIncompatCorrupt);
  auto d = Qcow2Disk::open(p);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().kind(), ErrorKind::kCorrupt);
  OpenOptions ro;
  ro.access = Access::kReadOnly;
  EXPECT_TRUE(Qcow2Disk::open(p, ro));
}

TEST_F(Qcow2DiskTest, BackingFileReadsFallThroughAndWritesCopyTheRestOfTheCluster) {
  auto base_path = path("base.raw");
  ASSERT_TRUE(RawDisk::create(base_path, 4 * kMiB));
  auto base_data = pattern(4 * kMiB, 12);
  {
    auto base = RawDisk::open(base_path, Access::kReadWrite);
    ASSERT_TRUE((*base)->write(0, base_data));
  }
  Qcow2CreateOptions o;
  o.backing_file = "base.raw";
  o.backing_format = "raw";
  o.virtual_size = 0;  // take the backing file's size
  ASSERT_TRUE(Qcow2Disk::create(path("top.qcow2"), o));
  auto d = open(path("top.qcow2"));
  ASSERT_EQ(d->virtual_size(), 4 * kMiB);
  EXPECT_EQ(read(*d, 0, 4 * kMiB), base_data);
  auto small = pattern(100, 13);
  ASSERT_TRUE(d->write(65536 + 500, small));
  ASSERT_TRUE(d->discard(2 * kMiB, kMiB));
  ASSERT_TRUE(d->close());
  d = open(path("top.qcow2"));
  auto want = base_data;
  std::copy(small.begin(), small.end(), want.begin() + 65536 + 500);
  std::fill(want.begin() + 2 * kMiB, want.begin() + 3 * kMiB, 0);  // v3 discard: zero clusters
  EXPECT_EQ(read(*d, 0, 4 * kMiB), want);
  auto base = RawDisk::open(base_path, Access::kReadOnly);
  EXPECT_EQ(read(**base, 0, 4 * kMiB), base_data);  // the backing file is never written
  // header, refcount table, refcount block, L1, L2 and the one copied-up data cluster
  EXPECT_EQ(d->info()->used_bytes, 6 * 65536u);
}

TEST_F(Qcow2DiskTest, RefusesBackingFileLoops) {
  Qcow2CreateOptions o;
  o.virtual_size = kMiB;
  o.backing_file = "b.qcow2";
  ASSERT_TRUE(Qcow2Disk::create(path("a.qcow2"), o));
  o.backing_file = "a.qcow2";
  ASSERT_TRUE(Qcow2Disk::create(path("b.qcow2"), o));
  auto d = Qcow2Disk::open(path("a.qcow2"));
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message().find("loop"), std::string::npos) << d.error().message();
  OpenOptions refuse;
  refuse.backing = Backing::kRefuse;
  EXPECT_FALSE(Qcow2Disk::open(path("a.qcow2"), refuse));
}

TEST_F(Qcow2DiskTest, RefusesToWriteThroughAnL2EntryPointingAtMetadata) {
  auto p = create("a.qcow2", 4 * kMiB);
  uint64_t l1_offset, l2_offset;
  {
    auto d = open(p);
    ASSERT_TRUE(d->write(0, pattern(65536, 14)));
    ASSERT_TRUE(d->close());
    l1_offset = d->header().l1_table_offset;
    l2_offset = peek64(p, l1_offset) & qcow2::kOffsetMask;
  }
  std::vector<uint8_t> l1_before(65536);
  peek(p, l1_offset, l1_before.data(), l1_before.size());
  // Guest cluster 1 "lives" in the L1 table's cluster.
  poke64(p, l2_offset + 8, l1_offset | qcow2::kOflagCopied);
  {
    auto d = open(p);
    auto st = d->write(65536, pattern(65536, 15));
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().kind(), ErrorKind::kCorrupt);
    auto check = d->check();
    ASSERT_TRUE(check);
    EXPECT_GT(check->corruptions, 0u);
  }
  std::vector<uint8_t> l1_after(65536);
  peek(p, l1_offset, l1_after.data(), l1_after.size());
  EXPECT_EQ(l1_before, l1_after);
  // Unaligned and beyond-the-end offsets are errors too, for reads as well.
  for (uint64_t bad : {uint64_t{0x10200}, uint64_t{1} << 40}) {
    poke64(p, l2_offset + 8, bad | qcow2::kOflagCopied);
    auto d = open(p);
    std::vector<uint8_t> buf(512);
    auto st = d->read(65536, buf);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().kind(), ErrorKind::kCorrupt);
  }
}

TEST_F(Qcow2DiskTest, RefusesImagesWhoseTablesOverlap) {
  auto p = create("a.qcow2", 4 * kMiB);
  uint64_t rt, l1;
  {
    auto d = open(p);
    ASSERT_TRUE(d->write(0, pattern(100, 16)));
    ASSERT_TRUE(d->close());
    rt = d->header().refcount_table_offset;
    l1 = d->header().l1_table_offset;
  }
  uint64_t rb = peek64(p, rt);
  poke64(p, l1, rb | qcow2::kOflagCopied);  // L2 table on top of the refcount block
  auto d = Qcow2Disk::open(p);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message().find("overlaps a refcount block"), std::string::npos) << d.error().message();
}

TEST_F(Qcow2DiskTest, GrowsTheRefcountTableWhenTheImageOutgrowsIt) {
  // 512-byte clusters with 64-bit refcounts: a refcount block covers 64 clusters and one table
  // cluster 64 blocks (2 MiB of file), so filling 8 MiB grows the table several times.
  Qcow2CreateOptions o;
  o.virtual_size = 8 * kMiB;
  o.cluster_size = 512;
  o.refcount_order = 6;
  o.refcount_table_clusters = 1;
  auto p = path("a.qcow2");
  ASSERT_TRUE(Qcow2Disk::create(p, o));
  auto d = open(p, Access::kReadWrite, 64 * 512);
  uint64_t table_clusters = d->header().refcount_table_clusters;
  auto data = pattern(8 * kMiB, 17);
  ASSERT_TRUE(d->write(0, data));
  EXPECT_GT(d->header().refcount_table_clusters, table_clusters);
  ASSERT_TRUE(d->close());
  d = open(p);
  EXPECT_EQ(read(*d, 0, data.size()), data);
  expect_clean(*d);
}

TEST_F(Qcow2DiskTest, ConcurrentCallersFromSeveralThreadsSeeTheirOwnData) {
  auto p = create("a.qcow2", 80 * kMiB, 4096);
  auto d = open(p, Access::kReadWrite, 64 * 4096);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (uint32_t t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (uint32_t i = 0; i < 200; i++) {
        uint64_t off = (uint64_t{t} * 16 + i % 16) * kMiB + (i * 4096) % kMiB;
        auto data = pattern(6000, t * 1000 + i);
        if (!d->write(off, data)) failures++;
        if (i % 7 == 0 && !d->discard(off + kMiB / 2, 65536)) failures++;
        if (i % 50 == 0 && !d->flush()) failures++;
        std::vector<uint8_t> back(data.size());
        if (!d->read(off, back) || back != data) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(d->flush());
  expect_clean(*d);
}

}  // namespace
}  // namespace pinata::disk
