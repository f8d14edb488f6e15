// The control tree (host.h) served by a real p9::Session over a socketpair to the test client,
// with real host forwards on 127.0.0.1 (no guest: nothing connects through them here; the
// data path is tested in host_test.cc).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <thread>

#include "p9/server.h"
#include "ports/host.h"
#include "ports/test_support.h"

namespace pinata::ports {
namespace {

using p9::testing::TestClient;
using testing::can_bind;
using testing::free_port;
using testing::PortTreeClient;

class TreeTest : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }
  void TearDown() override { stop(); }

  void start(HostOptions options) {
    options.vsock_dir = "/nonexistent";  // no connection is made in these tests
    external_ = options.external_bind;
    auto service = PortService::create(options);
    ASSERT_TRUE(service.has_value());
    service_ = std::move(*service);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    session_ = std::make_unique<p9::Session>(service_->filesystem(), UniqueFd(sv[0]));
    thread_ = std::thread([this] { (void)session_->run(); });
    client_ = std::make_unique<TestClient>(UniqueFd(sv[1]));
    ASSERT_TRUE(client_->handshake(0));
    tree_ = std::make_unique<PortTreeClient>(*client_);
  }
  void stop() {
    if (!session_) return;
    session_->stop();
    thread_.join();
    session_.reset();
    tree_.reset();
    client_.reset();
    service_.reset();
  }

  static std::string tcp_spec(uint16_t port, const std::string& ip = "127.0.0.1") {
    return "tcp:" + ip + ":" + std::to_string(port) + ":tcp:172.17.0.2:80";
  }

  bool external_ = false;
  std::unique_ptr<PortService> service_;
  std::unique_ptr<p9::Session> session_;
  std::thread thread_;
  std::unique_ptr<TestClient> client_;
  std::unique_ptr<PortTreeClient> tree_;
};

TEST_F(TreeTest, ForwardListensAndAnswersOkWithTheBoundAddress) {
  uint16_t port = free_port();

  auto r = tree_->forward(tcp_spec(port));

  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->second, "OK 127.0.0.1:" + std::to_string(port) + "\n");
  EXPECT_FALSE(can_bind(port));
}

TEST_F(TreeTest, MkdirOfAnInvalidSpecIsEinval) {
  const char* bad[] = {"hello", "tcp:127.0.0.1:0:tcp:172.17.0.2:80",
                       "tcp:127.0.0.1:80:udp:172.17.0.2:80"};
  for (const char* name : bad) {
    auto r = tree_->mkdir(name);
    ASSERT_FALSE(r.has_value()) << name;
    EXPECT_EQ(r.error().code(), EINVAL) << name;
  }
  EXPECT_TRUE(tree_->list().value().empty());
}

TEST_F(TreeTest, ReaddirListsForwardsAndClunkStopsAndRemovesThem) {
  uint16_t a = free_port(), b = free_port();
  auto fa = tree_->forward(tcp_spec(a));
  auto fb = tree_->forward(tcp_spec(b));
  ASSERT_TRUE(fa.has_value() && fb.has_value());

  auto both = tree_->list();
  ASSERT_TRUE(tree_->clunk(fa->first));
  auto one = tree_->list();

  ASSERT_TRUE(both.has_value());
  std::vector<std::string> expected = {tcp_spec(a), tcp_spec(b)};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(*both, expected);
  EXPECT_EQ(one.value(), std::vector<std::string>{tcp_spec(b)});
  EXPECT_TRUE(can_bind(a)) << "the clunk must free the port before it is answered";
  EXPECT_FALSE(can_bind(b));
}

TEST_F(TreeTest, ClunkFreesThePortForANewForward) {
  uint16_t port = free_port();
  auto first = tree_->forward(tcp_spec(port));
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(tree_->clunk(first->first));

  auto second = tree_->forward(tcp_spec(port));

  ASSERT_TRUE(second.has_value()) << second.error().message();
  EXPECT_EQ(second->second, "OK 127.0.0.1:" + std::to_string(port) + "\n");
}

TEST_F(TreeTest, PortInUseIsAnErrorWithTheReason) {
  uint16_t port = free_port();
  UniqueFd busy(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto addr = SocketAddress::ipv4({0x7f000001, port});
  ASSERT_EQ(::bind(busy.get(), addr.get(), addr.length), 0);
  ASSERT_EQ(::listen(busy.get(), 1), 0);

  auto r = tree_->forward(tcp_spec(port));

  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->second,
            "ERROR bind 127.0.0.1:" + std::to_string(port) + ": Address already in use\n");
}

