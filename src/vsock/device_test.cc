// Device tests: a FakeGuest plays the virtio-vsock driver on the RX and TX queues (MockDriver
// rings in memfd guest memory) while the test plays the host side with real unix sockets in
// a temporary socket directory. Everything runs on the test thread: the event loop is pumped
// explicitly.
#include "vsock/device.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/io.h"
#include "vhost/mock_driver.h"

namespace pinata::vsock {
namespace {

using vhost::testing::MemfdMemory;
using vhost::testing::MockDriver;

constexpr uint64_t kGpa = 0x40000000;
constexpr uint64_t kMemSize = 32 << 20;
constexpr uint64_t kVa = 0x7f1200000000;
constexpr uint16_t kQueueSize = 256;
constexpr uint64_t kCid = 3;
constexpr uint32_t kRxBuf = 4096;  // payload bytes per RX buffer, as Linux uses
constexpr uint32_t kTxMax = 64 * 1024;

struct Packet {
  Header h;
  std::string data;
};

class FakeGuest {
 public:
  FakeGuest(const MemfdMemory& mem, Device& device)
      : device_(device),
        rx_driver_(mem.memory, mem.region, kQueueSize, kGpa, kGpa + 0x100000),
        tx_driver_(mem.memory, mem.region, kQueueSize, kGpa + 0x10000, kGpa + 0x400000) {
    for (uint16_t i = 0; i < kQueueSize; i++) {
      rx_buf_[i] = rx_driver_.alloc(kHeaderSize + kRxBuf);
      tx_buf_[i] = tx_driver_.alloc(kHeaderSize + kTxMax);
    }
    rx_driver_.configure(rxq_);
    tx_driver_.configure(txq_);
    EXPECT_TRUE(rxq_.activate(mem.memory));
    EXPECT_TRUE(txq_.activate(mem.memory));
    device_.queue_ready(kRxQueue, rxq_, -1);
    device_.queue_ready(kTxQueue, txq_, -1);
  }

  // Makes `n` RX buffers available (without kicking).
  void post_rx(int n = kQueueSize) {
    for (int i = 0; i < n && rx_posted_ < kQueueSize; i++, rx_posted_++) {
      uint16_t d = rx_driver_.next_desc();
      rx_driver_.write_desc(d, {rx_buf_[d], kHeaderSize + kRxBuf, vhost::VIRTQ_DESC_F_WRITE, 0});
      rx_driver_.push_avail(d);
    }
  }
  void kick_rx() { device_.handle_kick(kRxQueue, rxq_); }

  // Puts raw bytes on the TX queue as one chain and kicks.
  void send_raw(const std::vector<uint8_t>& bytes) {
    uint16_t d = tx_driver_.next_desc();
    EXPECT_TRUE(rx_mem().write(tx_buf_[d], bytes.data(), bytes.size()));
    tx_driver_.write_desc(d, {tx_buf_[d], static_cast<uint32_t>(bytes.size()), 0, 0});
    tx_driver_.push_avail(d);
    device_.handle_kick(kTxQueue, txq_);
  }
  void send(Header h, const std::string& data = "") {
    if (h.op == VIRTIO_VSOCK_OP_RW && h.len == 0) h.len = static_cast<uint32_t>(data.size());
    h.fwd_cnt = fwd_cnt_[h.src_port];
    if (h.buf_alloc == 0) h.buf_alloc = buf_alloc_;
    WireHeader w = encode_header(h);
    std::vector<uint8_t> bytes(w.begin(), w.end());
    bytes.insert(bytes.end(), data.begin(), data.end());
    send_raw(bytes);
  }
  Header to_host(uint16_t op, uint32_t guest_port, uint32_t host_port, uint32_t flags = 0) {
    Header h;
    h.src_cid = kCid;
    h.dst_cid = kHostCid;
    h.src_port = guest_port;
    h.dst_port = host_port;
    h.type = VIRTIO_VSOCK_TYPE_STREAM;
    h.op = op;
    h.flags = flags;
    return h;
  }

