#include "vsock/packet.h"

#include <gtest/gtest.h>

#include <vector>

namespace pinata::vsock {
namespace {

Header sample() {
  Header h;
  h.src_cid = 3;
  h.dst_cid = 2;
  h.src_port = 0x11223344;
  h.dst_port = 2376;
  h.len = 5;
  h.type = VIRTIO_VSOCK_TYPE_STREAM;
  h.op = VIRTIO_VSOCK_OP_RW;
  h.flags = 0;
  h.buf_alloc = 262144;
  h.fwd_cnt = 77;
  return h;
}

TEST(Packet, EncodesTheSpecLayoutLittleEndian) {
  WireHeader w = encode_header(sample());

  EXPECT_EQ(w.size(), 44u);
  EXPECT_EQ(w[0], 3);      // src_cid
  EXPECT_EQ(w[8], 2);      // dst_cid
  EXPECT_EQ(w[16], 0x44);  // src_port, low byte first
  EXPECT_EQ(w[19], 0x11);
  EXPECT_EQ(w[20], 2376 & 0xff);               // dst_port
  EXPECT_EQ(w[24], 5);                         // len
  EXPECT_EQ(w[28], VIRTIO_VSOCK_TYPE_STREAM);  // type
  EXPECT_EQ(w[30], VIRTIO_VSOCK_OP_RW);        // op
  EXPECT_EQ(w[38], 0x04);                      // buf_alloc 0x40000
  EXPECT_EQ(w[40], 77);                        // fwd_cnt
}

TEST(Packet, DecodeInvertsEncode) {
  Header h = sample();
  WireHeader w = encode_header(h);

  auto d = decode_header(w);

  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, h);
}

TEST(Packet, ShortHeaderIsAnError) {
  std::vector<uint8_t> bytes(43, 0);
  auto d = decode_header(bytes);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().kind(), ErrorKind::kInvalidInput);
}

TEST(Packet, WellFormedGuestPacketIsAccepted) {
  EXPECT_EQ(check_guest_packet(sample(), 3, 5).disposition, Disposition::kAccept);
}

TEST(Packet, WrongSourceCidIsDropped) {
  Header h = sample();
  h.src_cid = 4;
  EXPECT_EQ(check_guest_packet(h, 3, 5).disposition, Disposition::kDrop);
}

TEST(Packet, LenLargerThanTheChainIsDropped) {
  EXPECT_EQ(check_guest_packet(sample(), 3, 4).disposition, Disposition::kDrop);
}

TEST(Packet, BadTypeUnknownOpAndForeignDestinationAreReset) {
  Header bad_type = sample();
  bad_type.type = 2;
  Header bad_op = sample();
  bad_op.op = 8;
  Header zero_op = sample();
  zero_op.op = 0;
  Header foreign = sample();
  foreign.dst_cid = 5;

  EXPECT_EQ(check_guest_packet(bad_type, 3, 5).disposition, Disposition::kReset);
  EXPECT_EQ(check_guest_packet(bad_op, 3, 5).disposition, Disposition::kReset);
  EXPECT_EQ(check_guest_packet(zero_op, 3, 5).disposition, Disposition::kReset);
  EXPECT_EQ(check_guest_packet(foreign, 3, 5).disposition, Disposition::kReset);
}

TEST(Packet, AnRstIsNeverAnsweredWithAnRst) {
  Header h = sample();
  h.op = VIRTIO_VSOCK_OP_RST;
  h.type = 9;
  EXPECT_EQ(check_guest_packet(h, 3, 5).disposition, Disposition::kDrop);
}

TEST(Packet, ResetReplySwapsAddresses) {
  Header r = reset_reply(sample());
  EXPECT_EQ(r.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(r.src_cid, 2u);
  EXPECT_EQ(r.dst_cid, 3u);
  EXPECT_EQ(r.src_port, 2376u);
  EXPECT_EQ(r.dst_port, 0x11223344u);
  EXPECT_EQ(r.len, 0u);
}

TEST(Packet, OpNames) {
  EXPECT_STREQ(op_name(VIRTIO_VSOCK_OP_CREDIT_REQUEST), "CREDIT_REQUEST");
  EXPECT_STREQ(op_name(1234), "op?");
}

}  // namespace
}  // namespace pinata::vsock
