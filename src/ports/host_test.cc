// Host integration without a VM: the real PortService (served on its unix socket, spoken to
// with the 9P test client as the guest's kernel would), real host forwards, and the real guest
// forwarder running on the host. The test plays pinata-vsock: a unix listener at
// <dir>/connect checks the 18-byte handshake and hands the stream to the forwarder, which
// connects to echo servers on 127.0.0.1 standing in for containers.
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <atomic>
#include <random>
#include <thread>

#include "base/io.h"
#include "ports/guest_forwarder.h"
#include "ports/host.h"
#include "ports/test_support.h"

namespace pinata::ports {
namespace {

using namespace std::chrono_literals;
using p9::testing::TestClient;
using testing::can_bind;
using testing::free_port;
using testing::PortTreeClient;

Result<UniqueFd> connect_to(uint16_t port) {
  return connect_tcp(SocketAddress::ipv4({0x7f000001, port}), 2000ms);
}

// Reads until EOF (or `max` bytes); false on error or after 10 s without progress.
bool read_to_eof(int fd, std::string& out, size_t max = 64 << 20) {
  char buf[65536];
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return false;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) return errno == ECONNRESET;
    if (n == 0) return true;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max) return false;
  }
}

class HostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ports-host-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    start_fake_vsock();
    start_echo_servers();
    HostOptions options;
    options.vsock_dir = dir_;
    options.limits.udp_idle = 300ms;
    auto service = PortService::create(options);
    ASSERT_TRUE(service.has_value());
    service_ = std::move(*service);
    ASSERT_TRUE(service_->serve(control_socket_path(dir_)));
    auto conn = unix_connect(path_join(dir_, "00000002.00000235"));
    ASSERT_TRUE(conn.has_value()) << conn.error().message();
    client_ = std::make_unique<TestClient>(std::move(*conn));
    ASSERT_TRUE(client_->handshake(0));
    tree_ = std::make_unique<PortTreeClient>(*client_);
  }

  void TearDown() override {
    tree_.reset();
    client_.reset();
    service_.reset();
    vsock_.reset();
    tcp_echo_.reset();
    udp_stop_ = true;
    if (udp_thread_.joinable()) udp_thread_.join();
    (void)std::system(("rm -rf " + dir_).c_str());
  }

  // pinata-vsock's host->guest side, with the guest forwarder behind it.
  void start_fake_vsock() {
    auto listener = unix_listen(path_join(dir_, "connect"));
    ASSERT_TRUE(listener.has_value());
    ForwarderOptions fopts;
    fopts.udp_idle = 2s;
    auto handler = [this, fopts](UniqueFd conn) {
      char hs[18];
      size_t got = 0;
      while (got < sizeof hs) {
        ssize_t n = ::recv(conn.get(), hs + got, sizeof hs - got, 0);
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
      if (got != sizeof hs || std::string(hs, sizeof hs) != "00000003.0000f3a5\n") {
        bad_handshakes_++;
        return;
      }
      streams_++;
      if (refuse_) return;  // the guest resets the connect: pinata-vsock closes the stream
      serve_forwarder_connection(std::move(conn), fopts);
    };
    auto a = StreamAcceptor::start(std::move(*listener), handler, "fake vsock", 4096);
    ASSERT_TRUE(a.has_value());
    vsock_ = std::move(*a);
  }

  void start_echo_servers() {
    auto tcp = listen_on(Proto::kTcp, SocketAddress::ipv4({0x7f000001, 0}));
    ASSERT_TRUE(tcp.has_value());
    tcp_echo_port_ = SocketAddress::local_of(tcp->get())->port();
    auto echo = [](UniqueFd c) {
      char buf[65536];
      for (;;) {
        ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
        if (n <= 0) break;
        if (!write_all(c.get(), std::string_view(buf, static_cast<size_t>(n)))) return;
      }
      ::shutdown(c.get(), SHUT_WR);
    };
    auto a = StreamAcceptor::start(std::move(*tcp), echo, "tcp echo", 4096);
    ASSERT_TRUE(a.has_value());
    tcp_echo_ = std::move(*a);

    auto udp = listen_on(Proto::kUdp, SocketAddress::ipv4({0x7f000001, 0}));
    ASSERT_TRUE(udp.has_value());
    udp_echo_port_ = SocketAddress::local_of(udp->get())->port();
    udp_thread_ = std::thread([this, fd = std::move(*udp)] {
      char buf[65536];
      while (!udp_stop_) {
        struct pollfd p = {fd.get(), POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        sockaddr_storage from;
        socklen_t len = sizeof from;
        ssize_t n = ::recvfrom(fd.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from),
                               &len);
        if (n < 0) continue;
        std::string reply = "echo:" + std::string(buf, static_cast<size_t>(n));
        ::sendto(fd.get(), reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from),
                 len);
      }
    });
  }

  // Asks for a forward of a free host port to `container_port`; returns the host port.
  uint16_t forward(Proto proto, uint16_t container_port, uint32_t* fid = nullptr) {
    uint16_t port = free_port(proto == Proto::kTcp ? SOCK_STREAM : SOCK_DGRAM);
    std::string p(proto_name(proto));
    std::string spec = p + ":127.0.0.1:" + std::to_string(port) + ":" + p + ":127.0.0.1:" +
                       std::to_string(container_port);
    auto r = tree_->forward(spec);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
    if (!r) return 0;
    EXPECT_EQ(r->second, "OK 127.0.0.1:" + std::to_string(port) + "\n");
    if (fid) *fid = r->first;
    return port;
  }

  std::string dir_;
  std::unique_ptr<StreamAcceptor> vsock_;
  std::atomic<int> bad_handshakes_{0};
  std::atomic<int> streams_{0};
  std::atomic<bool> refuse_{false};
  std::unique_ptr<StreamAcceptor> tcp_echo_;
  uint16_t tcp_echo_port_ = 0;
  std::thread udp_thread_;
  uint16_t udp_echo_port_ = 0;
  std::atomic<bool> udp_stop_{false};
  std::unique_ptr<PortService> service_;
  std::unique_ptr<TestClient> client_;
  std::unique_ptr<PortTreeClient> tree_;
};

