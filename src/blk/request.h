// The virtio-blk wire format (virtio 1.2 §5.2) and pure request validation: no disk, no
// virtqueue. The device (device.h) reads the bytes out of a descriptor chain, asks these
// functions what the request is and whether it may run, and then does the I/O.
//
// All multi-byte fields are little endian (the legacy interface is guest-endian, which is also
// little endian on x86, so the codec is the same).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace pinata::blk {

// Feature bits (§5.2.3).
constexpr int VIRTIO_BLK_F_SIZE_MAX = 1;
constexpr int VIRTIO_BLK_F_SEG_MAX = 2;
constexpr int VIRTIO_BLK_F_GEOMETRY = 4;
constexpr int VIRTIO_BLK_F_RO = 5;
constexpr int VIRTIO_BLK_F_BLK_SIZE = 6;
constexpr int VIRTIO_BLK_F_FLUSH = 9;
constexpr int VIRTIO_BLK_F_TOPOLOGY = 10;
constexpr int VIRTIO_BLK_F_CONFIG_WCE = 11;
constexpr int VIRTIO_BLK_F_MQ = 12;
constexpr int VIRTIO_BLK_F_DISCARD = 13;
constexpr int VIRTIO_BLK_F_WRITE_ZEROES = 14;

// Request types (§5.2.6).
constexpr uint32_t VIRTIO_BLK_T_IN = 0;
constexpr uint32_t VIRTIO_BLK_T_OUT = 1;
constexpr uint32_t VIRTIO_BLK_T_FLUSH = 4;
constexpr uint32_t VIRTIO_BLK_T_FLUSH_OUT = 5;  // legacy synonym of FLUSH
constexpr uint32_t VIRTIO_BLK_T_GET_ID = 8;
constexpr uint32_t VIRTIO_BLK_T_GET_LIFETIME = 10;
constexpr uint32_t VIRTIO_BLK_T_DISCARD = 11;
constexpr uint32_t VIRTIO_BLK_T_WRITE_ZEROES = 13;
constexpr uint32_t VIRTIO_BLK_T_SECURE_ERASE = 14;

// Status byte values.
constexpr uint8_t VIRTIO_BLK_S_OK = 0;
constexpr uint8_t VIRTIO_BLK_S_IOERR = 1;
constexpr uint8_t VIRTIO_BLK_S_UNSUPP = 2;

// Discard / write-zeroes segment flags.
constexpr uint32_t VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

constexpr uint64_t kSectorSize = 512;
constexpr int kSectorShift = 9;
constexpr size_t kHeaderSize = 16;   // struct virtio_blk_req up to data[]
constexpr size_t kSegmentSize = 16;  // struct virtio_blk_discard_write_zeroes
constexpr size_t kIdBytes = 20;      // VIRTIO_BLK_T_GET_ID data

// struct virtio_blk_req's fixed part.
struct RequestHeader {
  uint32_t type = 0;
  uint32_t reserved = 0;  // legacy "ioprio"; ignored
  uint64_t sector = 0;
};
RequestHeader decode_header(std::span<const uint8_t, kHeaderSize> bytes);
std::array<uint8_t, kHeaderSize> encode_header(const RequestHeader& header);

// struct virtio_blk_discard_write_zeroes.
struct RangeSegment {
  uint64_t sector = 0;
  uint32_t num_sectors = 0;
  uint32_t flags = 0;
};
RangeSegment decode_segment(std::span<const uint8_t, kSegmentSize> bytes);
std::array<uint8_t, kSegmentSize> encode_segment(const RangeSegment& segment);

// What a request asks for, once its type is known.
enum class Op { kRead, kWrite, kFlush, kGetId, kDiscard, kWriteZeroes, kUnsupported };
const char* op_name(Op op);

// What the device offers and the driver negotiated; requests are checked against it.
struct Limits {
  uint64_t capacity_sectors = 0;
  bool read_only = false;
  bool discard = false;       // VIRTIO_BLK_F_DISCARD negotiated
  bool write_zeroes = false;  // VIRTIO_BLK_F_WRITE_ZEROES negotiated
  uint32_t max_discard_sectors = 0;
  uint32_t max_discard_seg = 0;
  uint32_t max_write_zeroes_sectors = 0;
  uint32_t max_write_zeroes_seg = 0;
};

// The verdict on a request: run it (status OK) or complete it at once with `status`; `reason`
// says why, for the log (a string literal, nullptr when OK).
struct Verdict {
  uint8_t status = VIRTIO_BLK_S_OK;
  const char* reason = nullptr;
  bool ok() const { return status == VIRTIO_BLK_S_OK; }
};

// The operation for a request type. DISCARD and WRITE_ZEROES are kUnsupported unless
// negotiated; unknown types (SCSI, GET_LIFETIME, SECURE_ERASE, zoned, legacy BARRIER bit)
// are kUnsupported. FLUSH and FLUSH_OUT are always served.
Op classify(uint32_t type, const Limits& limits);

// Checks a request before any data moves. `out_bytes` is the device-readable length after the
// 16-byte header (the data of a write, the segments of a discard); `in_bytes` the
// device-writable length before the status byte (the data of a read).
//   - kUnsupported: UNSUPP.
//   - writes (OUT, DISCARD, WRITE_ZEROES) on a read-only device: IOERR (nothing is written).
//   - IN/OUT: data length a multiple of 512; [sector, sector + len/512) within capacity,
//     without overflow: else IOERR.
//   - DISCARD/WRITE_ZEROES: segment list a non-zero multiple of 16 bytes with at most
//     max_*_seg segments: else IOERR. (The segments themselves: check_segments.)
Verdict check_request(Op op, const RequestHeader& header, uint64_t out_bytes, uint64_t in_bytes,
                      const Limits& limits);

// Decodes and checks the segments of a DISCARD or WRITE_ZEROES request (`bytes` already
// passed check_request): unknown flags, or UNMAP on a discard: UNSUPP; more than
// max_*_sectors in a segment, or a range beyond capacity or overflowing: IOERR.
Verdict check_segments(Op op, std::span<const uint8_t> bytes, const Limits& limits,
                       std::vector<RangeSegment>& out);

// [sector, sector + count) ⊆ [0, capacity) without overflow.
bool sector_range_ok(uint64_t sector, uint64_t count, uint64_t capacity);

// The device configuration layout (struct virtio_blk_config up to write_zeroes_may_unmap
// and its padding; the secure-erase and zoned fields are not offered and read as zero).
struct BlkConfig {
  uint64_t capacity = 0;  // 512-byte sectors
  uint32_t size_max = 0;
  uint32_t seg_max = 0;
  uint16_t cylinders = 0;
  uint8_t heads = 0;
  uint8_t sectors = 0;
  uint32_t blk_size = 0;
  uint8_t physical_block_exp = 0;  // log2(physical block / logical block)
  uint8_t alignment_offset = 0;
  uint16_t min_io_size = 0;  // in logical blocks
  uint32_t opt_io_size = 0;  // in logical blocks
  uint8_t writeback = 0;
  uint16_t num_queues = 0;
  uint32_t max_discard_sectors = 0;
  uint32_t max_discard_seg = 0;
  uint32_t discard_sector_alignment = 0;
  uint32_t max_write_zeroes_sectors = 0;
  uint32_t max_write_zeroes_seg = 0;
  uint8_t write_zeroes_may_unmap = 0;
};
constexpr size_t kConfigSize = 60;
constexpr uint32_t kConfigWritebackOffset = 32;
std::array<uint8_t, kConfigSize> encode_config(const BlkConfig& config);

}  // namespace pinata::blk
