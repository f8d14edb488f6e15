// Device tests: a FakeGuest plays the virtio-net driver on the RX and TX queues (MockDriver
// rings in memfd guest memory). The first tests use a FakeNetwork that records frames; the
// last ones put a real libslirp (SlirpStack on an EventLoop) behind the device: DHCP, a TCP
// connection to a listener on the host's 127.0.0.1, a reset. No privileges, no QEMU.
#include "net/device.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "net/frame.h"
#include "net/slirp_stack.h"
#include "vhost/message.h"
#include "vhost/mock_driver.h"

namespace pinata::net {
namespace {

using vhost::bit;
using vhost::testing::Buf;
using vhost::testing::MemfdMemory;
using vhost::testing::MockDriver;

constexpr uint64_t kGpa = 0x40000000;
constexpr uint64_t kMemSize = 256 << 20;
constexpr uint64_t kVa = 0x7f5600000000;
constexpr uint16_t kQueueSize = 256;

constexpr uint64_t kAllFeatures =
    bit(vhost::VIRTIO_F_VERSION_1) | bit(vhost::VIRTIO_RING_F_EVENT_IDX) |
    bit(VIRTIO_NET_F_MRG_RXBUF) | bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM) |
    bit(VIRTIO_NET_F_MTU);

using Bytes = std::vector<uint8_t>;

class FakeNetwork : public Network {
 public:
  void input(std::span<const uint8_t> frame) override { frames.emplace_back(frame.begin(), frame.end()); }
  void reset() override { resets++; }
  std::vector<Bytes> frames;
  int resets = 0;
};

struct RxFrame {
  NetHeader header;
  Bytes frame;
  size_t buffers = 0;
};

class FakeGuest {
 public:
  FakeGuest(const MemfdMemory& mem, Device& device)
      : mem_(mem),
        device_(device),
        rx_driver_(mem.memory, mem.region, kQueueSize, kGpa, kGpa + (1 << 20)),
        tx_driver_(mem.memory, mem.region, kQueueSize, kGpa + 0x10000, kGpa + (128 << 20)) {
    rx_driver_.configure(rx_);
    tx_driver_.configure(tx_);
    rx_.set_event_idx(true);
    tx_.set_event_idx(true);
    EXPECT_TRUE(rx_.activate(mem.memory));
    EXPECT_TRUE(tx_.activate(mem.memory));
    device_.queue_ready(kRxQueue, rx_, -1);
    device_.queue_ready(kTxQueue, tx_, -1);
  }

  // Posts `count` RX buffers of `size` bytes each (one descriptor per chain) and kicks.
  void post_rx(size_t count, uint32_t size, bool kick = true) {
    for (size_t i = 0; i < count; i++) {
      uint64_t gpa = rx_driver_.alloc(size);
      uint16_t head = rx_driver_.add_chain({Buf{gpa, size, true}});
      rx_bufs_[head] = gpa;
    }
    if (kick) device_.handle_kick(kRxQueue, rx_);
  }

  // Sends one frame behind `h` on TX, split into descriptors of at most `piece` bytes.
  void send(const NetHeader& h, const Bytes& frame, size_t piece = 4096) {
    Bytes bytes(device_.header_size());
    encode_net_header(h, bytes);
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    send_raw(bytes, piece);
  }
  void send_raw(const Bytes& bytes, size_t piece = 4096) {
    uint64_t gpa = tx_driver_.put(bytes);
    std::vector<Buf> bufs;
    for (size_t off = 0; off < bytes.size(); off += piece) {
      bufs.push_back({gpa + off, static_cast<uint32_t>(std::min(piece, bytes.size() - off)), false});
    }
    if (bufs.empty()) bufs.push_back({gpa, 0, false});
    tx_driver_.add_chain(bufs);
    device_.handle_kick(kTxQueue, tx_);
  }
  uint16_t tx_used() const { return tx_driver_.used_idx(); }

