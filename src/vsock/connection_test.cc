#include "vsock/connection.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <string>
#include <vector>

namespace pinata::vsock {
namespace {

constexpr uint64_t kCid = 3;
constexpr uint32_t kBuf = 4096;

// ---- credit accounting (pure) ----

TEST(Credit, PeerFreeIsBufAllocMinusInFlight) {
  Credit c;
  c.peer_buf_alloc = 1000;
  c.tx_cnt = 300;
  c.peer_fwd_cnt = 100;
  EXPECT_EQ(c.peer_free(), 800u);
}

TEST(Credit, PeerFreeSurvivesCounterWrapAround) {
  Credit c;
  c.peer_buf_alloc = 1000;
  c.peer_fwd_cnt = 0xffffff00u;
  c.tx_cnt = 0x00000100u;  // 512 bytes in flight across the wrap
  EXPECT_EQ(c.peer_free(), 488u);
}

TEST(Credit, OvercommittedPeerHasNoCredit) {
  Credit c;
  c.peer_buf_alloc = 100;
  c.tx_cnt = 500;
  c.peer_fwd_cnt = 0;
  EXPECT_EQ(c.peer_free(), 0u);
}

TEST(Credit, FitsOnlyWhatOurBufferHolds) {
  Credit c;
  c.buf_alloc = 1000;
  c.rx_cnt = 700;
  c.fwd_cnt = 100;  // 600 buffered
  EXPECT_TRUE(c.fits(400));
  EXPECT_FALSE(c.fits(401));
}

TEST(Credit, UpdateIsDueAfterAQuarterOfTheBuffer) {
  Credit c;
  c.buf_alloc = 1000;
  c.fwd_cnt = 249;
  EXPECT_FALSE(c.update_due());
  c.fwd_cnt = 250;
  EXPECT_TRUE(c.update_due());
  c.last_reported_fwd = 250;
  EXPECT_FALSE(c.update_due());
}

// ---- state machine over a socketpair ----

Header guest_packet(uint16_t op, uint32_t len = 0, uint32_t flags = 0, uint32_t buf_alloc = 65536,
                    uint32_t fwd_cnt = 0) {
  Header h;
  h.src_cid = kCid;
  h.dst_cid = kHostCid;
  h.src_port = 5000;
  h.dst_port = 1024;
  h.type = VIRTIO_VSOCK_TYPE_STREAM;
  h.op = op;
  h.len = len;
  h.flags = flags;
  h.buf_alloc = buf_alloc;
  h.fwd_cnt = fwd_cnt;
  return h;
}

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    host_ = UniqueFd(sv[1]);
    ours_ = sv[0];
  }

  // A guest-initiated connection after its REQUEST, RESPONSE already taken.
  Connection connected(uint32_t guest_buf_alloc = 65536) {
    Connection c = Connection::accept_guest(
        guest_packet(VIRTIO_VSOCK_OP_REQUEST, 0, 0, guest_buf_alloc), kCid, UniqueFd(ours_), kBuf);
    Header h;
    std::vector<uint8_t> buf(64);
    EXPECT_TRUE(c.next_packet(h, buf));
    EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_RESPONSE);
    return c;
  }

  std::string host_read() {
    char buf[65536];
    ssize_t n = ::recv(host_.get(), buf, sizeof buf, MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

  UniqueFd host_;
  int ours_ = -1;
};

TEST_F(ConnectionTest, GuestInitiatedConnectionAnswersWithResponse) {
  Connection c =
      Connection::accept_guest(guest_packet(VIRTIO_VSOCK_OP_REQUEST), kCid, UniqueFd(ours_), kBuf);
  Header h;
  std::vector<uint8_t> buf(64);

  ASSERT_TRUE(c.wants_rx());
  ASSERT_TRUE(c.next_packet(h, buf));

  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_RESPONSE);
  EXPECT_EQ(h.src_cid, kHostCid);
  EXPECT_EQ(h.dst_cid, kCid);
  EXPECT_EQ(h.src_port, 1024u);
  EXPECT_EQ(h.dst_port, 5000u);
  EXPECT_EQ(h.buf_alloc, kBuf);
  EXPECT_EQ(c.state(), Connection::State::kConnected);
  EXPECT_FALSE(c.wants_rx());
}

TEST_F(ConnectionTest, HostInitiatedConnectionSendsRequestAndWaitsForResponse) {
  Connection c(Connection::Origin::kHost, kCid, 49152, 2376, UniqueFd(ours_), kBuf);
  Header h;
  std::vector<uint8_t> buf(64);

  ASSERT_TRUE(c.next_packet(h, buf));
  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_REQUEST);
  EXPECT_EQ(c.state(), Connection::State::kAwaitingResponse);
  EXPECT_EQ(c.epoll_events(), 0u);  // nothing is read before the guest accepts

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_RESPONSE), {});
  EXPECT_EQ(c.state(), Connection::State::kConnected);
  EXPECT_EQ(c.epoll_events() & EPOLLIN, static_cast<uint32_t>(EPOLLIN));
}

