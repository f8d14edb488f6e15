// Pure request parsing and validation (request.h): no disk, no queue.
#include "blk/request.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace pinata::blk {
namespace {

Limits limits(uint64_t capacity = 2048) {
  Limits l;
  l.capacity_sectors = capacity;
  l.discard = true;
  l.write_zeroes = true;
  l.max_discard_sectors = 1024;
  l.max_discard_seg = 4;
  l.max_write_zeroes_sectors = 1024;
  l.max_write_zeroes_seg = 2;
  return l;
}

RequestHeader header(uint32_t type, uint64_t sector = 0) { return RequestHeader{type, 0, sector}; }

std::vector<uint8_t> segments(const std::vector<RangeSegment>& segs) {
  std::vector<uint8_t> out;
  for (const auto& s : segs) {
    auto b = encode_segment(s);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

TEST(RequestHeader, DecodesLittleEndianFields) {
  const uint8_t raw[16] = {1,    0,    0,    0,    0xaa, 0xbb, 0xcc, 0xdd,
                           0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};

  RequestHeader h = decode_header(std::span<const uint8_t, 16>(raw, 16));

  EXPECT_EQ(h.type, VIRTIO_BLK_T_OUT);
  EXPECT_EQ(h.reserved, 0xddccbbaau);
  EXPECT_EQ(h.sector, 0x0102030405060708ull);
}

TEST(RequestHeader, EncodeDecodeRoundTrip) {
  RequestHeader h{VIRTIO_BLK_T_WRITE_ZEROES, 7, 0xfedcba9876543210ull};

  auto raw = encode_header(h);
  RequestHeader back = decode_header(raw);

  EXPECT_EQ(back.type, h.type);
  EXPECT_EQ(back.reserved, h.reserved);
  EXPECT_EQ(back.sector, h.sector);
}

TEST(RangeSegment, EncodeDecodeRoundTrip) {
  RangeSegment s{0x1122334455667788ull, 0x99aabbccu, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP};

  auto raw = encode_segment(s);
  RangeSegment back = decode_segment(raw);

  EXPECT_EQ(raw[0], 0x88);
  EXPECT_EQ(raw[8], 0xcc);
  EXPECT_EQ(raw[12], 1);
  EXPECT_EQ(back.sector, s.sector);
  EXPECT_EQ(back.num_sectors, s.num_sectors);
  EXPECT_EQ(back.flags, s.flags);
}

TEST(Classify, KnownTypesMapToOperations) {
  Limits l = limits();

  EXPECT_EQ(classify(VIRTIO_BLK_T_IN, l), Op::kRead);
  EXPECT_EQ(classify(VIRTIO_BLK_T_OUT, l), Op::kWrite);
  EXPECT_EQ(classify(VIRTIO_BLK_T_FLUSH, l), Op::kFlush);
  EXPECT_EQ(classify(VIRTIO_BLK_T_FLUSH_OUT, l), Op::kFlush);
  EXPECT_EQ(classify(VIRTIO_BLK_T_GET_ID, l), Op::kGetId);
  EXPECT_EQ(classify(VIRTIO_BLK_T_DISCARD, l), Op::kDiscard);
  EXPECT_EQ(classify(VIRTIO_BLK_T_WRITE_ZEROES, l), Op::kWriteZeroes);
}

TEST(Classify, UnknownOrUnnegotiatedTypesAreUnsupported) {
  Limits l = limits();
  l.discard = false;
  l.write_zeroes = false;

  EXPECT_EQ(classify(VIRTIO_BLK_T_DISCARD, l), Op::kUnsupported);
  EXPECT_EQ(classify(VIRTIO_BLK_T_WRITE_ZEROES, l), Op::kUnsupported);
  EXPECT_EQ(classify(2, l), Op::kUnsupported);  // legacy SCSI_CMD
  EXPECT_EQ(classify(VIRTIO_BLK_T_GET_LIFETIME, l), Op::kUnsupported);
  EXPECT_EQ(classify(VIRTIO_BLK_T_SECURE_ERASE, l), Op::kUnsupported);
  EXPECT_EQ(classify(0x80000001u, l), Op::kUnsupported);  // OUT with the legacy BARRIER bit
  EXPECT_EQ(classify(0xffffffffu, l), Op::kUnsupported);
}

TEST(CheckRequest, UnsupportedIsUnsupp) {
  Verdict v = check_request(Op::kUnsupported, header(99), 0, 0, limits());

  EXPECT_EQ(v.status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_NE(v.reason, nullptr);
}

TEST(CheckRequest, ReadAndWriteInsideCapacityAreOk) {
  Limits l = limits(2048);

  EXPECT_TRUE(check_request(Op::kRead, header(0, 0), 0, 512, l).ok());
  EXPECT_TRUE(check_request(Op::kRead, header(0, 2040), 0, 8 * 512, l).ok());  // ends at capacity
  EXPECT_TRUE(check_request(Op::kWrite, header(1, 2047), 512, 0, l).ok());
  EXPECT_TRUE(check_request(Op::kRead, header(0, 2048), 0, 0, l).ok());  // empty, at the end
}

TEST(CheckRequest, RangeBeyondCapacityIsIoErr) {
  Limits l = limits(2048);

  EXPECT_EQ(check_request(Op::kRead, header(0, 2041), 0, 8 * 512, l).status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(check_request(Op::kWrite, header(1, 2048), 512, 0, l).status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(check_request(Op::kRead, header(0, 5000), 0, 0, l).status, VIRTIO_BLK_S_IOERR);
}

TEST(CheckRequest, OverflowingSectorRangeIsIoErr) {
  Limits l = limits(UINT64_MAX >> 9);

  Verdict v = check_request(Op::kRead, header(0, UINT64_MAX - 1), 0, 4096, l);
  Verdict w = check_request(Op::kWrite, header(1, (UINT64_MAX >> 9) - 1), 0x400000, 0, l);

  EXPECT_EQ(v.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(w.status, VIRTIO_BLK_S_IOERR);
}

TEST(CheckRequest, DataNotAMultipleOf512IsIoErr) {
  Limits l = limits();

  EXPECT_EQ(check_request(Op::kRead, header(0), 0, 511, l).status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(check_request(Op::kWrite, header(1), 513, 0, l).status, VIRTIO_BLK_S_IOERR);
}

TEST(CheckRequest, WritesToAReadOnlyDiskAreIoErr) {
  Limits l = limits();
  l.read_only = true;

  EXPECT_EQ(check_request(Op::kWrite, header(1), 512, 0, l).status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(check_request(Op::kDiscard, header(11), 16, 0, l).status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(check_request(Op::kWriteZeroes, header(13), 16, 0, l).status, VIRTIO_BLK_S_IOERR);
  EXPECT_TRUE(check_request(Op::kRead, header(0), 0, 512, l).ok());
  EXPECT_TRUE(check_request(Op::kFlush, header(4), 0, 0, l).ok());
}

TEST(CheckRequest, SegmentListMustBeANonZeroMultipleOf16) {
  Limits l = limits();

  EXPECT_EQ(check_request(Op::kDiscard, header(11), 0, 0, l).status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(check_request(Op::kDiscard, header(11), 17, 0, l).status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(check_request(Op::kWriteZeroes, header(13), 15, 0, l).status, VIRTIO_BLK_S_IOERR);
  EXPECT_TRUE(check_request(Op::kDiscard, header(11), 32, 0, l).ok());
}

TEST(CheckRequest, MoreSegmentsThanAdvertisedIsIoErr) {
  Limits l = limits();  // 4 discard segments, 2 write-zeroes segments

  EXPECT_TRUE(check_request(Op::kDiscard, header(11), 4 * 16, 0, l).ok());
  EXPECT_EQ(check_request(Op::kDiscard, header(11), 5 * 16, 0, l).status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(check_request(Op::kWriteZeroes, header(13), 3 * 16, 0, l).status, VIRTIO_BLK_S_IOERR);
}

TEST(CheckSegments, ValidSegmentsAreDecoded) {
  std::vector<RangeSegment> out;
  auto bytes = segments({{0, 8, 0}, {100, 0, 0}, {2040, 8, 0}});

  Verdict v = check_segments(Op::kDiscard, bytes, limits(), out);

  ASSERT_TRUE(v.ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2].sector, 2040u);
  EXPECT_EQ(out[2].num_sectors, 8u);
}

TEST(CheckSegments, DiscardWithUnmapIsUnsupp) {
  std::vector<RangeSegment> out;
  auto bytes = segments({{0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}});

  Verdict v = check_segments(Op::kDiscard, bytes, limits(), out);

  EXPECT_EQ(v.status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_TRUE(out.empty());
}

TEST(CheckSegments, WriteZeroesAcceptsUnmapButNotUnknownFlags) {
  std::vector<RangeSegment> out;

  Verdict unmap = check_segments(
      Op::kWriteZeroes, segments({{0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}}), limits(), out);
  Verdict unknown = check_segments(Op::kWriteZeroes, segments({{0, 8, 2}}), limits(), out);
  Verdict discard_unknown =
      check_segments(Op::kDiscard, segments({{0, 8, 0x80000000u}}), limits(), out);

  EXPECT_TRUE(unmap.ok());
  EXPECT_EQ(unknown.status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(discard_unknown.status, VIRTIO_BLK_S_UNSUPP);
}

TEST(CheckSegments, SegmentBeyondCapacityOrOverflowingIsIoErr) {
  std::vector<RangeSegment> out;

  Verdict past = check_segments(Op::kDiscard, segments({{0, 8, 0}, {2041, 8, 0}}), limits(), out);
  Verdict wrap = check_segments(Op::kWriteZeroes, segments({{UINT64_MAX - 3, 8, 0}}),
                                limits(UINT64_MAX >> 9), out);

  EXPECT_EQ(past.status, VIRTIO_BLK_S_IOERR);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(wrap.status, VIRTIO_BLK_S_IOERR);
}

TEST(CheckSegments, SegmentLongerThanAdvertisedIsIoErr) {
  std::vector<RangeSegment> out;

  Verdict v = check_segments(Op::kDiscard, segments({{0, 1025, 0}}), limits(4096), out);

  EXPECT_EQ(v.status, VIRTIO_BLK_S_IOERR);
}

TEST(SectorRange, EdgesAndOverflow) {
  EXPECT_TRUE(sector_range_ok(0, 10, 10));
  EXPECT_TRUE(sector_range_ok(10, 0, 10));
  EXPECT_FALSE(sector_range_ok(11, 0, 10));
  EXPECT_FALSE(sector_range_ok(1, 10, 10));
  EXPECT_FALSE(sector_range_ok(UINT64_MAX, 2, UINT64_MAX));
}

TEST(Config, LayoutMatchesVirtioBlkConfig) {
  BlkConfig c;
  c.capacity = 0x0102030405060708ull;
  c.seg_max = 126;
  c.blk_size = 512;
  c.physical_block_exp = 3;
  c.min_io_size = 8;
  c.opt_io_size = 0x11223344;
  c.writeback = 1;
  c.num_queues = 4;
  c.max_discard_sectors = 0x200000;
  c.max_discard_seg = 256;
  c.discard_sector_alignment = 128;
  c.max_write_zeroes_sectors = 0x300000;
  c.max_write_zeroes_seg = 255;
  c.write_zeroes_may_unmap = 1;

  auto b = encode_config(c);

  EXPECT_EQ(b.size(), 60u);
  EXPECT_EQ(b[0], 0x08);
  EXPECT_EQ(b[7], 0x01);
  EXPECT_EQ(b[12], 126);
  EXPECT_EQ(b[20] | b[21] << 8, 512);
  EXPECT_EQ(b[24], 3);
  EXPECT_EQ(b[26], 8);
  EXPECT_EQ(b[28], 0x44);
  EXPECT_EQ(b[32], 1);
  EXPECT_EQ(b[33], 0);
  EXPECT_EQ(b[34], 4);
  EXPECT_EQ(b[36] | b[37] << 8 | b[38] << 16, 0x200000);
  EXPECT_EQ(b[40] | b[41] << 8, 256);
  EXPECT_EQ(b[44], 128);
  EXPECT_EQ(b[48] | b[49] << 8 | b[50] << 16, 0x300000);
  EXPECT_EQ(b[52], 255);
  EXPECT_EQ(b[56], 1);
  EXPECT_EQ(b[57] | b[58] | b[59], 0);
}

}  // namespace
}  // namespace pinata::blk
