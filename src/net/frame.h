// virtio-net wire pieces (virtio 1.2 §5.1.6): the per-packet header and what the device does
// to a guest frame before it goes to the network (checksum completion, size checks). Pure:
// bytes in, bytes out; no queues, no sockets. Fuzzed by fuzz/net_frame_fuzzer.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace pinata::net {

// Feature bits (virtio 1.2 §5.1.3).
constexpr int VIRTIO_NET_F_CSUM = 0;
constexpr int VIRTIO_NET_F_GUEST_CSUM = 1;
constexpr int VIRTIO_NET_F_MTU = 3;
constexpr int VIRTIO_NET_F_MAC = 5;
constexpr int VIRTIO_NET_F_GUEST_TSO4 = 7;
constexpr int VIRTIO_NET_F_HOST_TSO4 = 11;
constexpr int VIRTIO_NET_F_MRG_RXBUF = 15;
constexpr int VIRTIO_NET_F_STATUS = 16;

// virtio_net_hdr flags and gso types.
constexpr uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
constexpr uint8_t VIRTIO_NET_HDR_F_DATA_VALID = 2;
constexpr uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;

// The header is 12 bytes (virtio_net_hdr_v1, with num_buffers) when VERSION_1 or MRG_RXBUF
// is negotiated, else 10 (a legacy device without mergeable buffers).
constexpr size_t kNetHdrSize = 12;
constexpr size_t kNetHdrLegacySize = 10;

constexpr size_t kEthHeader = 14;
constexpr size_t kEthVlanTag = 4;
constexpr uint32_t kMinMtu = 68;      // IPv4's minimum (RFC 791), libslirp's IF_MTU_MIN
constexpr uint32_t kMaxMtu = 65520;   // what the device offers at most (libslirp allows 65521)
constexpr uint32_t kDefaultMtu = 1500;

// The largest Ethernet frame (without the virtio header) for an MTU: header + a VLAN tag.
constexpr size_t max_frame_for_mtu(uint32_t mtu) { return kEthHeader + kEthVlanTag + mtu; }

struct NetHeader {
  uint8_t flags = 0;
  uint8_t gso_type = VIRTIO_NET_HDR_GSO_NONE;
  uint16_t hdr_len = 0;
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;
  uint16_t num_buffers = 0;  // only in the 12-byte header
};

// Little-endian (VERSION_1, and legacy on the little-endian hosts and guests we run on).
// `bytes` is 10 or 12 bytes long (num_buffers is read only from 12).
NetHeader decode_net_header(std::span<const uint8_t> bytes);
// Writes 10 or 12 bytes (out.size() decides).
void encode_net_header(const NetHeader& h, std::span<uint8_t> out);

// The RFC 1071 ones' complement sum of `bytes` added to `sum`, not folded: callers chain
// pieces (an odd-length piece must be the last one).
uint32_t checksum_add(std::span<const uint8_t> bytes, uint32_t sum = 0);
// Folds a 32-bit sum to 16 bits (not inverted).
uint16_t checksum_fold(uint32_t sum);

// Checks a frame the guest sent and completes a partial checksum in place. Returns nullptr if
// the frame may go to the network, else why it must be dropped:
//   - shorter than an Ethernet header, or longer than `max_frame`;
//   - a GSO type other than NONE (we never offer TSO/UFO, so the guest may not use it);
//   - NEEDS_CSUM with csum_start/csum_offset pointing outside the frame. Otherwise the
//     ones' complement sum from csum_start to the end (which includes the pseudo-header sum
//     the guest left in the checksum field) is folded, inverted and stored at
//     csum_start + csum_offset (0 is sent as 0xffff, as Linux's skb_checksum_help does).
// Frames without NEEDS_CSUM are passed through unchanged: their checksums are the guest's.
[[nodiscard]] const char* prepare_tx_frame(const NetHeader& h, std::span<uint8_t> frame,
                                           size_t max_frame);

}  // namespace pinata::net
