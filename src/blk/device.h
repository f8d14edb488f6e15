// The vhost-user-blk device: config space (struct virtio_blk_config) and N request queues
// over one Disk (raw or qcow2, src/disk/).
//
// QEMU's vhost-user-blk hands the backend every request queue (0..num-queues-1; there is no
// control queue). Each chain is one request: a 16-byte header and, for writes and
// discard/write-zeroes, data in the device-readable part; data for reads and GET_ID, then the
// status byte, in the device-writable part (virtio 1.2 §5.2.6). Requests run inline on the
// backend's event-loop thread, one at a time, in ring order: the Disk calls are synchronous
// (pread/pwrite, fdatasync for a flush), so a slow flush holds up the queue it came on and
// every other queue (docs/protocols/virtio-blk.md, "Threading").
//
// Hostile-guest rule: whatever the chain holds, the request completes with a status (OK,
// IOERR or UNSUPP) and a used length equal to the bytes written into the chain (data + the
// status byte), or — a chain with no writable byte at all — with used length 0; the Disk is
// only ever asked for ranges inside the disk; each rejected request gets a rate-limited log
// line saying why.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "blk/compactor.h"
#include "blk/request.h"
#include "disk/disk.h"
#include "vhost/backend.h"
#include "vhost/descriptor_chain.h"

namespace pinata::blk {

// What the device advertises (the defaults are what pinata-blk uses).
struct DeviceOptions {
  uint32_t num_queues = 1;  // VIRTIO_BLK_F_MQ is offered when > 1
  bool read_only = false;   // VIRTIO_BLK_F_RO; forced on when the Disk is read-only
  // GET_ID answer: at most 20 bytes (longer is cut), NUL-padded; see make_serial().
  std::string serial;
  // Guest-visible discard granularity in bytes (discard_sector_alignment): the qcow2 cluster
  // size, since only whole clusters are deallocated; 4096 for raw images.
  uint32_t discard_granularity = 4096;
  uint32_t seg_max = 126;  // data segments per request (QEMU's queue-size 128 minus 2)
  uint32_t max_discard_sectors = 1u << 21;  // 1 GiB per segment
  uint32_t max_discard_seg = 256;           // Linux uses at most 256
  uint32_t max_write_zeroes_sectors = 1u << 21;
  uint32_t max_write_zeroes_seg = 256;
};

// "pinata-" followed by 13 hex digits of a 64-bit FNV-1a hash of `key` (e.g. the image's
// real path): 20 bytes, stable for a given image path.
std::string make_serial(std::string_view key);

class Device : public vhost::VhostUserDevice {
 public:
  // `disk` must outlive the device; so must `compactor` (optional), which is told about every
  // request and every discard.
  Device(disk::Disk& disk, DeviceOptions options, Compactor* compactor = nullptr);

  // ---- VhostUserDevice
  uint64_t features() const override;
  uint64_t protocol_features() const override;
  uint32_t num_queues() const override { return options_.num_queues; }
  void set_features(uint64_t acked) override;
  Status read_config(uint32_t offset, std::span<uint8_t> out) override;
  // Only the `writeback` byte (with VIRTIO_BLK_F_CONFIG_WCE) is writable.
  Status write_config(uint32_t offset, std::span<const uint8_t> data) override;
  void handle_kick(uint32_t index, vhost::Virtqueue& queue) override;
  // Flushes the disk (a qcow2 image is marked clean) and returns to the initial state.
  void reset() override;

  // Runs one request chain to completion; returns the used length to report. (handle_kick
  // is pop + process + add_used; tests and the fuzzer call this directly.)
  uint32_t process(const vhost::DescriptorChain& chain, uint32_t queue_index = 0);

  BlkConfig config() const;
  const Limits& limits() const { return limits_; }
  // Whether completed writes must be durable before completion (no FLUSH negotiated, or
  // CONFIG_WCE with writeback = 0): then every write is followed by a flush.
  bool writethrough() const;

  struct Stats {
    uint64_t reads = 0, writes = 0, flushes = 0, get_ids = 0, discards = 0, write_zeroes = 0;
    uint64_t bytes_read = 0, bytes_written = 0;
    uint64_t rejected = 0;   // completed IOERR/UNSUPP without touching the disk
    uint64_t io_errors = 0;  // the disk failed
    uint64_t no_status = 0;  // chains without a writable byte (used length 0)
  };
  const Stats& stats() const { return stats_; }

 private:
  // Runs the request in `in` (header onwards) writing read data into `data`; returns the
  // status byte.
  uint8_t execute(vhost::Reader& in, vhost::Writer& data, uint32_t queue_index);
  uint8_t reject(uint32_t queue_index, const RequestHeader& h, const Verdict& v);
  uint8_t disk_error(uint32_t queue_index, const RequestHeader& h, Op op, const Error& e);
  uint8_t do_read(uint32_t q, const RequestHeader& h, vhost::Writer& data);
  uint8_t do_write(uint32_t q, const RequestHeader& h, vhost::Reader& in);
  uint8_t do_flush(uint32_t q, const RequestHeader& h);
  uint8_t do_segments(uint32_t q, const RequestHeader& h, Op op, vhost::Reader& in);
  uint8_t finish_write(uint32_t q, const RequestHeader& h, Op op);
  void initial_state();

  disk::Disk& disk_;
  DeviceOptions options_;
  Compactor* compactor_ = nullptr;
  Limits limits_;
  uint64_t acked_ = 0;
  uint8_t writeback_ = 1;
  std::vector<uint8_t> bounce_;  // one chunk of read/write data (the Disk has no vector I/O)
  std::vector<uint8_t> seg_bytes_;
  std::vector<RangeSegment> segments_;
  log::RateLimitedLog log_;
  Stats stats_;
};

}  // namespace pinata::blk
