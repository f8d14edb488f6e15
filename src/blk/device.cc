#include "blk/device.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "base/log.h"
#include "vhost/message.h"
#include "vhost/virtqueue.h"

namespace pinata::blk {

using vhost::bit;

namespace {

// Read and write data move through one bounce buffer of at most this many bytes per Disk
// call (the Disk interface takes one contiguous buffer; a chain is scattered).
constexpr size_t kIoChunk = 1 << 20;
// The largest config space the vhost-user protocol lets a frontend ask for.
constexpr size_t kMaxConfigSpace = 256;
// Notify the driver after this many completions within one kick, so that a long batch does
// not hold every completion back until the end.
constexpr unsigned kNotifyBatch = 32;

const char* status_name(uint8_t s) {
  switch (s) {
    case VIRTIO_BLK_S_OK:
      return "OK";
    case VIRTIO_BLK_S_IOERR:
      return "IOERR";
    case VIRTIO_BLK_S_UNSUPP:
      return "UNSUPP";
  }
  return "?";
}

unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

}  // namespace

std::string make_serial(std::string_view key) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "pinata-%013llx", ull(h & ((uint64_t{1} << 52) - 1)));
  return buf;
}

Device::Device(disk::Disk& disk, DeviceOptions options, Compactor* compactor)
    : disk_(disk), options_(std::move(options)), compactor_(compactor) {
  if (options_.num_queues == 0) options_.num_queues = 1;
  if (options_.serial.size() > kIdBytes) options_.serial.resize(kIdBytes);
  if (disk_.read_only()) options_.read_only = true;
  limits_.capacity_sectors = disk_.virtual_size() >> kSectorShift;
  limits_.read_only = options_.read_only;
  limits_.max_discard_sectors = options_.max_discard_sectors;
  limits_.max_discard_seg = options_.max_discard_seg;
  limits_.max_write_zeroes_sectors = options_.max_write_zeroes_sectors;
  limits_.max_write_zeroes_seg = options_.max_write_zeroes_seg;
  initial_state();
}

void Device::initial_state() {
  acked_ = 0;
  writeback_ = 1;
  limits_.discard = false;
  limits_.write_zeroes = false;
}

uint64_t Device::features() const {
  uint64_t f = bit(vhost::VIRTIO_F_VERSION_1) | bit(vhost::VIRTIO_RING_F_EVENT_IDX) |
               bit(vhost::VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_BLK_F_SEG_MAX) |
               bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_TOPOLOGY) | bit(VIRTIO_BLK_F_FLUSH) |
               bit(VIRTIO_BLK_F_CONFIG_WCE);
  if (options_.num_queues > 1) f |= bit(VIRTIO_BLK_F_MQ);
  if (options_.read_only) {
    f |= bit(VIRTIO_BLK_F_RO);
  } else {
    f |= bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES);
  }
  return f;
}

uint64_t Device::protocol_features() const { return bit(vhost::PROTOCOL_F_CONFIG); }

void Device::set_features(uint64_t acked) {
  acked_ = acked;
  limits_.discard = !options_.read_only && (acked & bit(VIRTIO_BLK_F_DISCARD));
  limits_.write_zeroes = !options_.read_only && (acked & bit(VIRTIO_BLK_F_WRITE_ZEROES));
  // §5.2.5: CONFIG_WCE without FLUSH starts in writethrough mode.
  if ((acked & bit(VIRTIO_BLK_F_CONFIG_WCE)) && !(acked & bit(VIRTIO_BLK_F_FLUSH))) writeback_ = 0;
  log::debug("blk: features acked 0x%llx (%s)", ull(acked),
             writethrough() ? "writethrough" : "writeback");
}

bool Device::writethrough() const {
  if (!(acked_ & bit(VIRTIO_BLK_F_FLUSH))) return true;
  return (acked_ & bit(VIRTIO_BLK_F_CONFIG_WCE)) && writeback_ == 0;
}

