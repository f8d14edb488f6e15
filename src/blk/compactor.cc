#include "blk/compactor.h"

#include "base/log.h"

namespace pinata::blk {

bool worth_compacting(const disk::DiskInfo& info, const CompactPolicy& policy) {
  if (info.format != disk::ImageFormat::kQcow2) return false;  // raw: holes are all there is
  if (info.reclaimable_bytes < policy.min_reclaimable) return false;
  return info.reclaimable_bytes * 100 >= uint64_t{policy.min_percent} * info.file_size;
}

Compactor::Compactor(disk::Disk& disk, CompactPolicy policy) : disk_(disk), policy_(policy) {
  last_request_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  thread_ = std::thread([this] { run(); });
}

Compactor::~Compactor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (Done& done : requests_) done(fail(ErrorKind::kIo, "pinata-blk is shutting down"));
}

void Compactor::compact_now(Done done) {
  {
    std::lock_guard lock(mu_);
    requests_.push_back(std::move(done));
  }
  cv_.notify_all();
}

Result<Compactor::Outcome> Compactor::compact_once() {
  Outcome out;
  TRY_ASSIGN(disk::DiskInfo before, disk_.info());
  out.file_before = before.file_size;
  TRY(disk_.compact());
  TRY_ASSIGN(disk::DiskInfo after, disk_.info());
  out.file_after = after.file_size;
  return out;
}

void Compactor::note_request() {
  last_request_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
}

void Compactor::note_discard() {
  note_request();
  if (!policy_.automatic) return;
  {
    std::lock_guard lock(mu_);
    if (pending_) return;
    pending_ = true;
  }
  cv_.notify_all();
}

Compactor::Stats Compactor::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Compactor::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return pending_ || stopping_ || !requests_.empty(); });
    if (stopping_) return;
    if (!requests_.empty()) {
      Done done = std::move(requests_.front());
      requests_.pop_front();
      lock.unlock();
      auto outcome = compact_once();
      if (outcome) {
        log::info("blk: compaction on request: file %llu MiB -> %llu MiB",
                  static_cast<unsigned long long>(outcome->file_before >> 20),
                  static_cast<unsigned long long>(outcome->file_after >> 20));
      } else {
        log::error("blk: compaction on request failed: %s", outcome.error().message().c_str());
      }
      done(outcome);
      lock.lock();
      if (outcome) {
        stats_.compactions++;
        if (outcome->file_before > outcome->file_after)
          stats_.bytes_reclaimed += outcome->file_before - outcome->file_after;
      } else {
        stats_.failures++;
      }
      continue;
    }
    // Wait until the disk has been quiet for `idle` (requests keep pushing the deadline).
    auto last = Clock::time_point(Clock::duration(last_request_.load(std::memory_order_relaxed)));
    auto deadline = last + policy_.idle;
    if (Clock::now() < deadline) {
      cv_.wait_until(lock, deadline, [this] { return stopping_; });
      continue;
    }
    pending_ = false;
    stats_.checks++;
    lock.unlock();

    auto info = disk_.info();
    bool compacted = false, failed = false;
    uint64_t before = 0, after = 0;
    if (!info) {
      log::warn("blk: online compaction: reading the image's state: %s", info.error().message().c_str());
    } else if (worth_compacting(*info, policy_)) {
      before = info->file_size;
      auto start = Clock::now();
      log::info("blk: online compaction: %llu MiB reclaimable of a %llu MiB file", 
                static_cast<unsigned long long>(info->reclaimable_bytes >> 20),
                static_cast<unsigned long long>(info->file_size >> 20));
      if (auto st = disk_.compact(); !st) {
        failed = true;
        log::error("blk: online compaction failed (the image is unchanged or only partly compacted, "
                   "and consistent): %s",
                   st.error().message().c_str());
      } else {
        compacted = true;
        auto now_info = disk_.info();
        after = now_info ? now_info->file_size : before;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
        log::info("blk: online compaction: file %llu MiB -> %llu MiB in %lld ms",
                  static_cast<unsigned long long>(before >> 20), static_cast<unsigned long long>(after >> 20),
                  static_cast<long long>(ms));
      }
    }

    lock.lock();
    if (compacted) {
      stats_.compactions++;
      if (before > after) stats_.bytes_reclaimed += before - after;
    }
    if (failed) stats_.failures++;
  }
}

}  // namespace pinata::blk