TEST_F(HostTest, TcpClientReachesTheContainerThroughTheGuestForwarder) {
  uint16_t port = forward(Proto::kTcp, tcp_echo_port_);
  auto c = connect_to(port);
  ASSERT_TRUE(c.has_value()) << c.error().message();

  ASSERT_TRUE(write_all(c->get(), "hello container"));
  ::shutdown(c->get(), SHUT_WR);  // half-close travels through both proxies
  std::string got;

  ASSERT_TRUE(read_to_eof(c->get(), got));
  EXPECT_EQ(got, "hello container");
  EXPECT_EQ(streams_.load(), 1);
  EXPECT_EQ(bad_handshakes_.load(), 0);
}

TEST_F(HostTest, HundredConcurrentConnectionsOfOneMebibyteArriveIntact) {
  uint16_t port = forward(Proto::kTcp, tcp_echo_port_);
  constexpr int kClients = 100;
  constexpr size_t kBytes = 1 << 20;
  std::vector<std::thread> threads;
  std::atomic<int> intact{0};

  for (int i = 0; i < kClients; i++) {
    threads.emplace_back([&, i] {
      std::string data(kBytes, '\0');
      std::mt19937 rng(static_cast<unsigned>(i));
      for (auto& ch : data) ch = static_cast<char>(rng());
      auto c = connect_to(port);
      if (!c) return;
      int fd = c->get();
      std::thread writer([fd, &data] {
        (void)write_all(fd, data);
        ::shutdown(fd, SHUT_WR);
      });
      std::string got;
      bool ok = read_to_eof(fd, got, 2 * kBytes);
      writer.join();
      if (ok && got == data) intact++;
    });
  }
  for (auto& t : threads) t.join();

  EXPECT_EQ(intact.load(), kClients);
  EXPECT_EQ(streams_.load(), kClients);
  EXPECT_EQ(bad_handshakes_.load(), 0);
}