  // Reassembles the frames the device returned on RX since the last call.
  std::vector<RxFrame> received() {
    std::vector<RxFrame> out;
    const uint16_t end = rx_driver_.used_idx();
    while (rx_seen_ != end) {
      auto first = rx_driver_.used_elem(rx_seen_++ % kQueueSize);
      Bytes hb = rx_driver_.get(rx_bufs_.at(static_cast<uint16_t>(first.id)), first.len);
      EXPECT_GE(hb.size(), device_.header_size());
      if (hb.size() < device_.header_size()) continue;
      RxFrame f;
      f.header = decode_net_header({hb.data(), device_.header_size()});
      f.frame.assign(hb.begin() + static_cast<std::ptrdiff_t>(device_.header_size()), hb.end());
      f.buffers = 1;
      const size_t n = device_.header_size() == kNetHdrSize ? f.header.num_buffers : 1;
      for (size_t i = 1; i < n; i++) {
        EXPECT_NE(rx_seen_, end) << "frame announced " << n << " buffers";
        if (rx_seen_ == end) break;
        auto e = rx_driver_.used_elem(rx_seen_++ % kQueueSize);
        Bytes more = rx_driver_.get(rx_bufs_.at(static_cast<uint16_t>(e.id)), e.len);
        f.frame.insert(f.frame.end(), more.begin(), more.end());
        f.buffers++;
      }
      out.push_back(std::move(f));
    }
    return out;
  }

  vhost::Virtqueue& rx() { return rx_; }
  vhost::Virtqueue& tx() { return tx_; }

 private:
  const MemfdMemory& mem_;
  Device& device_;
  MockDriver rx_driver_, tx_driver_;
  vhost::Virtqueue rx_{kRxQueue}, tx_{kTxQueue};
  std::map<uint16_t, uint64_t> rx_bufs_;  // head -> buffer gpa (heads are reused round robin)
  uint16_t rx_seen_ = 0;
};

Bytes pattern(size_t n, uint32_t seed) {
  Bytes v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1103515245u + 12345u;
    b = static_cast<uint8_t>(x >> 16);
  }
  return v;
}

// ---- frame building (what a guest kernel would send)

constexpr uint8_t kGuestMac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr uint32_t kGuestIp = 0xc0a84102;
constexpr uint32_t kHostIp = 0xc0a84101;

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
void put32(Bytes& b, size_t at, uint32_t v) {
  put16(b, at, static_cast<uint16_t>(v >> 16));
  put16(b, at + 2, static_cast<uint16_t>(v));
}
uint16_t get16(const Bytes& b, size_t at) { return static_cast<uint16_t>(b[at] << 8 | b[at + 1]); }
uint32_t get32(const Bytes& b, size_t at) { return uint32_t{get16(b, at)} << 16 | get16(b, at + 2); }

// Ethernet + IPv4 header (checksummed) for `payload_len` bytes of protocol `proto`.
Bytes ipv4_frame(const uint8_t dst_mac[6], uint32_t src, uint32_t dst, uint8_t proto,
                 size_t payload_len) {
  Bytes f(kEthHeader + 20 + payload_len, 0);
  std::copy(dst_mac, dst_mac + 6, f.begin());
  std::copy(kGuestMac, kGuestMac + 6, f.begin() + 6);
  put16(f, 12, 0x0800);
  f[14] = 0x45;
  put16(f, 16, static_cast<uint16_t>(20 + payload_len));
  f[22] = 64;
  f[23] = proto;
  put32(f, 26, src);
  put32(f, 30, dst);
  put16(f, 24, static_cast<uint16_t>(~checksum_fold(checksum_add({f.data() + 14, 20}))));
  return f;
}

// The pseudo-header sum (folded, not inverted) that Linux leaves in the checksum field of a
// CHECKSUM_PARTIAL packet.
uint16_t pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, size_t len) {
  uint32_t s = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto +
               static_cast<uint32_t>(len);
  return checksum_fold(s);
}

// A UDP datagram from the guest, with a complete checksum, or a partial one (the pseudo-header
// sum in the field) and the header asking the device to finish it.
Bytes udp_frame(uint16_t sport, uint16_t dport, const Bytes& payload, bool partial,
                NetHeader& h, const uint8_t dst_mac[6] = nullptr) {
  static const uint8_t kBroadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  Bytes f = ipv4_frame(dst_mac ? dst_mac : kBroadcast, kGuestIp, kHostIp, 17, 8 + payload.size());
  put16(f, 34, sport);
  put16(f, 36, dport);
  put16(f, 38, static_cast<uint16_t>(8 + payload.size()));
  std::copy(payload.begin(), payload.end(), f.begin() + 42);
  uint16_t ps = pseudo_sum(kGuestIp, kHostIp, 17, 8 + payload.size());
  h = NetHeader{};
  if (partial) {
    put16(f, 40, ps);
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.csum_start = 34;
    h.csum_offset = 6;
  } else {
    uint16_t c = static_cast<uint16_t>(~checksum_fold(checksum_add({f.data() + 34, f.size() - 34}, ps)));
    put16(f, 40, c == 0 ? 0xffff : c);
  }
  return f;
}

class NetDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = MemfdMemory::create(kGpa, kMemSize, kVa);
    ASSERT_TRUE(m);
    mem_ = std::make_unique<MemfdMemory>(std::move(*m));
    device_ = std::make_unique<Device>(DeviceOptions{1500});
    device_->set_features(kAllFeatures);
    device_->set_network(&network_);
    guest_ = std::make_unique<FakeGuest>(*mem_, *device_);
  }

  FakeNetwork network_;
  std::unique_ptr<MemfdMemory> mem_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<FakeGuest> guest_;
};

TEST_F(NetDeviceTest, OffersNetFeaturesWithoutSegmentationOffloads) {
  uint64_t f = device_->features();
  EXPECT_TRUE(f & bit(VIRTIO_NET_F_MRG_RXBUF));
  EXPECT_TRUE(f & bit(VIRTIO_NET_F_CSUM));
  EXPECT_TRUE(f & bit(VIRTIO_NET_F_GUEST_CSUM));
  EXPECT_TRUE(f & bit(VIRTIO_NET_F_MTU));
  EXPECT_TRUE(f & bit(vhost::VIRTIO_F_VERSION_1));
  EXPECT_TRUE(f & bit(vhost::VIRTIO_RING_F_EVENT_IDX));
  EXPECT_FALSE(f & bit(VIRTIO_NET_F_HOST_TSO4));
  EXPECT_FALSE(f & bit(VIRTIO_NET_F_GUEST_TSO4));
  EXPECT_EQ(device_->protocol_features(), 0u);  // no config space: the frontend has it
  EXPECT_EQ(device_->num_queues(), 2u);
}

TEST_F(NetDeviceTest, TxFrameReachesTheNetwork) {
  Bytes frame = pattern(60, 1);
  guest_->send(NetHeader{}, frame, 7);  // scattered over 7-byte descriptors, header included
  ASSERT_EQ(network_.frames.size(), 1u);
  EXPECT_EQ(network_.frames[0], frame);
  EXPECT_EQ(guest_->tx_used(), 1);
  EXPECT_EQ(device_->stats().tx_frames, 1u);
}

TEST_F(NetDeviceTest, InterceptSeesFramesFirstAndMayConsumeThem) {
  std::vector<Bytes> seen;
  device_->set_intercept([&](std::span<const uint8_t> f) {
    seen.emplace_back(f.begin(), f.end());
    return f[0] == 0xaa;  // "a DNS query"
  });
  Bytes mine = pattern(80, 2), other = pattern(80, 3);
  mine[0] = 0xaa;
  other[0] = 0xbb;
  guest_->send(NetHeader{}, mine);
  guest_->send(NetHeader{}, other);
  ASSERT_EQ(seen.size(), 2u);
  ASSERT_EQ(network_.frames.size(), 1u);
  EXPECT_EQ(network_.frames[0], other);
  EXPECT_EQ(device_->stats().tx_intercepted, 1u);
}

TEST_F(NetDeviceTest, CompletesPartialChecksumBeforeTheNetworkSeesTheFrame) {
  NetHeader full_h, partial_h;
  Bytes payload = pattern(1001, 4);  // odd length
  Bytes complete = udp_frame(1234, 5678, payload, false, full_h);
  Bytes partial = udp_frame(1234, 5678, payload, true, partial_h);
  ASSERT_NE(complete, partial);
  guest_->send(partial_h, partial);
  ASSERT_EQ(network_.frames.size(), 1u);
  EXPECT_EQ(network_.frames[0], complete);
  EXPECT_EQ(device_->stats().tx_csum_completed, 1u);
  // And the receiver's check passes: the sum over pseudo header + datagram is 0xffff.
  const Bytes& f = network_.frames[0];
  EXPECT_EQ(checksum_fold(checksum_add({f.data() + 34, f.size() - 34},
                                       pseudo_sum(kGuestIp, kHostIp, 17, f.size() - 34))),
            0xffff);
}

