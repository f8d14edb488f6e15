// Fuzzes the vhost-user-net device (src/net/device.h, frame.h) on the bytes a guest controls:
// arbitrary bytes become one TX chain (virtio_net_hdr + frame) that the device checks,
// checksum-completes and hands to a recording Network; whatever reaches the network is then
// sent back to the guest through RX buffers of fuzzed size and count. Oracles: ASan/UBSan
// (nothing outside the exactly-sized guest buffer), the TX chain always comes back, a frame
// reaching the network is within [14, MTU + 18] bytes, differs from the guest's bytes only in
// the checksum field, and (NEEDS_CSUM) its checksum verifies; an RX frame arrives whole
// (num_buffers buffers, bytes equal) or not at all, and used lengths stay within the buffers.
//
// Input layout:
//   0    u8  flags: bit 0 legacy (neither VERSION_1 nor MRG_RXBUF: 10-byte header);
//            bit 1 no MRG_RXBUF; bit 2 indirect TX chain; bit 3 no GUEST_CSUM
//   1    u8  TX descriptors: 1 + v % 8 (the bytes split evenly)
//   2    u16 MTU: 68 + v % 65453 (LE)
//   4    u16 RX buffer size: 1 + v % 8192 (LE)
//   6    u8  RX buffers: v % 24
//   7    reserved
//   8..  the TX chain's bytes (at most 72 KiB used)
#include <fcntl.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/log.h"
#include "net/device.h"
#include "net/frame.h"
#include "vhost/guest_memory.h"
#include "vhost/message.h"
#include "vhost/mock_driver.h"
#include "vhost/virtqueue.h"

using namespace pinata;