  // Used RX buffers since the last call, decoded; each buffer is reposted.
  std::vector<Packet> take() {
    std::vector<Packet> out;
    while (rx_used_ != rx_driver_.used_idx()) {
      auto e = rx_driver_.used_elem(rx_used_ % kQueueSize);
      rx_used_++;
      rx_posted_--;
      EXPECT_GE(e.len, kHeaderSize);
      auto bytes = rx_driver_.get(rx_buf_[e.id], e.len);
      Packet p;
      p.h = *decode_header(bytes);
      p.data.assign(bytes.begin() + kHeaderSize, bytes.end());
      EXPECT_EQ(p.data.size(), p.h.op == VIRTIO_VSOCK_OP_RW ? p.h.len : 0u);
      if (p.h.op == VIRTIO_VSOCK_OP_RW) fwd_cnt_[p.h.dst_port] += p.h.len;  // we "read" it
      out.push_back(std::move(p));
    }
    post_rx();
    return out;
  }
  void set_buf_alloc(uint32_t b) { buf_alloc_ = b; }
  uint32_t fwd_cnt(uint32_t port) { return fwd_cnt_[port]; }
  void set_fwd_cnt(uint32_t port, uint32_t v) { fwd_cnt_[port] = v; }
  const vhost::GuestMemory& rx_mem() const { return *mem_ptr_; }
  void set_mem(std::shared_ptr<vhost::GuestMemory> m) { mem_ptr_ = std::move(m); }

 private:
  Device& device_;
  MockDriver rx_driver_, tx_driver_;
  vhost::Virtqueue rxq_{kRxQueue}, txq_{kTxQueue};
  uint64_t rx_buf_[kQueueSize];
  uint64_t tx_buf_[kQueueSize];
  int rx_posted_ = 0;
  uint16_t rx_used_ = 0;
  uint32_t buf_alloc_ = 256 * 1024;
  std::map<uint32_t, uint32_t> fwd_cnt_;  // per guest port: bytes the guest app consumed
  std::shared_ptr<vhost::GuestMemory> mem_ptr_;
};

class DeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    ::getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    char tmpl[] = "/tmp/vsock-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop.has_value());
    loop_ = std::move(*loop);
    auto m = MemfdMemory::create(kGpa, kMemSize, kVa);
    ASSERT_TRUE(m.has_value());
    mem_ = std::move(*m);
  }
  void TearDown() override {
    guest_.reset();
    device_.reset();
    muxer_.reset();
    (void)std::system(("rm -rf " + dir_).c_str());
  }

  void start(MuxerConfig config = {}) {
    config.dir = dir_;
    config.guest_cid = kCid;
    muxer_ = std::make_unique<Muxer>(*loop_, config);
    ASSERT_TRUE(muxer_->start());
    device_ = std::make_unique<Device>(*muxer_);
    guest_ = std::make_unique<FakeGuest>(mem_, *device_);
    guest_->set_mem(mem_.memory);
    guest_->post_rx();
    guest_->kick_rx();
  }

