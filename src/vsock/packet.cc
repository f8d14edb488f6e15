#include "vsock/packet.h"

#include <string>

namespace pinata::vsock {

namespace {

template <typename T>
T load_le(const uint8_t* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); i++) v |= static_cast<T>(static_cast<T>(p[i]) << (8 * i));
  return v;
}

template <typename T>
void store_le(uint8_t* p, T v) {
  for (size_t i = 0; i < sizeof(T); i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

Result<Header> decode_header(std::span<const uint8_t> bytes) {
  if (bytes.size() < kHeaderSize) {
    return fail(ErrorKind::kInvalidInput, "vsock header needs " + std::to_string(kHeaderSize) +
                                              " bytes, got " + std::to_string(bytes.size()));
  }
  const uint8_t* p = bytes.data();
  Header h;
  h.src_cid = load_le<uint64_t>(p + 0);
  h.dst_cid = load_le<uint64_t>(p + 8);
  h.src_port = load_le<uint32_t>(p + 16);
  h.dst_port = load_le<uint32_t>(p + 20);
  h.len = load_le<uint32_t>(p + 24);
  h.type = load_le<uint16_t>(p + 28);
  h.op = load_le<uint16_t>(p + 30);
  h.flags = load_le<uint32_t>(p + 32);
  h.buf_alloc = load_le<uint32_t>(p + 36);
  h.fwd_cnt = load_le<uint32_t>(p + 40);
  return h;
}

WireHeader encode_header(const Header& h) {
  WireHeader w{};
  uint8_t* p = w.data();
  store_le(p + 0, h.src_cid);
  store_le(p + 8, h.dst_cid);
  store_le(p + 16, h.src_port);
  store_le(p + 20, h.dst_port);
  store_le(p + 24, h.len);
  store_le(p + 28, h.type);
  store_le(p + 30, h.op);
  store_le(p + 32, h.flags);
  store_le(p + 36, h.buf_alloc);
  store_le(p + 40, h.fwd_cnt);
  return w;
}

const char* op_name(uint16_t op) {
  switch (op) {
    case VIRTIO_VSOCK_OP_INVALID:
      return "INVALID";
    case VIRTIO_VSOCK_OP_REQUEST:
      return "REQUEST";
    case VIRTIO_VSOCK_OP_RESPONSE:
      return "RESPONSE";
    case VIRTIO_VSOCK_OP_RST:
      return "RST";
    case VIRTIO_VSOCK_OP_SHUTDOWN:
      return "SHUTDOWN";
    case VIRTIO_VSOCK_OP_RW:
      return "RW";
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
      return "CREDIT_UPDATE";
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
      return "CREDIT_REQUEST";
    default:
      return "op?";
  }
}

Verdict check_guest_packet(const Header& h, uint64_t guest_cid, size_t payload_available) {
  // Spoofed or garbled source: never answer (an RST would go to an address the guest does
  // not own).
  if (h.src_cid != guest_cid) return {Disposition::kDrop, "src_cid is not the guest's CID"};
  if (h.len > payload_available) return {Disposition::kDrop, "len is larger than the chain"};
  // Nothing answers an RST, whatever is wrong with it.
  if (h.op == VIRTIO_VSOCK_OP_RST) {
    if (h.type != VIRTIO_VSOCK_TYPE_STREAM || h.dst_cid != kHostCid) {
      return {Disposition::kDrop, "RST with a bad type or dst_cid"};
    }
    return {Disposition::kAccept, ""};
  }
  if (h.dst_cid != kHostCid) return {Disposition::kReset, "dst_cid is not the host"};
  if (h.type != VIRTIO_VSOCK_TYPE_STREAM) return {Disposition::kReset, "type is not STREAM"};
  if (h.op < VIRTIO_VSOCK_OP_REQUEST || h.op > VIRTIO_VSOCK_OP_CREDIT_REQUEST) {
    return {Disposition::kReset, "unknown op"};
  }
  return {Disposition::kAccept, ""};
}

Header reset_reply(const Header& h) {
  Header r;
  r.src_cid = h.dst_cid;
  r.dst_cid = h.src_cid;
  r.src_port = h.dst_port;
  r.dst_port = h.src_port;
  r.type = h.type;
  r.op = VIRTIO_VSOCK_OP_RST;
  return r;
}

}  // namespace pinata::vsock