TEST_F(TreeTest, SpecThatDoesNotMatchTheDirectoryIsRefused) {
  uint16_t port = free_port();
  ASSERT_TRUE(tree_->mkdir(tcp_spec(port)));
  auto fid = tree_->open_ctl(tcp_spec(port));
  ASSERT_TRUE(fid.has_value());

  auto other = tree_->request(*fid, tcp_spec(port + 1 == 0 ? 1 : port + 1));
  auto garbage = tree_->request(*fid, "not a spec");

  EXPECT_EQ(other.value(), "ERROR spec written to ctl does not match the directory\n");
  ASSERT_TRUE(garbage.has_value());
  EXPECT_EQ(garbage->rfind("ERROR malformed spec: ", 0), 0u) << *garbage;
  EXPECT_TRUE(can_bind(port));
}

TEST_F(TreeTest, TrailingNewlineIsAcceptedAndARepeatedWriteKeepsTheForward) {
  uint16_t port = free_port();
  ASSERT_TRUE(tree_->mkdir(tcp_spec(port)));
  auto fid = tree_->open_ctl(tcp_spec(port));
  ASSERT_TRUE(fid.has_value());

  auto first = tree_->request(*fid, tcp_spec(port) + "\n");
  auto again = tree_->request(*fid, tcp_spec(port));

  EXPECT_EQ(first.value(), "OK 127.0.0.1:" + std::to_string(port) + "\n");
  EXPECT_EQ(again.value(), first.value());
}

TEST_F(TreeTest, ZeroAddressBindsLoopbackUnlessExternalBind) {
  uint16_t port = free_port();

  auto r = tree_->forward(tcp_spec(port, "0.0.0.0"));

  EXPECT_EQ(r.value().second, "OK 127.0.0.1:" + std::to_string(port) + "\n");
}

TEST_F(TreeTest, ExternalBindListensOnAllAddresses) {
  stop();
  HostOptions options;
  options.external_bind = true;
  start(options);
  uint16_t port = free_port();

  auto r = tree_->forward(tcp_spec(port, "0.0.0.0"));

  EXPECT_EQ(r.value().second, "OK 0.0.0.0:" + std::to_string(port) + "\n");
}

TEST_F(TreeTest, ActiveForwardCannotBeMadeTwiceButALeftoverDirectoryIsReplaced) {
  uint16_t active = free_port(), leftover = free_port();
  auto f = tree_->forward(tcp_spec(active));
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE(tree_->mkdir(tcp_spec(leftover)));  // a hook that died before opening ctl

  auto again = tree_->mkdir(tcp_spec(active));
  auto replaced = tree_->forward(tcp_spec(leftover));

  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), EEXIST);
  ASSERT_TRUE(replaced.has_value()) << replaced.error().message();
  EXPECT_EQ(replaced->second, "OK 127.0.0.1:" + std::to_string(leftover) + "\n");
}

TEST_F(TreeTest, ClosingTheConnectionStopsEveryForward) {
  uint16_t port = free_port();
  ASSERT_TRUE(tree_->forward(tcp_spec(port)).has_value());
  ASSERT_FALSE(can_bind(port));

  stop();  // the guest's mount went away (or the VM died)

  EXPECT_TRUE(can_bind(port));
}

TEST_F(TreeTest, UdpForwardBindsAUdpPort) {
  uint16_t port = free_port(SOCK_DGRAM);
  std::string spec = "udp:127.0.0.1:" + std::to_string(port) + ":udp:172.17.0.2:53";

  auto r = tree_->forward(spec);

  EXPECT_EQ(r.value().second, "OK 127.0.0.1:" + std::to_string(port) + "\n");
  EXPECT_FALSE(can_bind(port, SOCK_DGRAM));
  ASSERT_TRUE(tree_->clunk(r->first));
  EXPECT_TRUE(can_bind(port, SOCK_DGRAM));
}

TEST_F(TreeTest, RootRefusesFilesAndRemoval) {
  uint16_t port = free_port();
  ASSERT_TRUE(tree_->forward(tcp_spec(port)).has_value());

  auto rm = client_->call_as<p9::Runlinkat>(p9::Tunlinkat{0, tcp_spec(port), 0x200});
  ASSERT_TRUE(client_->walk(0, 50, ""));
  auto create = client_->call_as<p9::Rlcreate>(p9::Tlcreate{50, "file", p9::P9_DOTL_RDWR, 0644, 0});

  ASSERT_FALSE(rm.has_value());
  EXPECT_EQ(rm.error().code(), EROFS);
  ASSERT_FALSE(create.has_value());
  EXPECT_EQ(create.error().code(), EROFS);
}

}  // namespace
}  // namespace pinata::ports