  // Pumps the loop and collects guest packets until `done` or the timeout.
  std::vector<Packet> pump_until(const std::function<bool(const std::vector<Packet>&)>& done,
                                 int timeout_ms = 3000) {
    std::vector<Packet> all;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      for (auto& p : guest_->take()) all.push_back(std::move(p));
      if (done(all) || std::chrono::steady_clock::now() > deadline) break;
      guest_->kick_rx();
      (void)loop_->run_once(10);
    }
    return all;
  }
  std::vector<Packet> pump(int ms) {
    return pump_until([](const auto&) { return false; }, ms);
  }
  static std::function<bool(const std::vector<Packet>&)> has_op(uint16_t op) {
    return [op](const std::vector<Packet>& ps) {
      for (auto& p : ps)
        if (p.h.op == op) return true;
      return false;
    };
  }
  static const Packet* find_op(const std::vector<Packet>& ps, uint16_t op) {
    for (auto& p : ps)
      if (p.h.op == op) return &p;
    return nullptr;
  }
  static std::string rw_data(const std::vector<Packet>& ps) {
    std::string s;
    for (auto& p : ps)
      if (p.h.op == VIRTIO_VSOCK_OP_RW) s += p.data;
    return s;
  }

  UniqueFd connect_unix(const std::string& name) {
    auto fd = unix_connect(path_join(dir_, name));
    EXPECT_TRUE(fd.has_value()) << name;
    return fd ? std::move(*fd) : UniqueFd();
  }
  // Reads what is there after pumping the loop for a while.
  std::string host_read(int fd, size_t want, int timeout_ms = 3000) {
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
      char buf[65536];
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) got.append(buf, static_cast<size_t>(n));
      if (n == 0) break;
      guest_->take();
      guest_->kick_rx();
      (void)loop_->run_once(5);
    }
    return got;
  }
  // True if the peer closed (EOF or reset) within the timeout.
  bool host_sees_eof(int fd, int timeout_ms = 3000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      char b[4096];
      ssize_t n = ::recv(fd, b, sizeof b, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN)) return true;
      guest_->take();
      guest_->kick_rx();
      (void)loop_->run_once(5);
    }
    return false;
  }

  // Host connects through a forward or the handshake; the guest accepts. Returns the host
  // port the backend chose.
  uint32_t accept_request(uint32_t guest_port) {
    auto ps = pump_until(has_op(VIRTIO_VSOCK_OP_REQUEST));
    const Packet* req = find_op(ps, VIRTIO_VSOCK_OP_REQUEST);
    EXPECT_NE(req, nullptr);
    if (!req) return 0;
    EXPECT_EQ(req->h.dst_port, guest_port);
    EXPECT_EQ(req->h.src_cid, kHostCid);
    EXPECT_EQ(req->h.dst_cid, kCid);
    EXPECT_GE(req->h.src_port, Muxer::kFirstEphemeralPort);
    guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_RESPONSE, guest_port, req->h.src_port));
    return req->h.src_port;
  }

  std::string dir_;
  std::unique_ptr<EventLoop> loop_;
  MemfdMemory mem_;
  std::unique_ptr<Muxer> muxer_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<FakeGuest> guest_;
};

TEST_F(DeviceTest, ConfigSpaceIsTheGuestCid) {
  start();
  uint8_t cfg[8];
  ASSERT_TRUE(device_->read_config(0, cfg));
  EXPECT_EQ(cfg[0], 3);
  EXPECT_EQ(cfg[7], 0);
  uint8_t too_much[9];
  EXPECT_FALSE(device_->read_config(0, too_much));
}

TEST_F(DeviceTest, GuestConnectsToAHostListenerAndExchangesData) {
  start();
  auto listener = unix_listen(path_join(dir_, "00000002.00000400"));
  ASSERT_TRUE(listener.has_value());

  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_REQUEST, 5000, 0x400));
  auto ps = pump_until(has_op(VIRTIO_VSOCK_OP_RESPONSE));
  UniqueFd host(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(host.valid());
  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_RW, 5000, 0x400), "ping");
  std::string at_host = host_read(host.get(), 4);
  ASSERT_TRUE(write_all(host.get(), "pong"));
  auto data = pump_until([](const auto& v) { return rw_data(v).size() >= 4; });

  const Packet* resp = find_op(ps, VIRTIO_VSOCK_OP_RESPONSE);
  ASSERT_NE(resp, nullptr);
  EXPECT_EQ(resp->h.src_port, 0x400u);
  EXPECT_EQ(resp->h.dst_port, 5000u);
  EXPECT_EQ(resp->h.buf_alloc, muxer_->config().buf_alloc);
  EXPECT_EQ(at_host, "ping");
  EXPECT_EQ(rw_data(data), "pong");
  EXPECT_EQ(data[0].h.src_port, 0x400u);
  EXPECT_EQ(data[0].h.dst_port, 5000u);
}

TEST_F(DeviceTest, GuestConnectToNothingIsReset) {
  start();

  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_REQUEST, 5000, 0x401));
  auto ps = pump_until(has_op(VIRTIO_VSOCK_OP_RST));

  const Packet* rst = find_op(ps, VIRTIO_VSOCK_OP_RST);
  ASSERT_NE(rst, nullptr);
  EXPECT_EQ(rst->h.src_port, 0x401u);
  EXPECT_EQ(rst->h.dst_port, 5000u);
  EXPECT_EQ(muxer_->connection_count(), 0u);
}