TEST_F(ConnectionTest, GuestRstWhileConnectingClosesWithoutReply) {
  Connection c(Connection::Origin::kHost, kCid, 49152, 2376, UniqueFd(ours_), kBuf);
  Header h;
  std::vector<uint8_t> buf(64);
  ASSERT_TRUE(c.next_packet(h, buf));

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_RST), {});

  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(c.reset_to_guest());
}

TEST_F(ConnectionTest, GuestDataIsWrittenToTheSocketAndCounted) {
  Connection c = connected();

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_RW, 5), bytes("hello"));

  EXPECT_EQ(host_read(), "hello");
  EXPECT_EQ(c.credit().rx_cnt, 5u);
  EXPECT_EQ(c.credit().fwd_cnt, 5u);
}

TEST_F(ConnectionTest, SocketDataGoesToTheGuestWithinItsCredit) {
  Connection c = connected(/*guest_buf_alloc=*/10);
  ASSERT_EQ(::send(host_.get(), "0123456789abcdef", 16, 0), 16);
  c.on_socket_events(EPOLLIN);
  Header h;
  std::vector<uint8_t> buf(4096);

  ASSERT_TRUE(c.next_packet(h, buf));
  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_RW);
  EXPECT_EQ(h.len, 10u);
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + 10), "0123456789");
  // Out of credit: nothing more is read or wanted until the guest reports progress.
  EXPECT_FALSE(c.wants_rx());
  EXPECT_EQ(c.epoll_events() & EPOLLIN, 0u);

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 0, 10, 10), {});
  ASSERT_TRUE(c.wants_rx());
  ASSERT_TRUE(c.next_packet(h, buf));
  EXPECT_EQ(h.len, 6u);
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + 6), "abcdef");
}

TEST_F(ConnectionTest, CreditRequestIsAnsweredWithCreditUpdate) {
  Connection c = connected();
  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_RW, 3), bytes("abc"));

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_CREDIT_REQUEST), {});
  Header h;
  std::vector<uint8_t> buf(64);

  ASSERT_TRUE(c.next_packet(h, buf));
  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
  EXPECT_EQ(h.fwd_cnt, 3u);
  EXPECT_EQ(h.buf_alloc, kBuf);
  EXPECT_FALSE(c.wants_rx());
}

TEST_F(ConnectionTest, UnsolicitedCreditUpdateAfterAQuarterOfTheBufferIsConsumed) {
  Connection c = connected();
  std::string data(kBuf / 4, 'x');

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_RW, static_cast<uint32_t>(data.size())),
                    bytes(data));

  ASSERT_TRUE(c.wants_rx());
  Header h;
  std::vector<uint8_t> buf(64);
  ASSERT_TRUE(c.next_packet(h, buf));
  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
  EXPECT_EQ(h.fwd_cnt, kBuf / 4);
}

TEST_F(ConnectionTest, GuestExceedingOurCreditIsReset) {
  Connection c = connected();
  std::string data(kBuf + 1, 'x');

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_RW, static_cast<uint32_t>(data.size())),
                    bytes(data));

  EXPECT_TRUE(c.closed());
  EXPECT_TRUE(c.reset_to_guest());
  EXPECT_EQ(c.reset_header().op, VIRTIO_VSOCK_OP_RST);
}

TEST_F(ConnectionTest, SlowReaderIsBufferedUpToBufAllocOnly) {
  int small = 4096;
  ASSERT_EQ(::setsockopt(ours_, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  Connection c = connected();
  std::string chunk(1024, 'y');
  uint32_t sent = 0;
  // A guest that respects our credit: send while the advertised window allows.
  while (c.credit().fits(1024) && sent < 10 * 1024 * 1024) {
    c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_RW, 1024), bytes(chunk));
    sent += 1024;
    if (c.closed()) break;
  }

  EXPECT_FALSE(c.closed());
  EXPECT_LE(c.buffered_bytes(), kBuf);
  EXPECT_LT(sent, 10u * 1024 * 1024);  // the window closed
  EXPECT_EQ(c.epoll_events() & EPOLLOUT, static_cast<uint32_t>(EPOLLOUT));
  // The reader catches up: buffered data drains and credit is returned.
  std::string got;
  for (int i = 0; i < 1000 && got.size() < sent; i++) {
    got += host_read();
    c.on_socket_events(EPOLLOUT);
  }
  EXPECT_EQ(got.size(), sent);
  EXPECT_EQ(c.buffered_bytes(), 0u);
  EXPECT_EQ(c.credit().fwd_cnt, sent);
}

