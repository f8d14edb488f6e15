#include "blk/request.h"

#include <cstring>

namespace pinata::blk {

namespace {

uint32_t load_le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t load_le64(const uint8_t* p) { return load_le32(p) | uint64_t{load_le32(p + 4)} << 32; }
void store_le16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void store_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void store_le64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

constexpr Verdict kOk{};
Verdict ioerr(const char* reason) { return Verdict{VIRTIO_BLK_S_IOERR, reason}; }
Verdict unsupp(const char* reason) { return Verdict{VIRTIO_BLK_S_UNSUPP, reason}; }

}  // namespace

RequestHeader decode_header(std::span<const uint8_t, kHeaderSize> b) {
  return RequestHeader{load_le32(b.data()), load_le32(b.data() + 4), load_le64(b.data() + 8)};
}

std::array<uint8_t, kHeaderSize> encode_header(const RequestHeader& h) {
  std::array<uint8_t, kHeaderSize> b{};
  store_le32(b.data(), h.type);
  store_le32(b.data() + 4, h.reserved);
  store_le64(b.data() + 8, h.sector);
  return b;
}

RangeSegment decode_segment(std::span<const uint8_t, kSegmentSize> b) {
  return RangeSegment{load_le64(b.data()), load_le32(b.data() + 8), load_le32(b.data() + 12)};
}

std::array<uint8_t, kSegmentSize> encode_segment(const RangeSegment& s) {
  std::array<uint8_t, kSegmentSize> b{};
  store_le64(b.data(), s.sector);
  store_le32(b.data() + 8, s.num_sectors);
  store_le32(b.data() + 12, s.flags);
  return b;
}

const char* op_name(Op op) {
  switch (op) {
    case Op::kRead:
      return "IN";
    case Op::kWrite:
      return "OUT";
    case Op::kFlush:
      return "FLUSH";
    case Op::kGetId:
      return "GET_ID";
    case Op::kDiscard:
      return "DISCARD";
    case Op::kWriteZeroes:
      return "WRITE_ZEROES";
    case Op::kUnsupported:
      return "unsupported";
  }
  return "?";
}

Op classify(uint32_t type, const Limits& limits) {
  switch (type) {
    case VIRTIO_BLK_T_IN:
      return Op::kRead;
    case VIRTIO_BLK_T_OUT:
      return Op::kWrite;
    case VIRTIO_BLK_T_FLUSH:
    case VIRTIO_BLK_T_FLUSH_OUT:
      return Op::kFlush;
    case VIRTIO_BLK_T_GET_ID:
      return Op::kGetId;
    case VIRTIO_BLK_T_DISCARD:
      return limits.discard ? Op::kDiscard : Op::kUnsupported;
    case VIRTIO_BLK_T_WRITE_ZEROES:
      return limits.write_zeroes ? Op::kWriteZeroes : Op::kUnsupported;
    default:
      return Op::kUnsupported;
  }
}

bool sector_range_ok(uint64_t sector, uint64_t count, uint64_t capacity) {
  return sector <= capacity && count <= capacity - sector;
}

Verdict check_request(Op op, const RequestHeader& header, uint64_t out_bytes, uint64_t in_bytes,
                      const Limits& limits) {
  switch (op) {
    case Op::kUnsupported:
      return unsupp("request type not supported (or its feature not negotiated)");
    case Op::kFlush:
    case Op::kGetId:
      return kOk;
    case Op::kRead:
    case Op::kWrite: {
      uint64_t bytes = op == Op::kRead ? in_bytes : out_bytes;
      if (op == Op::kWrite && limits.read_only) return ioerr("write to a read-only disk");
      if (bytes % kSectorSize != 0) return ioerr("data length is not a multiple of 512 bytes");
      if (!sector_range_ok(header.sector, bytes >> kSectorShift, limits.capacity_sectors))
        return ioerr("sector range beyond the disk's capacity");
      return kOk;
    }
    case Op::kDiscard:
    case Op::kWriteZeroes: {
      if (limits.read_only) return ioerr("write to a read-only disk");
      uint32_t max_seg = op == Op::kDiscard ? limits.max_discard_seg : limits.max_write_zeroes_seg;
      if (out_bytes == 0 || out_bytes % kSegmentSize != 0)
        return ioerr("segment list is not a non-zero multiple of 16 bytes");
      if (out_bytes / kSegmentSize > max_seg) return ioerr("more segments than advertised");
      return kOk;
    }
  }
  return unsupp("unknown operation");
}

Verdict check_segments(Op op, std::span<const uint8_t> bytes, const Limits& limits,
                       std::vector<RangeSegment>& out) {
  out.clear();
  if (op != Op::kDiscard && op != Op::kWriteZeroes) return ioerr("not a segment request");
  if (bytes.size() % kSegmentSize != 0) return ioerr("segment list is not a multiple of 16 bytes");
  const uint32_t known_flags = op == Op::kWriteZeroes ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
  const uint32_t max_sectors =
      op == Op::kDiscard ? limits.max_discard_sectors : limits.max_write_zeroes_sectors;
  out.reserve(bytes.size() / kSegmentSize);
  for (size_t off = 0; off < bytes.size(); off += kSegmentSize) {
    RangeSegment s = decode_segment(bytes.subspan(off).first<kSegmentSize>());
    if (s.flags & ~known_flags) {
      out.clear();
      return unsupp(op == Op::kDiscard && (s.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
                        ? "discard segment with the unmap flag"
                        : "segment with unknown flags");
    }
    if (s.num_sectors > max_sectors) {
      out.clear();
      return ioerr("segment longer than advertised");
    }
    if (!sector_range_ok(s.sector, s.num_sectors, limits.capacity_sectors)) {
      out.clear();
      return ioerr("segment beyond the disk's capacity");
    }
    out.push_back(s);
  }
  return kOk;
}

std::array<uint8_t, kConfigSize> encode_config(const BlkConfig& c) {
  std::array<uint8_t, kConfigSize> b{};
  uint8_t* p = b.data();
  store_le64(p + 0, c.capacity);
  store_le32(p + 8, c.size_max);
  store_le32(p + 12, c.seg_max);
  store_le16(p + 16, c.cylinders);
  p[18] = c.heads;
  p[19] = c.sectors;
  store_le32(p + 20, c.blk_size);
  p[24] = c.physical_block_exp;
  p[25] = c.alignment_offset;
  store_le16(p + 26, c.min_io_size);
  store_le32(p + 28, c.opt_io_size);
  p[kConfigWritebackOffset] = c.writeback;
  p[33] = 0;  // unused0
  store_le16(p + 34, c.num_queues);
  store_le32(p + 36, c.max_discard_sectors);
  store_le32(p + 40, c.max_discard_seg);
  store_le32(p + 44, c.discard_sector_alignment);
  store_le32(p + 48, c.max_write_zeroes_sectors);
  store_le32(p + 52, c.max_write_zeroes_seg);
  p[56] = c.write_zeroes_may_unmap;
  // 57..59: unused1, zero.
  return b;
}

}  // namespace pinata::blk
