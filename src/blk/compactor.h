// Online compaction for pinata-blk: after the guest discards (fstrim, or -o discard), and once
// the disk has been idle for a while, compact the image in the background so the host file
// shrinks to about the data it still holds (issue 5: "online, in the background after enough
// discards").
//
// Discards already punch holes (the host file's allocation shrinks at the next flush);
// compaction is what moves clusters down and truncates the file's length. It holds the
// image's lock while it runs, so guest I/O that arrives meanwhile waits: that is why it only
// starts after `idle` without requests, and only when enough would be reclaimed.
//
// Threads: note_request()/note_discard() are called on the device's loop thread and cost an
// atomic store (plus a mutex and a notify for a discard). The compactor's own thread sleeps on
// a condition variable and wakes only when a discard happened: no timer runs while the disk is
// idle and nothing was discarded.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "base/result.h"

#include "disk/disk.h"

namespace pinata::blk {

struct CompactPolicy {
  bool automatic = true;                  // false: compact only when asked (compact_now)
  std::chrono::milliseconds idle{10000};  // no request for this long before compacting
  uint64_t min_reclaimable = 64ull << 20;  // and at least this much to give back...
  unsigned min_percent = 10;               // ...and at least this share of the file
};

// Whether compacting an image in this state is worth it under `policy`.
bool worth_compacting(const disk::DiskInfo& info, const CompactPolicy& policy);

class Compactor {
 public:
  // `disk` must outlive the compactor.
  Compactor(disk::Disk& disk, CompactPolicy policy);
  // Waits for a compaction in progress to finish (it is crash-safe but not cancellable).
  ~Compactor();
  Compactor(const Compactor&) = delete;
  Compactor& operator=(const Compactor&) = delete;

  // Any request: postpones a pending compaction.
  void note_request();
  // A discard (or unmapping write-zeroes) completed: a compaction may be worth it once idle.
  void note_discard();

  struct Stats {
    uint64_t checks = 0;       // idle periods after discards in which the image was examined
    uint64_t compactions = 0;  // compactions run
    uint64_t failures = 0;
    uint64_t bytes_reclaimed = 0;  // file length given back
  };
  Stats stats() const;

  // `pinata disk compact` while the VM runs: compact on the compactor's thread as soon as it
  // is free, whatever the policy says, and call `done` there with the file size before and
  // after (or the error). Requests still queued when the compactor is destroyed get an error.
  struct Outcome {
    uint64_t file_before = 0;
    uint64_t file_after = 0;
  };
  using Done = std::function<void(Result<Outcome>)>;
  void compact_now(Done done);

 private:
  Result<Outcome> compact_once();
  void run();
  using Clock = std::chrono::steady_clock;

  disk::Disk& disk_;
  const CompactPolicy policy_;
  std::atomic<Clock::rep> last_request_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;
  std::deque<Done> requests_;
  bool stopping_ = false;
  Stats stats_;
  std::thread thread_;
};

}  // namespace pinata::blk