TEST_F(DeviceTest, HostConnectsThroughTheHandshake) {
  start();
  UniqueFd client = connect_unix("connect");
  ASSERT_TRUE(write_all(client.get(), "00000003.00000948\nearly"));

  uint32_t host_port = accept_request(0x948);
  auto data = pump_until([](const auto& v) { return rw_data(v).size() >= 5; });
  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_RW, 0x948, host_port), "reply");

  EXPECT_EQ(rw_data(data), "early");  // bytes after the handshake are stream data
  EXPECT_EQ(host_read(client.get(), 5), "reply");
}

TEST_F(DeviceTest, HandshakeWithTheWrongCidIsClosed) {
  start();
  UniqueFd client = connect_unix("connect");
  ASSERT_TRUE(write_all(client.get(), "00000004.00000948\n"));
  EXPECT_TRUE(host_sees_eof(client.get()));
  EXPECT_EQ(find_op(pump(50), VIRTIO_VSOCK_OP_REQUEST), nullptr);
}

TEST_F(DeviceTest, MalformedHandshakeIsClosed) {
  start();
  UniqueFd client = connect_unix("connect");
  ASSERT_TRUE(write_all(client.get(), "3.948\n"));
  EXPECT_TRUE(host_sees_eof(client.get()));
}

TEST_F(DeviceTest, IncompleteHandshakeTimesOut) {
  MuxerConfig config;
  config.handshake_timeout = std::chrono::milliseconds(300);
  start(config);
  UniqueFd client = connect_unix("connect");
  ASSERT_TRUE(write_all(client.get(), "00000003.0000"));
  EXPECT_TRUE(host_sees_eof(client.get(), 3000));
}

TEST_F(DeviceTest, ForwardConnectsToItsGuestPortWithoutHandshake) {
  MuxerConfig config;
  config.forwards = {2376};
  start(config);
  UniqueFd client = connect_unix("00000003.00000948");

  uint32_t host_port = accept_request(2376);
  ASSERT_TRUE(write_all(client.get(), "GET /_ping"));
  auto data = pump_until([](const auto& v) { return rw_data(v).size() >= 10; });
  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_RW, 2376, host_port), "OK");

  EXPECT_EQ(rw_data(data), "GET /_ping");
  EXPECT_EQ(host_read(client.get(), 2), "OK");
}

TEST_F(DeviceTest, GuestRefusalClosesTheHostConnection) {
  MuxerConfig config;
  config.forwards = {2376};
  start(config);
  UniqueFd client = connect_unix("00000003.00000948");
  auto ps = pump_until(has_op(VIRTIO_VSOCK_OP_REQUEST));
  const Packet* req = find_op(ps, VIRTIO_VSOCK_OP_REQUEST);
  ASSERT_NE(req, nullptr);

  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_RST, 2376, req->h.src_port));

  EXPECT_TRUE(host_sees_eof(client.get()));
  EXPECT_EQ(muxer_->connection_count(), 0u);
}

TEST_F(DeviceTest, HostConnectTheGuestNeverAnswersTimesOut) {
  MuxerConfig config;
  config.forwards = {2376};
  config.connect_timeout = std::chrono::milliseconds(300);
  start(config);
  UniqueFd client = connect_unix("00000003.00000948");
  auto ps = pump_until(has_op(VIRTIO_VSOCK_OP_REQUEST));
  const Packet* req = find_op(ps, VIRTIO_VSOCK_OP_REQUEST);
  ASSERT_NE(req, nullptr);
  uint32_t host_port = req->h.src_port;

  // The guest never sends RESPONSE or RST.
  bool eof = host_sees_eof(client.get(), 3000);
  auto later = pump_until(has_op(VIRTIO_VSOCK_OP_RST), 1000);

  EXPECT_TRUE(eof);
  const Packet* rst = find_op(later, VIRTIO_VSOCK_OP_RST);
  ASSERT_NE(rst, nullptr);  // the guest's half is reset, in case it answers late
  EXPECT_EQ(rst->h.src_port, host_port);
  EXPECT_EQ(rst->h.dst_port, 2376u);
  EXPECT_EQ(muxer_->connection_count(), 0u);
}