BlkConfig Device::config() const {
  BlkConfig c;
  c.capacity = limits_.capacity_sectors;
  c.seg_max = options_.seg_max;
  c.blk_size = kSectorSize;  // 512-byte logical blocks ...
  c.physical_block_exp = 3;  // ... in 4096-byte physical blocks
  c.min_io_size = 8;         // 4096 bytes
  c.opt_io_size = 0;
  c.writeback = writeback_;
  c.num_queues = static_cast<uint16_t>(options_.num_queues);
  c.max_discard_sectors = options_.max_discard_sectors;
  c.max_discard_seg = options_.max_discard_seg;
  c.discard_sector_alignment = std::max<uint32_t>(1, options_.discard_granularity >> kSectorShift);
  c.max_write_zeroes_sectors = options_.max_write_zeroes_sectors;
  c.max_write_zeroes_seg = options_.max_write_zeroes_seg;
  c.write_zeroes_may_unmap = 1;
  return c;
}

Status Device::read_config(uint32_t offset, std::span<uint8_t> out) {
  if (offset > kMaxConfigSpace || out.size() > kMaxConfigSpace - offset) {
    return fail(ErrorKind::kInvalidInput, "config read past 256 bytes");
  }
  uint8_t space[kMaxConfigSpace] = {};  // fields we don't offer read as zero
  auto encoded = encode_config(config());
  std::memcpy(space, encoded.data(), encoded.size());
  std::memcpy(out.data(), space + offset, out.size());
  return {};
}

Status Device::write_config(uint32_t offset, std::span<const uint8_t> data) {
  if (offset != kConfigWritebackOffset || data.size() != 1) {
    return fail(ErrorKind::kUnsupported, "only the writeback byte of the config is writable");
  }
  uint8_t wb = data[0] ? 1 : 0;
  if (wb != writeback_) {
    log::info("blk: guest switched the cache to %s", wb ? "writeback" : "writethrough");
  }
  writeback_ = wb;
  return {};
}

void Device::reset() {
  if (!options_.read_only) {
    if (auto s = disk_.flush(); !s) {
      log::error("blk: flush after the frontend left failed: %s", s.error().message().c_str());
    } else {
      log::info("blk: image flushed (%llu reads, %llu writes, %llu flushes so far)",
                ull(stats_.reads), ull(stats_.writes), ull(stats_.flushes));
    }
  }
  initial_state();
}

void Device::handle_kick(uint32_t index, vhost::Virtqueue& queue) {
  unsigned done = 0;
  while (auto chain = queue.pop()) {
    uint32_t len = process(*chain, index);
    (void)queue.add_used(*chain, len);
    if (++done % kNotifyBatch == 0) queue.notify();
  }
}

uint32_t Device::process(const vhost::DescriptorChain& chain, uint32_t queue_index) {
  vhost::Writer data(chain);
  if (data.available() == 0) {
    stats_.no_status++;
    log_.warn(
        "blk: queue %u: request chain has no writable byte for the status; returned "
        "with length 0",
        queue_index);
    return 0;
  }
  // The status is the chain's last writable byte; everything before it is data space.
  vhost::Writer status = data.split_at(data.available() - 1);
  vhost::Reader in(chain);
  uint8_t s = execute(in, data, queue_index);
  (void)status.write(&s, 1);
  return static_cast<uint32_t>(data.bytes_written() + 1);
}

uint8_t Device::execute(vhost::Reader& in, vhost::Writer& data, uint32_t q) {
  uint8_t raw[kHeaderSize];
  if (!in.read(raw, sizeof raw)) {
    stats_.rejected++;
    log_.warn("blk: queue %u: request header of %zu bytes (need 16); IOERR", q, in.available());
    return VIRTIO_BLK_S_IOERR;
  }
  RequestHeader h = decode_header(raw);
  Op op = classify(h.type, limits_);
  if (compactor_) compactor_->note_request();
  Verdict v = check_request(op, h, in.available(), data.available(), limits_);
  if (!v.ok()) return reject(q, h, v);
  switch (op) {
    case Op::kRead:
      return do_read(q, h, data);
    case Op::kWrite:
      return do_write(q, h, in);
    case Op::kFlush:
      return do_flush(q, h);
    case Op::kGetId: {
      uint8_t id[kIdBytes] = {};
      std::memcpy(id, options_.serial.data(), options_.serial.size());
      data.write_some(id);
      stats_.get_ids++;
      return VIRTIO_BLK_S_OK;
    }
    case Op::kDiscard:
    case Op::kWriteZeroes:
      return do_segments(q, h, op, in);
    case Op::kUnsupported:
      break;
  }
  return reject(q, h, Verdict{VIRTIO_BLK_S_UNSUPP, "unsupported"});
}