TEST_F(ConnectionTest, GuestShutdownSendShutsTheSocketsWriteSide) {
  Connection c = connected();

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_SHUTDOWN, 0, VIRTIO_VSOCK_SHUTDOWN_SEND), {});

  char b;
  EXPECT_EQ(::recv(host_.get(), &b, 1, MSG_DONTWAIT), 0);  // EOF
  EXPECT_FALSE(c.closed());
  // The other direction still works.
  ASSERT_EQ(::send(host_.get(), "late", 4, 0), 4);
  c.on_socket_events(EPOLLIN);
  Header h;
  std::vector<uint8_t> buf(64);
  ASSERT_TRUE(c.next_packet(h, buf));
  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_RW);
  EXPECT_EQ(h.len, 4u);
}

TEST_F(ConnectionTest, GuestShutdownSendWaitsForBufferedDataFirst) {
  int small = 4096;
  ASSERT_EQ(::setsockopt(ours_, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  Connection c = connected();
  std::string chunk(1024, 'z');
  uint32_t sent = 0;
  while (c.buffered_bytes() == 0 && c.credit().fits(1024)) {
    c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_RW, 1024), bytes(chunk));
    sent += 1024;
  }
  ASSERT_GT(c.buffered_bytes(), 0u);

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_SHUTDOWN, 0, VIRTIO_VSOCK_SHUTDOWN_SEND), {});
  std::string got;
  for (int i = 0; i < 1000; i++) {
    char buf[8192];
    ssize_t n = ::recv(host_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) break;  // EOF only after everything
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    c.on_socket_events(EPOLLOUT);
  }

  EXPECT_EQ(got.size(), sent);
}

TEST_F(ConnectionTest, GuestShutdownReceiveStopsReading) {
  Connection c = connected();

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_SHUTDOWN, 0, VIRTIO_VSOCK_SHUTDOWN_RCV), {});

  EXPECT_EQ(c.epoll_events() & EPOLLIN, 0u);
  EXPECT_FALSE(c.wants_rx());
}

TEST_F(ConnectionTest, SocketEofBecomesShutdownSend) {
  Connection c = connected();
  ASSERT_EQ(::send(host_.get(), "bye", 3, 0), 3);
  ::shutdown(host_.get(), SHUT_WR);
  c.on_socket_events(EPOLLIN);
  Header h;
  std::vector<uint8_t> buf(64);

  ASSERT_TRUE(c.next_packet(h, buf));
  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_RW);
  EXPECT_EQ(h.len, 3u);
  c.on_socket_events(EPOLLIN);
  ASSERT_TRUE(c.next_packet(h, buf));
  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
  EXPECT_EQ(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
  EXPECT_FALSE(c.wants_rx());
}

TEST_F(ConnectionTest, SocketWriteFailureBecomesShutdownReceive) {
  Connection c = connected();
  host_.reset();  // the host peer is gone

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_RW, 3), bytes("abc"));
  Header h;
  std::vector<uint8_t> buf(64);

  ASSERT_TRUE(c.wants_rx());
  ASSERT_TRUE(c.next_packet(h, buf));
  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
  EXPECT_EQ(h.flags & VIRTIO_VSOCK_SHUTDOWN_RCV, VIRTIO_VSOCK_SHUTDOWN_RCV);
  EXPECT_EQ(h.fwd_cnt, 3u);  // discarded data still returns credit
}

TEST_F(ConnectionTest, GuestShutdownOfBothHalvesResetsTheConnection) {
  Connection c = connected();

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_SHUTDOWN, 0, kShutdownBoth), {});

  EXPECT_TRUE(c.closed());
  EXPECT_TRUE(c.reset_to_guest());
}

TEST_F(ConnectionTest, DataBeforeTheResponseIsAProtocolError) {
  Connection c(Connection::Origin::kHost, kCid, 49152, 2376, UniqueFd(ours_), kBuf);
  Header h;
  std::vector<uint8_t> buf(64);
  ASSERT_TRUE(c.next_packet(h, buf));

  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_RW, 3), bytes("abc"));

  EXPECT_TRUE(c.closed());
  EXPECT_TRUE(c.reset_to_guest());
}

TEST_F(ConnectionTest, DuplicateRequestResetsTheConnection) {
  Connection c = connected();
  c.on_guest_packet(guest_packet(VIRTIO_VSOCK_OP_REQUEST), {});
  EXPECT_TRUE(c.closed());
  EXPECT_TRUE(c.reset_to_guest());
}

}  // namespace
}  // namespace pinata::vsock