// A unix listener with backlog 0 takes one connection; the next connect gets EAGAIN.
static UniqueFd listen_full(const std::string& path, UniqueFd& filler) {
  auto l = unix_listen(path, 0600, 0);
  EXPECT_TRUE(l.has_value());
  filler = unix_connect(path).value_or(UniqueFd());
  EXPECT_TRUE(filler.valid());
  return l ? std::move(*l) : UniqueFd();
}

TEST_F(DeviceTest, GuestConnectWaitsForRoomInAFullBacklog) {
  MuxerConfig config;
  config.backlog_retry = std::chrono::milliseconds(3000);
  start(config);
  UniqueFd filler;
  UniqueFd listener = listen_full(path_join(dir_, "00000002.00000400"), filler);

  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_REQUEST, 5000, 0x400));
  auto early = pump(400);
  UniqueFd first(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));  // makes room
  auto ps = pump_until(has_op(VIRTIO_VSOCK_OP_RESPONSE));
  UniqueFd second(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));

  EXPECT_EQ(find_op(early, VIRTIO_VSOCK_OP_RST), nullptr);
  EXPECT_EQ(find_op(early, VIRTIO_VSOCK_OP_RESPONSE), nullptr);
  EXPECT_NE(find_op(ps, VIRTIO_VSOCK_OP_RESPONSE), nullptr);
  EXPECT_TRUE(second.valid());
  EXPECT_EQ(muxer_->connection_count(), 1u);
}

TEST_F(DeviceTest, GuestConnectToAFullBacklogIsResetAfterTheRetryWindow) {
  MuxerConfig config;
  config.backlog_retry = std::chrono::milliseconds(300);
  start(config);
  UniqueFd filler;
  UniqueFd listener = listen_full(path_join(dir_, "00000002.00000400"), filler);

  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_REQUEST, 5000, 0x400));
  auto ps = pump_until(has_op(VIRTIO_VSOCK_OP_RST), 3000);

  const Packet* rst = find_op(ps, VIRTIO_VSOCK_OP_RST);
  ASSERT_NE(rst, nullptr);
  EXPECT_EQ(rst->h.dst_port, 5000u);
  EXPECT_EQ(muxer_->connection_count(), 0u);
}

TEST_F(DeviceTest, ShutdownHalvesMapToTheUnixSocket) {
  MuxerConfig config;
  config.forwards = {2376};
  start(config);
  UniqueFd client = connect_unix("00000003.00000948");
  uint32_t hp = accept_request(2376);

  // Guest stops sending: the host sees EOF but can still send.
  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_SHUTDOWN, 2376, hp, VIRTIO_VSOCK_SHUTDOWN_SEND));
  bool eof = host_sees_eof(client.get());
  ASSERT_TRUE(write_all(client.get(), "still"));
  auto data = pump_until([](const auto& v) { return rw_data(v).size() >= 5; });
  // Host stops sending: the guest gets SHUTDOWN SEND.
  ::shutdown(client.get(), SHUT_WR);
  auto sd = pump_until(has_op(VIRTIO_VSOCK_OP_SHUTDOWN));
  // Guest closes: both halves, and the backend resets the stream.
  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_SHUTDOWN, 2376, hp, kShutdownBoth));
  auto rst = pump_until(has_op(VIRTIO_VSOCK_OP_RST));

  EXPECT_TRUE(eof);
  EXPECT_EQ(rw_data(data), "still");
  const Packet* s = find_op(sd, VIRTIO_VSOCK_OP_SHUTDOWN);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
  EXPECT_NE(find_op(rst, VIRTIO_VSOCK_OP_RST), nullptr);
  EXPECT_EQ(muxer_->connection_count(), 0u);
}

TEST_F(DeviceTest, GuestGetsNoMoreThanItsCreditUntilItUpdates) {
  MuxerConfig config;
  config.forwards = {2376};
  start(config);
  guest_->set_buf_alloc(1000);
  UniqueFd client = connect_unix("00000003.00000948");
  uint32_t hp = accept_request(2376);
  std::string payload(5000, 'c');
  ASSERT_TRUE(write_all(client.get(), payload));

  auto first = pump(300);
  // The guest's application reads it all and says so.
  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 2376, hp));
  auto second = pump(300);

  EXPECT_EQ(rw_data(first).size(), 1000u);
  EXPECT_EQ(rw_data(second).size(), 1000u);
}