uint8_t Device::reject(uint32_t q, const RequestHeader& h, const Verdict& v) {
  stats_.rejected++;
  log_.warn("blk: queue %u: request type %u sector %llu: %s; %s", q, h.type, ull(h.sector),
            v.reason ? v.reason : "rejected", status_name(v.status));
  return v.status;
}

uint8_t Device::disk_error(uint32_t q, const RequestHeader& h, Op op, const Error& e) {
  stats_.io_errors++;
  log_.warn("blk: queue %u: %s at sector %llu failed: %s; IOERR", q, op_name(op), ull(h.sector),
            e.message().c_str());
  return VIRTIO_BLK_S_IOERR;
}

uint8_t Device::do_read(uint32_t q, const RequestHeader& h, vhost::Writer& data) {
  uint64_t offset = h.sector << kSectorShift;
  const uint64_t total = data.available();
  uint64_t left = total;
  while (left > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, kIoChunk));
    if (bounce_.size() < n) bounce_.resize(n);
    if (auto s = disk_.read(offset, {bounce_.data(), n}); !s) {
      return disk_error(q, h, Op::kRead, s.error());
    }
    (void)data.write(bounce_.data(), n);
    offset += n;
    left -= n;
  }
  stats_.reads++;
  stats_.bytes_read += total;
  return VIRTIO_BLK_S_OK;
}

uint8_t Device::do_write(uint32_t q, const RequestHeader& h, vhost::Reader& in) {
  uint64_t offset = h.sector << kSectorShift;
  const uint64_t total = in.available();
  uint64_t left = total;
  while (left > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, kIoChunk));
    if (bounce_.size() < n) bounce_.resize(n);
    (void)in.read(bounce_.data(), n);
    if (auto s = disk_.write(offset, {bounce_.data(), n}); !s) {
      return disk_error(q, h, Op::kWrite, s.error());
    }
    offset += n;
    left -= n;
  }
  stats_.writes++;
  stats_.bytes_written += total;
  return finish_write(q, h, Op::kWrite);
}

uint8_t Device::finish_write(uint32_t q, const RequestHeader& h, Op op) {
  if (!writethrough()) return VIRTIO_BLK_S_OK;
  if (auto s = disk_.flush(); !s) return disk_error(q, h, op, s.error());
  return VIRTIO_BLK_S_OK;
}

uint8_t Device::do_flush(uint32_t q, const RequestHeader& h) {
  stats_.flushes++;
  if (auto s = disk_.flush(); !s) return disk_error(q, h, Op::kFlush, s.error());
  return VIRTIO_BLK_S_OK;
}

uint8_t Device::do_segments(uint32_t q, const RequestHeader& h, Op op, vhost::Reader& in) {
  // check_request bounded the list to max_*_seg segments.
  seg_bytes_.resize(in.available());
  (void)in.read(seg_bytes_.data(), seg_bytes_.size());
  Verdict v = check_segments(op, seg_bytes_, limits_, segments_);
  if (!v.ok()) return reject(q, h, v);
  for (const RangeSegment& s : segments_) {
    if (s.num_sectors == 0) continue;
    uint64_t offset = s.sector << kSectorShift;
    uint64_t len = uint64_t{s.num_sectors} << kSectorShift;
    Status st;
    if (op == Op::kDiscard) {
      st = disk_.discard(offset, len);
    } else {
      st = disk_.write_zeroes(offset, len,
                              (s.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ? disk::Unmap::kAllowed
                                                                             : disk::Unmap::kNo);
    }
    if (!st) {
      RequestHeader at = h;
      at.sector = s.sector;
      return disk_error(q, at, op, st.error());
    }
  }
  (op == Op::kDiscard ? stats_.discards : stats_.write_zeroes)++;
  if (compactor_ && (op == Op::kDiscard || (h.type == VIRTIO_BLK_T_WRITE_ZEROES && !segments_.empty() &&
                                             (segments_[0].flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))))
    compactor_->note_discard();
  return finish_write(q, h, op);
}

}  // namespace pinata::blk