TEST_F(NetDeviceTest, DropsMalformedTxChainsAndKeepsGoing) {
  NetHeader h;
  guest_->send_raw(Bytes(5, 0));                        // shorter than the header
  guest_->send(NetHeader{}, pattern(8, 5));             // shorter than Ethernet
  guest_->send(NetHeader{}, pattern(1500 + 19, 6));     // MTU 1500 + 18 allowed
  h.gso_type = 1;                                       // TCPv4 GSO, never offered
  guest_->send(h, pattern(100, 7));
  h = NetHeader{};
  h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.csum_start = 90;                                     // field beyond the frame end
  h.csum_offset = 16;
  guest_->send(h, pattern(100, 8));
  h.csum_start = 0xffff;
  h.csum_offset = 0xffff;
  guest_->send(h, pattern(100, 9));
  h.csum_start = 4;                                      // inside the Ethernet header
  h.csum_offset = 0;
  guest_->send(h, pattern(100, 10));
  EXPECT_TRUE(network_.frames.empty());
  EXPECT_EQ(device_->stats().tx_dropped, 7u);
  EXPECT_EQ(guest_->tx_used(), 7);  // every chain returned
  // The queue still works.
  guest_->send(NetHeader{}, pattern(1500 + 18, 11));
  EXPECT_EQ(network_.frames.size(), 1u);
  EXPECT_FALSE(guest_->tx().broken());
}

TEST_F(NetDeviceTest, MergeableRxSpreadsALargeFrameOverSmallBuffers) {
  guest_->post_rx(10, 1024);
  Bytes frame = pattern(4000, 12);
  device_->send_to_guest(frame);
  auto got = guest_->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.num_buffers, 4);  // 12 + 4000 bytes in 1024-byte buffers
  EXPECT_EQ(got[0].buffers, 4u);
  EXPECT_EQ(got[0].header.flags, VIRTIO_NET_HDR_F_DATA_VALID);
  EXPECT_EQ(got[0].header.gso_type, VIRTIO_NET_HDR_GSO_NONE);
  EXPECT_EQ(got[0].frame, frame);
  // The next frame starts in the next buffer.
  Bytes small = pattern(100, 13);
  device_->send_to_guest(small);
  got = guest_->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.num_buffers, 1);
  EXPECT_EQ(got[0].frame, small);
}

TEST_F(NetDeviceTest, FrameWaitsForEnoughBuffersThenArrivesWhole) {
  guest_->post_rx(2, 1024);
  Bytes frame = pattern(3000, 14);
  device_->send_to_guest(frame);
  EXPECT_TRUE(guest_->received().empty());
  EXPECT_EQ(device_->pending_frames(), 1u);
  guest_->post_rx(2, 1024);  // kick: 4 buffers now
  auto got = guest_->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.num_buffers, 3);
  EXPECT_EQ(got[0].frame, frame);
  EXPECT_EQ(device_->pending_frames(), 0u);
}

TEST_F(NetDeviceTest, RxQueueIsBoundedWithoutBuffers) {
  for (size_t i = 0; i < kMaxPendingFrames + 100; i++) device_->send_to_guest(pattern(60, 20));
  EXPECT_EQ(device_->pending_frames(), kMaxPendingFrames);
  EXPECT_EQ(device_->stats().rx_dropped, 100u);
  device_->reset();  // the frontend left: queued frames are gone
  EXPECT_EQ(device_->pending_frames(), 0u);
  EXPECT_EQ(network_.resets, 1);
}

TEST_F(NetDeviceTest, RxQueueIsBoundedInBytes) {
  Bytes big = pattern(65000, 21);
  for (int i = 0; i < 100; i++) device_->send_to_guest(big);
  EXPECT_LE(device_->pending_bytes(), kMaxPendingBytes);
  EXPECT_EQ(device_->pending_frames(), kMaxPendingBytes / big.size());
  // Buffers arrive: the queued frames go out in order, each whole.
  guest_->post_rx(250, 4096);
  auto got = guest_->received();
  ASSERT_FALSE(got.empty());
  for (auto& f : got) EXPECT_EQ(f.frame, big);
}

TEST_F(NetDeviceTest, WithoutMergeableBuffersAFrameMustFitOneBuffer) {
  device_->set_features(bit(vhost::VIRTIO_F_VERSION_1));
  EXPECT_EQ(device_->header_size(), kNetHdrSize);
  guest_->post_rx(2, 1024);
  device_->send_to_guest(pattern(2000, 22));  // too big: dropped, buffer kept
  Bytes ok = pattern(1000, 23);
  device_->send_to_guest(ok);
  auto got = guest_->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].frame, ok);
  EXPECT_EQ(got[0].header.num_buffers, 1);
  EXPECT_EQ(got[0].header.flags, 0);  // GUEST_CSUM not negotiated
  EXPECT_EQ(device_->stats().rx_dropped, 1u);
}

