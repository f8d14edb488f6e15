// The virtio-vsock packet header (virtio 1.2 §5.10 "Socket Device"): a pure codec plus the
// checks a packet from an untrusted guest must pass before the muxer looks at it.
//
// Wire format: struct virtio_vsock_hdr, 44 bytes, little-endian, packed:
//   le64 src_cid, dst_cid; le32 src_port, dst_port; le32 len; le16 type; le16 op;
//   le32 flags; le32 buf_alloc; le32 fwd_cnt
// followed by `len` payload bytes (only meaningful for VIRTIO_VSOCK_OP_RW).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/result.h"

namespace pinata::vsock {

constexpr size_t kHeaderSize = 44;
constexpr uint64_t kHostCid = 2;  // VMADDR_CID_HOST

constexpr uint16_t VIRTIO_VSOCK_TYPE_STREAM = 1;

constexpr uint16_t VIRTIO_VSOCK_OP_INVALID = 0;
constexpr uint16_t VIRTIO_VSOCK_OP_REQUEST = 1;
constexpr uint16_t VIRTIO_VSOCK_OP_RESPONSE = 2;
constexpr uint16_t VIRTIO_VSOCK_OP_RST = 3;
constexpr uint16_t VIRTIO_VSOCK_OP_SHUTDOWN = 4;
constexpr uint16_t VIRTIO_VSOCK_OP_RW = 5;
constexpr uint16_t VIRTIO_VSOCK_OP_CREDIT_UPDATE = 6;
constexpr uint16_t VIRTIO_VSOCK_OP_CREDIT_REQUEST = 7;

constexpr uint32_t VIRTIO_VSOCK_SHUTDOWN_RCV = 1;
constexpr uint32_t VIRTIO_VSOCK_SHUTDOWN_SEND = 2;
constexpr uint32_t kShutdownBoth = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;

// A decoded header, fields in host byte order.
struct Header {
  uint64_t src_cid = 0;
  uint64_t dst_cid = 0;
  uint32_t src_port = 0;
  uint32_t dst_port = 0;
  uint32_t len = 0;
  uint16_t type = 0;
  uint16_t op = 0;
  uint32_t flags = 0;
  uint32_t buf_alloc = 0;
  uint32_t fwd_cnt = 0;

  bool operator==(const Header&) const = default;
};

using WireHeader = std::array<uint8_t, kHeaderSize>;

// Any 44 bytes decode; fewer is an error (kInvalidInput). Extra bytes are ignored.
Result<Header> decode_header(std::span<const uint8_t> bytes);
WireHeader encode_header(const Header& h);

// "REQUEST", "RW", ... or "op?" for an unknown value.
const char* op_name(uint16_t op);

// What to do with a packet the guest put on the TX queue.
enum class Disposition {
  kAccept,  // hand it to the muxer
  kDrop,    // ignore it (log, rate-limited)
  kReset,   // ignore it and answer with an RST
};

struct Verdict {
  Disposition disposition;
  const char* reason;  // why it was not accepted ("" for kAccept)
};

// Checks a guest packet's header against what a well-behaved driver sends: src_cid is the
// guest's CID, the payload the chain carries covers `len`, dst_cid is the host, type STREAM,
// a known op. Pure; `payload_available` is the chain's readable bytes after the header.
Verdict check_guest_packet(const Header& h, uint64_t guest_cid, size_t payload_available);

// The RST the spec asks for in reply to `h` (a packet for no connection, or a refused REQUEST):
// addresses swapped, same type.
Header reset_reply(const Header& h);

}  // namespace pinata::vsock