TEST_F(HostTest, UdpDatagramsGoBothWaysWithAFlowPerClient) {
  uint16_t port = forward(Proto::kUdp, udp_echo_port_);
  auto target = SocketAddress::ipv4({0x7f000001, port});
  auto a = connect_udp(target);
  auto b = connect_udp(target);
  ASSERT_TRUE(a.has_value() && b.has_value());
  auto ask = [](int fd, const std::string& msg) -> std::string {
    if (::send(fd, msg.data(), msg.size(), 0) < 0) return "<send failed>";
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return "<no reply>";
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n < 0 ? "<recv failed>" : std::string(buf, static_cast<size_t>(n));
  };

  std::string r1 = ask(a->get(), "one");
  std::string r2 = ask(b->get(), "two");
  std::string r3 = ask(a->get(), "three");
  std::string big = ask(a->get(), std::string(60000, 'x'));
  std::string empty = ask(b->get(), "");

  EXPECT_EQ(r1, "echo:one");
  EXPECT_EQ(r2, "echo:two");
  EXPECT_EQ(r3, "echo:three");
  EXPECT_EQ(big, "echo:" + std::string(60000, 'x'));
  EXPECT_EQ(empty, "echo:");
  EXPECT_EQ(streams_.load(), 2);  // one vsock stream per client address
}

TEST_F(HostTest, IdleUdpFlowsExpireAndANewDatagramOpensANewStream) {
  uint16_t port = forward(Proto::kUdp, udp_echo_port_);
  auto a = connect_udp(SocketAddress::ipv4({0x7f000001, port}));
  ASSERT_TRUE(a.has_value());
  char buf[64];
  ASSERT_EQ(::send(a->get(), "x", 1, 0), 1);
  struct pollfd p = {a->get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  ASSERT_GT(::recv(a->get(), buf, sizeof buf, 0), 0);

  std::this_thread::sleep_for(800ms);  // udp_idle is 300 ms in this fixture
  ASSERT_EQ(::send(a->get(), "y", 1, 0), 1);
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  ssize_t n = ::recv(a->get(), buf, sizeof buf, 0);

  EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))), "echo:y");
  EXPECT_EQ(streams_.load(), 2);
}

TEST_F(HostTest, GuestRefusalClosesTheClient) {
  refuse_ = true;
  uint16_t port = forward(Proto::kTcp, tcp_echo_port_);
  auto c = connect_to(port);
  ASSERT_TRUE(c.has_value());
  (void)write_all(c->get(), "anyone there?");

  std::string got;
  EXPECT_TRUE(read_to_eof(c->get(), got));
  EXPECT_EQ(got, "");
}

TEST_F(HostTest, ContainerNotListeningClosesTheClient) {
  uint16_t closed = free_port();
  uint16_t port = forward(Proto::kTcp, closed);
  auto c = connect_to(port);
  ASSERT_TRUE(c.has_value());

  std::string got;
  EXPECT_TRUE(read_to_eof(c->get(), got));
  EXPECT_EQ(got, "");
}

TEST_F(HostTest, ClunkFreesThePortAndClosesItsConnections) {
  uint32_t fid = 0;
  uint16_t port = forward(Proto::kTcp, tcp_echo_port_, &fid);
  auto c = connect_to(port);
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(write_all(c->get(), "ping"));
  char buf[4];
  ASSERT_EQ(::recv(c->get(), buf, 4, MSG_WAITALL), 4);

  ASSERT_TRUE(tree_->clunk(fid));

  std::string rest;
  EXPECT_TRUE(read_to_eof(c->get(), rest));  // the open connection is closed
  EXPECT_TRUE(can_bind(port));
  EXPECT_TRUE(tree_->list().value().empty());
}

TEST_F(HostTest, PortInUseOnTheHostIsReportedThroughCtl) {
  uint16_t port = forward(Proto::kTcp, tcp_echo_port_);
  std::string spec = "tcp:127.0.0.1:" + std::to_string(port) + ":tcp:127.0.0.1:81";

  auto r = tree_->forward(spec);

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->second,
            "ERROR bind 127.0.0.1:" + std::to_string(port) + ": Address already in use\n");
}

}  // namespace
}  // namespace pinata::ports
