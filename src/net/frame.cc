#include "net/frame.h"

namespace pinata::net {

namespace {

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
void put_le16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

}  // namespace

NetHeader decode_net_header(std::span<const uint8_t> bytes) {
  NetHeader h;
  if (bytes.size() < kNetHdrLegacySize) return h;
  h.flags = bytes[0];
  h.gso_type = bytes[1];
  h.hdr_len = le16(&bytes[2]);
  h.gso_size = le16(&bytes[4]);
  h.csum_start = le16(&bytes[6]);
  h.csum_offset = le16(&bytes[8]);
  if (bytes.size() >= kNetHdrSize) h.num_buffers = le16(&bytes[10]);
  return h;
}

void encode_net_header(const NetHeader& h, std::span<uint8_t> out) {
  if (out.size() < kNetHdrLegacySize) return;
  out[0] = h.flags;
  out[1] = h.gso_type;
  put_le16(&out[2], h.hdr_len);
  put_le16(&out[4], h.gso_size);
  put_le16(&out[6], h.csum_start);
  put_le16(&out[8], h.csum_offset);
  if (out.size() >= kNetHdrSize) put_le16(&out[10], h.num_buffers);
}

uint32_t checksum_add(std::span<const uint8_t> bytes, uint32_t sum) {
  // 64-bit accumulator: a 64 KiB frame of 0xff bytes cannot overflow it.
  uint64_t acc = sum;
  size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) acc += static_cast<uint32_t>(bytes[i] << 8 | bytes[i + 1]);
  if (i < bytes.size()) acc += static_cast<uint32_t>(bytes[i] << 8);
  while (acc >> 32) acc = (acc & 0xffffffff) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}

uint16_t checksum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

const char* prepare_tx_frame(const NetHeader& h, std::span<uint8_t> frame, size_t max_frame) {
  if (frame.size() < kEthHeader) return "shorter than an Ethernet header";
  if (frame.size() > max_frame) return "longer than the MTU allows";
  if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE) return "GSO requested but never offered";
  if (!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) return nullptr;
  // The checksum field (2 bytes at csum_start + csum_offset) must lie in the frame, after
  // the Ethernet header (a checksum over the MAC addresses is no protocol's).
  const size_t start = h.csum_start;
  const size_t field = start + h.csum_offset;
  if (start < kEthHeader || start >= frame.size()) return "csum_start outside the frame";
  if (field + 2 > frame.size()) return "csum_offset outside the frame";
  uint16_t sum = static_cast<uint16_t>(~checksum_fold(checksum_add(frame.subspan(start))));
  if (sum == 0) sum = 0xffff;
  frame[field] = static_cast<uint8_t>(sum >> 8);
  frame[field + 1] = static_cast<uint8_t>(sum);
  return nullptr;
}

}  // namespace pinata::net