TEST_F(DeviceTest, CreditRequestIsAnswered) {
  MuxerConfig config;
  config.forwards = {2376};
  start(config);
  UniqueFd client = connect_unix("00000003.00000948");
  uint32_t hp = accept_request(2376);

  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 2376, hp));
  auto ps = pump_until(has_op(VIRTIO_VSOCK_OP_CREDIT_UPDATE));

  const Packet* cu = find_op(ps, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
  ASSERT_NE(cu, nullptr);
  EXPECT_EQ(cu->h.buf_alloc, muxer_->config().buf_alloc);
}

TEST_F(DeviceTest, SlowHostReaderMeansBackpressureNotBuffering) {
  MuxerConfig config;
  config.forwards = {2376};
  config.buf_alloc = 64 * 1024;
  start(config);
  UniqueFd client = connect_unix("00000003.00000948");
  int small = 8192;
  ASSERT_EQ(::setsockopt(client.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  uint32_t hp = accept_request(2376);
  // The guest sends as fast as our credit allows; the host never reads.
  uint32_t sent = 0, peer_fwd = 0, peer_buf = config.buf_alloc;
  std::string chunk(4096, 'b');
  for (int round = 0; round < 200; round++) {
    for (auto& p : pump(5)) {
      if (p.h.src_port == hp) peer_fwd = p.h.fwd_cnt, peer_buf = p.h.buf_alloc;
    }
    while (sent + chunk.size() - peer_fwd <= peer_buf) {
      guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_RW, 2376, hp), chunk);
      sent += static_cast<uint32_t>(chunk.size());
    }
  }
  const Connection* c = muxer_->find(hp, 2376);
  ASSERT_NE(c, nullptr);

  // What is in flight is bounded: the socket buffers plus at most buf_alloc in the backend.
  EXPECT_LE(c->buffered_bytes(), config.buf_alloc);
  EXPECT_LT(sent, 4u * 1024 * 1024);
  // Once the reader catches up, everything arrives in order.
  std::string got = host_read(client.get(), sent, 5000);
  EXPECT_EQ(got.size(), sent);
}

TEST_F(DeviceTest, GuestIgnoringOurCreditIsReset) {
  MuxerConfig config;
  config.forwards = {2376};
  config.buf_alloc = 8192;
  start(config);
  UniqueFd client = connect_unix("00000003.00000948");
  int small = 4096;
  ASSERT_EQ(::setsockopt(client.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  uint32_t hp = accept_request(2376);
  std::string chunk(4096, 'h');

  for (int i = 0; i < 64 && muxer_->connection_count() > 0; i++) {
    guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_RW, 2376, hp), chunk);
  }
  auto ps = pump_until(has_op(VIRTIO_VSOCK_OP_RST));

  EXPECT_NE(find_op(ps, VIRTIO_VSOCK_OP_RST), nullptr);
  EXPECT_EQ(muxer_->connection_count(), 0u);
  EXPECT_TRUE(host_sees_eof(client.get()));
}

TEST_F(DeviceTest, ThousandConcurrentConnections) {
  constexpr int kConns = 1024;
  MuxerConfig config;
  config.forwards = {2376};
  start(config);
  std::vector<UniqueFd> clients;
  std::map<uint32_t, int> by_host_port;
  int requests = 0;
  std::vector<uint32_t> host_ports;
  for (int i = 0; i < kConns; i++) {
    clients.push_back(connect_unix("00000003.00000948"));
    if (i % 64 == 63 || i == kConns - 1) {
      for (auto& p : pump_until(
               [&](const auto& v) { return requests + static_cast<int>(v.size()) >= i + 1; })) {
        ASSERT_EQ(p.h.op, VIRTIO_VSOCK_OP_REQUEST);
        requests++;
        host_ports.push_back(p.h.src_port);
        guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_RESPONSE, 2376, p.h.src_port));
      }
    }
  }
  ASSERT_EQ(requests, kConns);
  for (int i = 0; i < kConns; i++) {
    ASSERT_TRUE(write_all(clients[i].get(), "x" + std::to_string(i)));
  }
  std::map<uint32_t, std::string> got;
  pump_until(
      [&](const auto& v) {
        for (auto& p : v) got[p.h.src_port] = p.data;  // idempotent over the growing list
        return got.size() >= kConns;
      },
      10000);

  EXPECT_EQ(muxer_->connection_count(), static_cast<size_t>(kConns));
  EXPECT_EQ(got.size(), static_cast<size_t>(kConns));
  std::sort(host_ports.begin(), host_ports.end());
  EXPECT_EQ(std::unique(host_ports.begin(), host_ports.end()), host_ports.end());
  // And back: the guest answers on every connection.
  for (uint32_t hp : host_ports) {
    guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_RW, 2376, hp), "ok");
  }
  int answered = 0;
  for (auto& c : clients) answered += host_read(c.get(), 2, 1000) == "ok";
  EXPECT_EQ(answered, kConns);
}