TEST_F(NetDeviceTest, LegacyHeaderIsTenBytes) {
  device_->set_features(bit(VIRTIO_NET_F_CSUM));
  EXPECT_EQ(device_->header_size(), kNetHdrLegacySize);
  Bytes frame = pattern(64, 24);
  guest_->send(NetHeader{}, frame);
  ASSERT_EQ(network_.frames.size(), 1u);
  EXPECT_EQ(network_.frames[0], frame);
}

TEST_F(NetDeviceTest, TooSmallRxBufferIsReturnedEmpty) {
  guest_->post_rx(1, 8);  // smaller than the header
  guest_->post_rx(1, 2048);
  Bytes frame = pattern(100, 25);
  device_->send_to_guest(frame);
  // The tiny buffer comes back with length 0 (the driver drops and re-posts it), then the frame.
  auto got_used = guest_->rx().next_used();
  EXPECT_EQ(got_used, 2);
}

TEST_F(NetDeviceTest, HeldBuffersAreReturnedWhenTheQueueStops) {
  guest_->post_rx(1, 1024);
  device_->send_to_guest(pattern(3000, 26));  // needs 3: one held, frame queued
  EXPECT_EQ(device_->pending_frames(), 1u);
  device_->queue_stopped(kRxQueue, guest_->rx());
  EXPECT_EQ(guest_->rx().next_used(), 1);
}

// ---- with libslirp

class NetSlirpTest : public NetDeviceTest {
 protected:
  void SetUp() override {
    NetDeviceTest::SetUp();
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop);
    loop_ = std::move(*loop);
    auto stack = SlirpStack::create(*loop_, SlirpOptions{},
                                    [this](std::span<const uint8_t> f) { device_->send_to_guest(f); });
    ASSERT_TRUE(stack) << stack.error().message();
    stack_ = std::move(*stack);
    device_->set_network(stack_.get());
    guest_->post_rx(200, 2048);
  }
  void TearDown() override {
    device_->set_network(nullptr);
    stack_.reset();
  }

  // Runs the loop until `done` or 3 s.
  template <typename Pred>
  bool run_until(Pred done) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (!done()) {
      if (std::chrono::steady_clock::now() > end) return false;
      (void)loop_->run_once(20);
    }
    return true;
  }

  Bytes dhcp_discover() {
    NetHeader h;
    Bytes bootp(240 + 4, 0);
    bootp[0] = 1;  // BOOTREQUEST
    bootp[1] = 1;  // Ethernet
    bootp[2] = 6;
    put32(bootp, 4, 0x12345678);  // xid
    std::copy(kGuestMac, kGuestMac + 6, bootp.begin() + 28);
    put32(bootp, 236, 0x63825363);  // magic cookie
    bootp[240] = 53;                // DHCP message type
    bootp[241] = 1;
    bootp[242] = 1;                 // DISCOVER
    bootp[243] = 255;
    Bytes f = udp_frame(68, 67, bootp, false, h);
    put32(f, 26, 0);            // from 0.0.0.0
    put32(f, 30, 0xffffffff);   // to 255.255.255.255
    put16(f, 24, 0);
    put16(f, 24, static_cast<uint16_t>(~checksum_fold(checksum_add({f.data() + 14, 20}))));
    put16(f, 40, 0);  // no UDP checksum (allowed for IPv4)
    return f;
  }

  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<SlirpStack> stack_;
};

TEST_F(NetSlirpTest, IdleStackWatchesNothingAndArmsNoTimer) {
  EXPECT_EQ(stack_->watched_fds(), 0u);
  EXPECT_FALSE(stack_->timer_armed());
}

TEST_F(NetSlirpTest, DhcpDiscoverGetsAnOfferOfTheGuestAddress) {
  guest_->send(NetHeader{}, dhcp_discover());
  auto got = guest_->received();
  ASSERT_EQ(got.size(), 1u);
  const Bytes& f = got[0].frame;
  ASSERT_GE(f.size(), 42u + 240u);
  EXPECT_EQ(get16(f, 12), 0x0800);
  EXPECT_EQ(f[23], 17);                    // UDP
  EXPECT_EQ(get16(f, 34), 67);             // from the DHCP server
  EXPECT_EQ(get16(f, 36), 68);
  EXPECT_EQ(get32(f, 42 + 4), 0x12345678u);  // xid
  EXPECT_EQ(get32(f, 42 + 16), kGuestIp);    // yiaddr 192.168.65.2
  EXPECT_EQ(get32(f, 26), kHostIp);          // server 192.168.65.1
  EXPECT_EQ(got[0].header.flags, VIRTIO_NET_HDR_F_DATA_VALID);
}

