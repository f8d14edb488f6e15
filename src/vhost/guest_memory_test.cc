#include "vhost/guest_memory.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhost/mock_driver.h"

namespace pinata::vhost {
namespace {

constexpr uint64_t kGpa = 0x100000;
constexpr uint64_t kSize = 0x10000;
constexpr uint64_t kVa = 0x7f0000000000;

UniqueFd memfd(uint64_t size) {
  UniqueFd fd(::memfd_create("gm-test", MFD_CLOEXEC));
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  return fd;
}

std::vector<UniqueFd> fds_of(UniqueFd fd) {
  std::vector<UniqueFd> v;
  v.push_back(std::move(fd));
  return v;
}

std::shared_ptr<GuestMemory> one_region() {
  auto m = testing::MemfdMemory::create(kGpa, kSize, kVa);
  EXPECT_TRUE(m.has_value());
  return m->memory;
}

TEST(GuestMemory, TranslatesRangesInsideTheRegion) {
  auto mem = one_region();

  auto start = mem->translate(kGpa, 16);
  auto last_byte = mem->translate(kGpa + kSize - 1, 1);
  auto whole = mem->translate(kGpa, kSize);
  auto empty_at_end = mem->translate(kGpa + kSize, 0);

  ASSERT_TRUE(start && last_byte && whole && empty_at_end);
  EXPECT_EQ(*last_byte - *start, static_cast<ptrdiff_t>(kSize - 1));
}

TEST(GuestMemory, RejectsRangesCrossingTheRegionEdges) {
  auto mem = one_region();

  EXPECT_FALSE(mem->translate(kGpa - 1, 1).has_value());
  EXPECT_FALSE(mem->translate(kGpa - 1, 2).has_value());
  EXPECT_FALSE(mem->translate(kGpa + kSize - 1, 2).has_value());
  EXPECT_FALSE(mem->translate(kGpa + kSize, 1).has_value());
  EXPECT_FALSE(mem->translate(kGpa, kSize + 1).has_value());
  EXPECT_FALSE(mem->translate(0, 0).has_value());
}

TEST(GuestMemory, RejectsOverflowingRanges) {
  auto mem = one_region();

  EXPECT_FALSE(mem->translate(kGpa + 8, UINT64_MAX).has_value());
  EXPECT_FALSE(mem->translate(UINT64_MAX, 2).has_value());
  EXPECT_FALSE(mem->translate(UINT64_MAX - 1, UINT64_MAX).has_value());
  EXPECT_FALSE(mem->va_to_gpa(kVa + 1, UINT64_MAX).has_value());
}

TEST(GuestMemory, TranslatesFrontendAddresses) {
  auto mem = one_region();

  auto gpa = mem->va_to_gpa(kVa + 0x123, 8);
  auto host_va = mem->translate_va(kVa + 0x123, 8);
  auto host_gpa = mem->translate(kGpa + 0x123, 8);

  ASSERT_TRUE(gpa && host_va && host_gpa);
  EXPECT_EQ(*gpa, kGpa + 0x123);
  EXPECT_EQ(*host_va, *host_gpa);
  EXPECT_FALSE(mem->va_to_gpa(kVa + kSize - 4, 8).has_value());
  EXPECT_FALSE(mem->va_to_gpa(kGpa, 8).has_value());
}

TEST(GuestMemory, RangeSpanningTwoAdjacentRegionsIsRejected) {
  std::vector<uint8_t> a(4096), b(4096);
  GuestMemory::BufferRegion regions[] = {{0x0, 0x10000, a.data(), a.size()},
                                         {0x1000, 0x20000, b.data(), b.size()}};
  auto mem = GuestMemory::from_buffers(regions);
  ASSERT_TRUE(mem.has_value());

  EXPECT_TRUE((*mem)->contains(0xff0, 0x10));
  EXPECT_TRUE((*mem)->contains(0x1000, 0x10));
  EXPECT_FALSE((*mem)->contains(0xff0, 0x20));
  auto second = (*mem)->translate(0x1004, 4);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(*second, b.data() + 4);
}

TEST(GuestMemory, ReadWriteObjectsAndCopy) {
  auto mem = one_region();

  ASSERT_TRUE(mem->write_obj<uint64_t>(kGpa + 8, 0x1122334455667788ull));
  auto v = mem->read_obj<uint64_t>(kGpa + 8);
  ASSERT_TRUE(mem->copy(kGpa + 64, kGpa + 8, 8));
  auto copied = mem->read_obj<uint64_t>(kGpa + 64);
  auto outside = mem->read_obj<uint64_t>(kGpa + kSize - 4);
  auto write_outside = mem->write_obj<uint32_t>(kGpa + kSize, 1);

  ASSERT_TRUE(v && copied);
  EXPECT_EQ(*v, 0x1122334455667788ull);
  EXPECT_EQ(*copied, *v);
  EXPECT_FALSE(outside.has_value());
  EXPECT_FALSE(write_outside.has_value());
}

TEST(GuestMemory, HonoursMmapOffset) {
  UniqueFd fd = memfd(0x3000);
  int raw = fd.get();
  UniqueFd keep(::dup(raw));
  MemoryRegionDesc r{kGpa, 0x1000, kVa, 0x2000};
  auto mem = GuestMemory::map({&r, 1}, fds_of(std::move(fd)));
  ASSERT_TRUE(mem.has_value());

  ASSERT_TRUE((*mem)->write_obj<uint32_t>(kGpa + 4, 0xabcdef01));
  uint32_t on_disk = 0;
  ASSERT_EQ(::pread(keep.get(), &on_disk, 4, 0x2004), 4);

  EXPECT_EQ(on_disk, 0xabcdef01u);
  EXPECT_FALSE((*mem)->contains(kGpa + 0x1000, 1));
}

TEST(GuestMemory, RejectsFdShorterThanRegion) {
  MemoryRegionDesc r{kGpa, 0x2000, kVa, 0x1000};

  auto mem = GuestMemory::map({&r, 1}, fds_of(memfd(0x2000)));

  ASSERT_FALSE(mem.has_value());
  EXPECT_EQ(mem.error().kind(), ErrorKind::kInvalidInput);
}

TEST(GuestMemory, RejectsBadLayouts) {
  std::vector<uint8_t> buf(4096);
  GuestMemory::BufferRegion empty[] = {{0, 0, buf.data(), 0}};
  GuestMemory::BufferRegion overlap_gpa[] = {{0, 0x10000, buf.data(), 4096},
                                             {0x800, 0x20000, buf.data(), 4096}};
  GuestMemory::BufferRegion overlap_va[] = {{0, 0x10000, buf.data(), 4096},
                                            {0x1000, 0x10800, buf.data(), 4096}};
  GuestMemory::BufferRegion wraps[] = {{UINT64_MAX - 0xfff, 0, buf.data(), 4096}};
  GuestMemory::BufferRegion wraps_va[] = {{0, UINT64_MAX - 10, buf.data(), 4096}};

  EXPECT_FALSE(GuestMemory::from_buffers(empty).has_value());
  EXPECT_FALSE(GuestMemory::from_buffers(overlap_gpa).has_value());
  EXPECT_FALSE(GuestMemory::from_buffers(overlap_va).has_value());
  EXPECT_FALSE(GuestMemory::from_buffers(wraps).has_value());
  EXPECT_FALSE(GuestMemory::from_buffers(wraps_va).has_value());
}

TEST(GuestMemory, RejectsRegionFdCountMismatch) {
  MemoryRegionDesc r[2] = {{0, 0x1000, kVa, 0}, {0x1000, 0x1000, kVa + 0x1000, 0}};

  auto mem = GuestMemory::map(r, fds_of(memfd(0x1000)));

  EXPECT_FALSE(mem.has_value());
}

TEST(GuestMemory, RejectsOffsetOverflow) {
  MemoryRegionDesc r{kGpa, 0x1000, kVa, UINT64_MAX - 0x10};

  auto mem = GuestMemory::map({&r, 1}, fds_of(memfd(0x1000)));

  EXPECT_FALSE(mem.has_value());
}

}  // namespace
}  // namespace pinata::vhost