namespace {

constexpr uint64_t kGpa = 0;
constexpr uint64_t kVa = 0x7f0000000000;
constexpr size_t kMaxTx = 72 << 10;
constexpr size_t kMaxRxBuf = 8192;
constexpr size_t kMaxRxBufs = 24;
constexpr uint64_t kTxGpa = 0x10000;  // rings below
constexpr uint64_t kRxGpa = kTxGpa + kMaxTx;
constexpr size_t kMemBytes = kRxGpa + kMaxRxBuf * kMaxRxBufs;
constexpr size_t kParams = 8;

[[noreturn]] void oracle(const char* what) {
  std::fprintf(stderr, "net_frame_fuzzer: %s\n", what);
  std::abort();
}

class Recorder : public net::Network {
 public:
  void input(std::span<const uint8_t> frame) override { frames.emplace_back(frame.begin(), frame.end()); }
  std::vector<std::vector<uint8_t>> frames;
};

void split(uint64_t gpa, size_t len, unsigned pieces, bool writable,
           std::vector<vhost::testing::Buf>& out) {
  size_t per = (len + pieces - 1) / pieces;
  for (size_t off = 0; off < len; off += per) {
    out.push_back({gpa + off, static_cast<uint32_t>(std::min(per, len - off)), writable});
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    log::init("net_frame_fuzzer", log::Level::kError);
    static int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    log::set_fd(devnull);
    return true;
  }();
  (void)quiet;
  if (size < kParams) return 0;
  const uint8_t flags = data[0];
  const unsigned tx_descs = 1 + data[1] % 8;
  const uint32_t mtu = 68 + (data[2] | uint32_t{data[3]} << 8) % (net::kMaxMtu - 68 + 1);
  const size_t rx_buf = 1 + (data[4] | size_t{data[5]} << 8) % kMaxRxBuf;
  const size_t rx_bufs = data[6] % kMaxRxBufs;
  const size_t tx_len = std::min(size - kParams, kMaxTx);
  const uint8_t* tx = data + kParams;

  static std::vector<uint8_t> ram(kMemBytes);
  std::memset(ram.data(), 0, ram.size());
  vhost::GuestMemory::BufferRegion region{kGpa, kVa, ram.data(), ram.size()};
  auto memory = vhost::GuestMemory::from_buffers({&region, 1});
  if (!memory) oracle("guest memory");
  vhost::MemoryRegionDesc desc{kGpa, kMemBytes, kVa, 0};
  vhost::testing::MockDriver rx_driver(*memory, desc, 32, 0x0, 0xe000);
  vhost::testing::MockDriver tx_driver(*memory, desc, 16, 0x8000, 0xc000);  // indirect tables at 0xc000

  uint64_t features = vhost::bit(vhost::VIRTIO_F_VERSION_1) |
                      vhost::bit(vhost::VIRTIO_RING_F_EVENT_IDX) |
                      vhost::bit(net::VIRTIO_NET_F_MRG_RXBUF) | vhost::bit(net::VIRTIO_NET_F_CSUM) |
                      vhost::bit(net::VIRTIO_NET_F_GUEST_CSUM);
  if (flags & 1) features &= ~(vhost::bit(vhost::VIRTIO_F_VERSION_1) | vhost::bit(net::VIRTIO_NET_F_MRG_RXBUF));
  if (flags & 2) features &= ~vhost::bit(net::VIRTIO_NET_F_MRG_RXBUF);
  if (flags & 8) features &= ~vhost::bit(net::VIRTIO_NET_F_GUEST_CSUM);
  net::Device device(net::DeviceOptions{mtu});
  device.set_features(features);
  Recorder network;
  device.set_network(&network);

  vhost::Virtqueue rxq(net::kRxQueue), txq(net::kTxQueue);
  rx_driver.configure(rxq);
  tx_driver.configure(txq);
  rxq.set_event_idx(true);
  txq.set_event_idx(true);
  if (!rxq.activate(*memory) || !txq.activate(*memory)) oracle("queue activation");
  device.queue_ready(net::kRxQueue, rxq, -1);
  device.queue_ready(net::kTxQueue, txq, -1);

  // TX
  std::memcpy(ram.data() + kTxGpa, tx, tx_len);
  std::vector<vhost::testing::Buf> bufs;
  split(kTxGpa, tx_len, tx_descs, false, bufs);
  if (bufs.empty()) bufs.push_back({kTxGpa, 0, false});
  if (flags & 4) {
    tx_driver.add_indirect_chain({}, bufs);
  } else {
    tx_driver.add_chain(bufs);
  }
  device.handle_kick(net::kTxQueue, txq);
  if (tx_driver.used_idx() != 1) oracle("TX chain not returned");
  if (tx_driver.used_elem(0).len != 0) oracle("TX used length not 0");

  const size_t hdr = device.header_size();
  if (network.frames.size() > 1) oracle("one chain became several frames");
  if (network.frames.size() == 1) {
    const auto& f = network.frames[0];
    if (tx_len < hdr || f.size() != tx_len - hdr) oracle("frame length differs from the chain's");
    if (f.size() < net::kEthHeader || f.size() > net::max_frame_for_mtu(mtu)) {
      oracle("frame of a size that should have been dropped");
    }
    net::NetHeader h = net::decode_net_header({tx, hdr});
    const uint8_t* in = tx + hdr;
    size_t field = SIZE_MAX;
    if (h.flags & net::VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      field = size_t{h.csum_start} + h.csum_offset;
      // What the receiver checks: the segment with the completed field plus what the guest
      // left in the field (the pseudo-header sum) must fold to 0xffff. (An odd csum_offset
      // is nonsense from the guest; the device still stores ~sum there, big-endian.)
      if (h.csum_offset % 2 == 0) {
        uint32_t old = uint32_t{in[field]} << 8 | in[field + 1];
        uint32_t sum = net::checksum_add({f.data() + h.csum_start, f.size() - h.csum_start}, old);
        if (net::checksum_fold(sum) != 0xffff) oracle("completed checksum does not verify");
      }
    }
    for (size_t i = 0; i < f.size(); i++) {
      if (i == field || i == field + 1) continue;
      if (f[i] != in[i]) oracle("frame bytes changed outside the checksum field");
    }
  }

  // RX: the same frame back to the guest.
  const uint64_t rx_base = kRxGpa;
  for (size_t i = 0; i < rx_bufs; i++) {
    rx_driver.add_chain({{rx_base + i * rx_buf, static_cast<uint32_t>(rx_buf), true}});
  }
  device.handle_kick(net::kRxQueue, rxq);
  if (!network.frames.empty()) {
    const auto& f = network.frames[0];
    device.send_to_guest(f);
    const uint16_t used = rx_driver.used_idx();
    std::vector<uint8_t> got;
    size_t expect = 0, taken = 0;
    for (uint16_t i = 0; i < used; i++) {
      auto e = rx_driver.used_elem(i);
      if (e.id >= rx_bufs || e.len > rx_buf) oracle("RX used element out of range");
      const uint8_t* b = ram.data() + rx_base + e.id * rx_buf;
      if (expect == 0) {
        if (e.len < hdr) continue;  // a buffer too small for the header, returned empty
        net::NetHeader h = net::decode_net_header({b, hdr});
        expect = hdr == net::kNetHdrSize ? h.num_buffers : 1;
        if (expect == 0) oracle("num_buffers 0");
        got.insert(got.end(), b + hdr, b + e.len);
      } else {
        got.insert(got.end(), b, b + e.len);
      }
      if (++taken == expect) break;
    }
    if (taken != expect) oracle("RX frame announced more buffers than were used");
    if (expect != 0 && got != f) oracle("RX frame differs from what was sent");
    if (expect == 0 && device.pending_frames() == 0 && device.stats().rx_dropped == 0) {
      oracle("RX frame neither delivered, queued nor dropped");
    }
  }
  device.reset();
  return 0;
}