TEST_F(NetSlirpTest, TcpConnectToTheHostIpReachesHostLoopback) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  UniqueFd listener(lfd);
  struct sockaddr_in sa {};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  socklen_t sl = sizeof sa;
  ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &sl), 0);
  const uint16_t port = ntohs(sa.sin_port);

  // Gratuitous ARP: libslirp learns the guest's MAC (a DHCP exchange would do it too).
  Bytes arp(42, 0);
  std::fill(arp.begin(), arp.begin() + 6, 0xff);
  std::copy(kGuestMac, kGuestMac + 6, arp.begin() + 6);
  put16(arp, 12, 0x0806);
  put16(arp, 14, 1);
  put16(arp, 16, 0x0800);
  arp[18] = 6;
  arp[19] = 4;
  put16(arp, 20, 1);
  std::copy(kGuestMac, kGuestMac + 6, arp.begin() + 22);
  put32(arp, 28, kGuestIp);
  put32(arp, 38, kGuestIp);
  guest_->send(NetHeader{}, arp);

  // SYN 192.168.65.2:40000 -> 192.168.65.1:port with a partial checksum, as Linux sends it.
  static const uint8_t kGatewayMac[6] = {0x52, 0x55, 0xc0, 0xa8, 0x41, 0x01};
  Bytes f = ipv4_frame(kGatewayMac, kGuestIp, kHostIp, 6, 20);
  put16(f, 34, 40000);
  put16(f, 36, port);
  put32(f, 38, 1000);  // seq
  f[46] = 5 << 4;      // data offset
  f[47] = 0x02;        // SYN
  put16(f, 48, 65535);
  put16(f, 50, pseudo_sum(kGuestIp, kHostIp, 6, 20));
  NetHeader h;
  h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.csum_start = 34;
  h.csum_offset = 16;
  guest_->send(h, f);

  std::vector<RxFrame> got;
  bool synack = run_until([&] {
    for (auto& r : guest_->received()) got.push_back(std::move(r));
    for (auto& r : got) {
      const Bytes& b = r.frame;
      if (b.size() >= 54 && get16(b, 12) == 0x0800 && b[23] == 6 && get16(b, 34) == port &&
          get16(b, 36) == 40000 && (b[47] & 0x12) == 0x12) {
        EXPECT_EQ(get32(b, 42), 1001u);  // acks our SYN
        return true;
      }
    }
    return false;
  });
  EXPECT_TRUE(synack) << got.size() << " frames, none a SYN-ACK";
  int conn = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  EXPECT_GE(conn, 0) << "libslirp did not connect to 127.0.0.1:" << port;
  if (conn >= 0) ::close(conn);
  // A live connection: libslirp's TCP timers are running.
  EXPECT_TRUE(stack_->timer_armed());
}

TEST_F(NetSlirpTest, ResetStartsAFreshStackThatStillServesDhcp) {
  guest_->send(NetHeader{}, dhcp_discover());
  ASSERT_EQ(guest_->received().size(), 1u);
  stack_->reset();
  guest_->send(NetHeader{}, dhcp_discover());
  auto got = guest_->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(get32(got[0].frame, 42 + 16), kGuestIp);
}

TEST(SlirpOptionsTest, ParsesAndValidatesAddresses) {
  uint32_t net = 0, mask = 0;
  ASSERT_TRUE(parse_ipv4_prefix("192.168.65.0/24", net, mask));
  EXPECT_EQ(net, 0xc0a84100u);
  EXPECT_EQ(mask, 0xffffff00u);
  EXPECT_FALSE(parse_ipv4_prefix("192.168.65.1/24", net, mask));  // host bits
  EXPECT_FALSE(parse_ipv4_prefix("192.168.65.0", net, mask));
  EXPECT_FALSE(parse_ipv4_prefix("192.168.65.0/33", net, mask));
  EXPECT_FALSE(parse_ipv4("192.168.65"));
  SlirpOptions o;
  EXPECT_TRUE(validate(o));
  o.dns_ip = o.host_ip;
  EXPECT_FALSE(validate(o));  // libslirp would send host traffic to the host's DNS server
  o = SlirpOptions{};
  o.dhcp_start = 0xc0a84200;
  EXPECT_FALSE(validate(o));  // outside the network
  o = SlirpOptions{};
  o.mtu = 65521;
  EXPECT_FALSE(validate(o));
  o.mtu = 65520;
  EXPECT_TRUE(validate(o));
}

}  // namespace
}  // namespace pinata::net