TEST_F(DeviceTest, MalformedPacketsNeverCrashAndGetTheSpecifiedAnswer) {
  start();
  const uint64_t kRstBefore = device_->stats().resets_sent;

  // A chain shorter than a header: dropped.
  guest_->send_raw(std::vector<uint8_t>(20, 0xff));
  // Wrong source CID: dropped, never answered.
  Header spoofed = guest_->to_host(VIRTIO_VSOCK_OP_REQUEST, 1, 0x400);
  spoofed.src_cid = 99;
  guest_->send(spoofed);
  // len larger than the chain: dropped.
  Header lying = guest_->to_host(VIRTIO_VSOCK_OP_RW, 1, 0x400);
  lying.len = 100000;
  guest_->send(lying, "abc");
  // RST for nothing: ignored.
  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_RST, 1, 0x400));
  auto quiet = pump(100);
  // Bad type, unknown op, RW for no connection: each answered with an RST.
  Header bad_type = guest_->to_host(VIRTIO_VSOCK_OP_REQUEST, 2, 0x400);
  bad_type.type = 2;
  guest_->send(bad_type);
  guest_->send(guest_->to_host(42, 3, 0x400));
  guest_->send(guest_->to_host(VIRTIO_VSOCK_OP_RW, 4, 0x400), "data");
  auto rsts = pump_until([](const auto& v) { return v.size() >= 3; });

  EXPECT_TRUE(quiet.empty());
  ASSERT_EQ(rsts.size(), 3u);
  for (auto& p : rsts) EXPECT_EQ(p.h.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(rsts[0].h.dst_port, 2u);
  EXPECT_EQ(rsts[0].h.type, 2);
  EXPECT_EQ(rsts[1].h.dst_port, 3u);
  EXPECT_EQ(rsts[2].h.dst_port, 4u);
  EXPECT_EQ(device_->stats().resets_sent - kRstBefore, 3u);
  EXPECT_GE(device_->stats().dropped, 5u);
}

TEST_F(DeviceTest, RandomTxBytesNeverCrash) {
  start();
  uint32_t x = 12345;
  for (int i = 0; i < 2000; i++) {
    std::vector<uint8_t> bytes(x % 120);
    for (auto& b : bytes) {
      x = x * 1103515245 + 12345;
      b = static_cast<uint8_t>(x >> 16);
    }
    if (bytes.size() >= 8) bytes[0] = 3, bytes[1] = bytes[2] = bytes[3] = bytes[4] = 0;
    guest_->send_raw(bytes);
    if (i % 100 == 0) pump(1);
  }
  pump(20);
  SUCCEED();
}

TEST_F(DeviceTest, DriverGoingAwayClosesEveryConnection) {
  MuxerConfig config;
  config.forwards = {2376};
  start(config);
  UniqueFd client = connect_unix("00000003.00000948");
  accept_request(2376);
  pump(20);
  ASSERT_EQ(muxer_->connection_count(), 1u);

  device_->reset();

  EXPECT_EQ(muxer_->connection_count(), 0u);
  EXPECT_TRUE(host_sees_eof(client.get()));
  // With no driver, new host connections are closed at once.
  UniqueFd late = connect_unix("00000003.00000948");
  for (int i = 0; i < 10; i++) (void)loop_->run_once(5);
  char b;
  EXPECT_EQ(::recv(late.get(), &b, 1, MSG_DONTWAIT), 0);
}

}  // namespace
}  // namespace pinata::vsock
