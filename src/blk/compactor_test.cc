#include "blk/compactor.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include "disk/qcow2_disk.h"

namespace pinata::blk {
namespace {

using namespace std::chrono_literals;

disk::DiskInfo qcow2_info(uint64_t file_size, uint64_t reclaimable) {
  disk::DiskInfo i;
  i.format = disk::ImageFormat::kQcow2;
  i.file_size = file_size;
  i.reclaimable_bytes = reclaimable;
  i.used_bytes = file_size - reclaimable;
  return i;
}

TEST(WorthCompacting, NeedsBothTheMinimumAndTheShare) {
  CompactPolicy p;  // 64 MiB and 10%
  EXPECT_TRUE(worth_compacting(qcow2_info(1000ull << 20, 100ull << 20), p));
  EXPECT_FALSE(worth_compacting(qcow2_info(1000ull << 20, 63ull << 20), p));   // under 64 MiB
  EXPECT_FALSE(worth_compacting(qcow2_info(10000ull << 20, 900ull << 20), p));  // under 10%
  disk::DiskInfo raw = qcow2_info(1000ull << 20, 500ull << 20);
  raw.format = disk::ImageFormat::kRaw;
  EXPECT_FALSE(worth_compacting(raw, p));
}

class CompactorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/blk-compactor-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/disk.qcow2";
    disk::Qcow2CreateOptions create;
    create.virtual_size = 256ull << 20;
    ASSERT_TRUE(disk::Qcow2Disk::create(path_, create));
    auto opened = disk::Qcow2Disk::open(path_);
    ASSERT_TRUE(opened) << opened.error().message();
    disk_ = std::move(*opened);
  }
  void TearDown() override {
    disk_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Writes `mib` MiB of a pattern from `offset_mib` on.
  void fill(uint64_t offset_mib, uint64_t mib, uint8_t byte) {
    std::vector<uint8_t> buf(1 << 20, byte);
    for (uint64_t i = 0; i < mib; i++) ASSERT_TRUE(disk_->write((offset_mib + i) << 20, buf));
    ASSERT_TRUE(disk_->flush());
  }
  uint64_t file_size() { return disk_->info()->file_size; }
  // Polls until `pred` or `timeout`.
  template <typename Pred>
  bool eventually(Pred pred, std::chrono::milliseconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return pred();
  }

  std::string dir_, path_;
  std::unique_ptr<disk::Qcow2Disk> disk_;
};

TEST_F(CompactorTest, CompactsAfterDiscardsOnceIdleAndKeepsTheData) {
  fill(0, 8, 0xaa);     // kept
  fill(8, 120, 0x55);   // discarded
  fill(128, 8, 0xbb);   // kept, near the end of the file
  ASSERT_TRUE(disk_->discard(8ull << 20, 120ull << 20));
  ASSERT_TRUE(disk_->flush());
  uint64_t before = file_size();
  ASSERT_GT(before, 136ull << 20);

  CompactPolicy policy;
  policy.idle = 50ms;
  Compactor compactor(*disk_, policy);
  compactor.note_discard();
  ASSERT_TRUE(eventually([&] { return compactor.stats().compactions == 1; }, 10s));

  EXPECT_LT(file_size(), 20ull << 20);
  EXPECT_GE(compactor.stats().bytes_reclaimed, 100ull << 20);
  std::vector<uint8_t> got(1 << 20);
  ASSERT_TRUE(disk_->read(0, got));
  EXPECT_EQ(got, std::vector<uint8_t>(1 << 20, 0xaa));
  ASSERT_TRUE(disk_->read(135ull << 20, got));
  EXPECT_EQ(got, std::vector<uint8_t>(1 << 20, 0xbb));
  ASSERT_TRUE(disk_->read(50ull << 20, got));
  EXPECT_EQ(got, std::vector<uint8_t>(1 << 20, 0));
}

TEST_F(CompactorTest, RequestsPostponeCompaction) {
  fill(0, 100, 0x11);
  ASSERT_TRUE(disk_->discard(0, 100ull << 20));
  ASSERT_TRUE(disk_->flush());
  CompactPolicy policy;
  policy.idle = 300ms;
  Compactor compactor(*disk_, policy);
  compactor.note_discard();
  // Keep the disk busy for well over the idle time: nothing may happen meanwhile.
  auto busy_until = std::chrono::steady_clock::now() + 900ms;
  while (std::chrono::steady_clock::now() < busy_until) {
    compactor.note_request();
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(compactor.stats().checks, 0u);
  EXPECT_TRUE(eventually([&] { return compactor.stats().compactions == 1; }, 10s));
}

TEST_F(CompactorTest, DoesNothingWithoutDiscardsOrWhenTooLittleIsReclaimable) {
  fill(0, 32, 0x22);
  CompactPolicy policy;
  policy.idle = 20ms;
  {
    Compactor compactor(*disk_, policy);
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(compactor.stats().checks, 0u);  // no discard: never even looks
  }
  ASSERT_TRUE(disk_->discard(0, 8ull << 20));  // 8 MiB: under the 64 MiB minimum
  ASSERT_TRUE(disk_->flush());
  uint64_t before = file_size();
  Compactor compactor(*disk_, policy);
  compactor.note_discard();
  ASSERT_TRUE(eventually([&] { return compactor.stats().checks == 1; }, 10s));
  EXPECT_EQ(compactor.stats().compactions, 0u);
  EXPECT_EQ(file_size(), before);
}

TEST_F(CompactorTest, CompactNowIgnoresThePolicyAndReportsSizes) {
  fill(0, 4, 0x33);
  fill(4, 20, 0x44);
  ASSERT_TRUE(disk_->discard(0, 4ull << 20));  // 4 MiB: far under the automatic thresholds
  ASSERT_TRUE(disk_->flush());
  CompactPolicy policy;
  policy.idle = 3600s;
  Compactor compactor(*disk_, policy);
  std::promise<Result<Compactor::Outcome>> result;
  compactor.compact_now([&](Result<Compactor::Outcome> r) { result.set_value(std::move(r)); });
  auto outcome = result.get_future().get();
  ASSERT_TRUE(outcome) << outcome.error().message();
  EXPECT_GT(outcome->file_before, outcome->file_after);
  EXPECT_EQ(outcome->file_after, file_size());
  std::vector<uint8_t> got(1 << 20);
  ASSERT_TRUE(disk_->read(23ull << 20, got));
  EXPECT_EQ(got, std::vector<uint8_t>(1 << 20, 0x44));
}

TEST_F(CompactorTest, DestructionWhileWaitingDoesNotHang) {
  CompactPolicy policy;
  policy.idle = 3600s;
  auto start = std::chrono::steady_clock::now();
  {
    Compactor compactor(*disk_, policy);
    compactor.note_discard();
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

}  // namespace
}  // namespace pinata::blk
