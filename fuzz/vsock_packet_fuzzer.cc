// Fuzzes the vsock header codec and the guest-packet checks (src/vsock/packet.h): any bytes
// decode (or are rejected as short) without crashing, decode(encode(h)) == h, and the verdict
// is consistent with the header.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "vsock/packet.h"

using namespace pinata::vsock;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  auto h = decode_header(bytes);
  if (size < kHeaderSize) {
    if (h) std::abort();
    return 0;
  }
  if (!h) std::abort();
  WireHeader wire = encode_header(*h);
  for (size_t i = 0; i < kHeaderSize; i++) {
    if (wire[i] != data[i]) std::abort();
  }
  auto again = decode_header(wire);
  if (!again || !(*again == *h)) std::abort();
  size_t payload = size - kHeaderSize;
  uint64_t cid = 3;
  Verdict v = check_guest_packet(*h, cid, payload);
  if (v.disposition == Disposition::kAccept) {
    if (h->src_cid != cid || h->len > payload || h->dst_cid != kHostCid) std::abort();
    if (h->type != VIRTIO_VSOCK_TYPE_STREAM) std::abort();
    if (h->op < VIRTIO_VSOCK_OP_REQUEST || h->op > VIRTIO_VSOCK_OP_CREDIT_REQUEST) std::abort();
  }
  if (v.disposition == Disposition::kReset) {
    if (h->op == VIRTIO_VSOCK_OP_RST) std::abort();  // never answer an RST
    Header r = reset_reply(*h);
    if (r.op != VIRTIO_VSOCK_OP_RST || r.dst_port != h->src_port) std::abort();
  }
  (void)op_name(h->op);
  return 0;
}
