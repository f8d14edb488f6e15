#include "vhost/backend.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "base/io.h"
#include "vhost/descriptor_chain.h"
#include "vhost/message_io.h"
#include "vhost/mock_driver.h"

namespace pinata::vhost {
namespace {

using testing::MemfdMemory;
using testing::MockDriver;

constexpr uint64_t kGpa = 0;
constexpr uint64_t kMemSize = 1 << 20;
constexpr uint64_t kVa = 0x7f3400000000;
constexpr uint16_t kQueueSize = 16;
constexpr uint64_t kDeviceFeatures = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX);

// A tiny device: 2 queues; each chain's readable bytes are copied into its writable part.
class EchoDevice : public VhostUserDevice {
 public:
  uint64_t features() const override { return kDeviceFeatures; }
  uint64_t protocol_features() const override { return bit(PROTOCOL_F_CONFIG); }
  uint32_t num_queues() const override { return 2; }
  void set_features(uint64_t acked) override { acked_ = acked; }
  Status read_config(uint32_t offset, std::span<uint8_t> out) override {
    uint8_t config[8] = {3, 0, 0, 0, 0, 0, 0, 0};  // like vsock: guest_cid = 3
    if (offset + out.size() > sizeof config) return fail(ErrorKind::kInvalidInput, "past config");
    std::memcpy(out.data(), config + offset, out.size());
    return {};
  }
  void queue_ready(uint32_t index, Virtqueue&, int) override { ready[index]++; }
  void queue_stopped(uint32_t index, Virtqueue&) override { stopped[index]++; }
  void handle_kick(uint32_t index, Virtqueue& q) override {
    kicks[index]++;
    while (auto chain = q.pop()) {
      Reader r(*chain);
      Writer w(*chain);
      std::vector<uint8_t> buf(r.available());
      (void)r.read(buf.data(), buf.size());
      size_t n = w.write_some(buf);
      (void)q.add_used(*chain, static_cast<uint32_t>(n));
    }
  }
  void reset() override { resets++; }

  uint64_t acked_ = 0;
  int ready[2] = {}, stopped[2] = {}, kicks[2] = {};
  int resets = 0;
};

UniqueFd make_eventfd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }

bool readable(int fd) {
  struct pollfd p {
    fd, POLLIN, 0
  };
  return ::poll(&p, 1, 0) == 1;
}

uint64_t read_counter(int fd) {
  uint64_t v = 0;
  if (::read(fd, &v, sizeof v) != 8) return 0;
  return v;
}

class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_ = std::move(*EventLoop::create());
    backend_ = std::make_unique<VhostUserBackend>(*loop_, device_, "test");
    connect();
    auto m = MemfdMemory::create(kGpa, kMemSize, kVa);
    ASSERT_TRUE(m.has_value());
    mem_ = std::move(*m);
    driver_ = std::make_unique<MockDriver>(mem_.memory, mem_.region, kQueueSize, 0x1000, 0x20000);
  }

  void connect() {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    frontend_.reset(sv[0]);
    ASSERT_TRUE(backend_->serve(UniqueFd(sv[1])));
  }

  // Runs the loop until it has nothing more to do.
  void pump() {
    for (int i = 0; i < 100; i++) {
      auto n = loop_->run_once(0);
      ASSERT_TRUE(n.has_value());
      if (*n == 0) return;
    }
  }

  void send(Request r, const Payload& p, std::vector<int> fds = {}, uint32_t flags = kVersion) {
    auto bytes = encode(static_cast<uint32_t>(r), flags, p);
    ASSERT_TRUE(send_message(frontend_.get(), bytes, fds));
    pump();
  }

  // Sends a request and returns its reply (nullopt if none arrived).
  std::optional<Message> call(Request r, const Payload& p, std::vector<int> fds = {},
                              uint32_t flags = kVersion) {
    send(r, p, std::move(fds), flags);
    if (!readable(frontend_.get())) return std::nullopt;
    auto got = receive_message(frontend_.get());
    if (!got || !*got) return std::nullopt;
    auto m = decode_reply((*got)->header, (*got)->payload, static_cast<uint32_t>(r));
    EXPECT_TRUE(m.has_value()) << m.error().message();
    if (!m) return std::nullopt;
    return std::move(*m);
  }

  uint64_t call_u64(Request r, const Payload& p = std::monostate{}, std::vector<int> fds = {},
                    uint32_t flags = kVersion) {
    auto m = call(r, p, std::move(fds), flags);
    EXPECT_TRUE(m.has_value()) << request_name(static_cast<uint32_t>(r));
    return m ? std::get<uint64_t>(m->payload) : ~0ull;
  }

  // QEMU's order: features, protocol features (REPLY_ACK), owner, memory table.
  void negotiate(bool protocol_features = true) {
    call_u64(Request::GET_FEATURES);
    uint64_t features = kDeviceFeatures | (protocol_features ? bit(kFeatureProtocolFeatures) : 0);
    if (protocol_features) {
      call_u64(Request::GET_PROTOCOL_FEATURES);
      send(Request::SET_PROTOCOL_FEATURES,
           uint64_t{bit(PROTOCOL_F_MQ) | bit(PROTOCOL_F_REPLY_ACK) | bit(PROTOCOL_F_CONFIG)});
    }
    send(Request::SET_OWNER, std::monostate{});
    send(Request::SET_FEATURES, features);
    MemoryTable t;
    t.regions.push_back(mem_.region);
    UniqueFd fd = mem_.dup_fd();
    if (protocol_features) {
      EXPECT_EQ(call_u64(Request::SET_MEM_TABLE, t, {fd.get()}, kVersion | kFlagNeedReply), 0u);
    } else {
      send(Request::SET_MEM_TABLE, t, {fd.get()});
    }
  }

  void setup_queue(uint32_t index, bool enable = true) {
    send(Request::SET_VRING_NUM, VringState{index, kQueueSize});
    send(Request::SET_VRING_ADDR,
         VringAddr{index, 0, driver_->to_va(driver_->desc_gpa()),
                   driver_->to_va(driver_->used_gpa()), driver_->to_va(driver_->avail_gpa()), 0});
    send(Request::SET_VRING_BASE, VringState{index, 0});
    call_[index] = make_eventfd();
    kick_[index] = make_eventfd();
    err_[index] = make_eventfd();
    send(Request::SET_VRING_CALL, uint64_t{index}, {call_[index].get()});
    send(Request::SET_VRING_ERR, uint64_t{index}, {err_[index].get()});
    send(Request::SET_VRING_KICK, uint64_t{index}, {kick_[index].get()});
    if (enable) send(Request::SET_VRING_ENABLE, VringState{index, 1});
  }

  void kick(uint32_t index) {
    uint64_t one = 1;
    ASSERT_EQ(::write(kick_[index].get(), &one, 8), 8);
    pump();
  }

  // Adds "ping"-style request/response chain; returns the response buffer's GPA.
  uint64_t add_echo(const std::string& text) {
    uint64_t in = driver_->put(text);
    uint64_t out = driver_->alloc(64);
    driver_->add_chain({{in, static_cast<uint32_t>(text.size()), false}, {out, 64, true}});
    return out;
  }

  EchoDevice device_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<VhostUserBackend> backend_;
  UniqueFd frontend_;
  MemfdMemory mem_;
  std::unique_ptr<MockDriver> driver_;
  UniqueFd call_[2], kick_[2], err_[2];
};

TEST_F(BackendTest, OffersFeaturesAndProtocolFeatures) {
  uint64_t features = call_u64(Request::GET_FEATURES);
  uint64_t protocol = call_u64(Request::GET_PROTOCOL_FEATURES);
  uint64_t queues = call_u64(Request::GET_QUEUE_NUM);

  EXPECT_EQ(features, kDeviceFeatures | bit(kFeatureProtocolFeatures));
  EXPECT_TRUE(protocol & bit(PROTOCOL_F_MQ));
  EXPECT_TRUE(protocol & bit(PROTOCOL_F_REPLY_ACK));
  EXPECT_TRUE(protocol & bit(PROTOCOL_F_CONFIG));
  EXPECT_FALSE(protocol & bit(PROTOCOL_F_LOG_SHMFD));
  EXPECT_EQ(queues, 2u);
}

TEST_F(BackendTest, AnswersGetConfigBeforeAnyMemoryTable) {
  // QEMU's order while creating vhost-user-vsock: protocol features, then GET_CONFIG(0, 8)
  // and SET_VRING_CALL/ERR with fds, all before a memory table.
  call_u64(Request::GET_PROTOCOL_FEATURES);
  send(Request::SET_PROTOCOL_FEATURES,
       uint64_t{bit(PROTOCOL_F_CONFIG) | bit(PROTOCOL_F_REPLY_ACK)});
  UniqueFd call_fd = make_eventfd();
  send(Request::SET_VRING_CALL, uint64_t{0}, {call_fd.get()});

  auto reply = call(Request::GET_CONFIG, ConfigSpace{0, 8, 0, std::vector<uint8_t>(8)});
  auto part = call(Request::GET_CONFIG, ConfigSpace{4, 4, 0, {}});
  auto bad = call(Request::GET_CONFIG, ConfigSpace{0, 16, 0, {}});

  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->header.size, 12u + 8u);
  auto c = std::get<ConfigSpace>(reply->payload);
  EXPECT_EQ(c.size, 8u);
  EXPECT_EQ(c.data, (std::vector<uint8_t>{3, 0, 0, 0, 0, 0, 0, 0}));
  ASSERT_TRUE(part.has_value());
  EXPECT_EQ(std::get<ConfigSpace>(part->payload).data.size(), 4u);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->header.size, 0u);  // the protocol's "failed"
  EXPECT_TRUE(backend_->connected());
}

TEST_F(BackendTest, KickedChainIsProcessedAndCallSignalled) {
  negotiate();
  setup_queue(0);
  ASSERT_EQ(device_.ready[0], 1);
  uint64_t out = add_echo("ping");

  kick(0);

  EXPECT_EQ(driver_->used_idx(), 1);
  EXPECT_EQ(driver_->used_elem(0).len, 4u);
  EXPECT_EQ(driver_->get(out, 4), (std::vector<uint8_t>{'p', 'i', 'n', 'g'}));
  EXPECT_EQ(read_counter(call_[0].get()), 1u);
  EXPECT_EQ(device_.acked_, kDeviceFeatures);
  EXPECT_TRUE(backend_->queue(0).event_idx());
}

TEST_F(BackendTest, BuffersQueuedBeforeEnableAreProcessedOnEnable) {
  negotiate();
  setup_queue(0, /*enable=*/false);
  add_echo("early");
  kick(0);
  EXPECT_EQ(driver_->used_idx(), 0);

  send(Request::SET_VRING_ENABLE, VringState{0, 1});

  EXPECT_EQ(driver_->used_idx(), 1);
}

TEST_F(BackendTest, WithoutProtocolFeaturesRingRunsOnKick) {
  negotiate(/*protocol_features=*/false);
  setup_queue(0, /*enable=*/false);
  add_echo("x");

  kick(0);

  EXPECT_EQ(driver_->used_idx(), 1);
}

TEST_F(BackendTest, KickFdBeforeMemoryTableStartsQueueWhenMemoryArrives) {
  call_u64(Request::GET_FEATURES);
  send(Request::SET_FEATURES, uint64_t{kDeviceFeatures});
  setup_queue(1, false);
  add_echo("late");
  EXPECT_EQ(device_.ready[1], 0);

  MemoryTable t;
  t.regions.push_back(mem_.region);
  UniqueFd fd = mem_.dup_fd();
  send(Request::SET_MEM_TABLE, t, {fd.get()});

  EXPECT_EQ(device_.ready[1], 1);
  EXPECT_EQ(driver_->used_idx(), 1);
}

TEST_F(BackendTest, GetVringBaseStopsQueueAndReportsNextAvail) {
  negotiate();
  setup_queue(0);
  add_echo("one");
  kick(0);

  auto reply = call(Request::GET_VRING_BASE, VringState{0, 0});
  add_echo("two");
  kick(0);

  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(std::get<VringState>(reply->payload).index, 0u);
  EXPECT_EQ(std::get<VringState>(reply->payload).num, 1u);
  EXPECT_EQ(device_.stopped[0], 1);
  EXPECT_EQ(driver_->used_idx(), 1);  // "two" not processed after the stop
}

TEST_F(BackendTest, QueueRestartsFromReportedBase) {
  negotiate();
  setup_queue(0);
  add_echo("one");
  kick(0);
  auto base = call(Request::GET_VRING_BASE, VringState{0, 0});
  ASSERT_TRUE(base.has_value());

  send(Request::SET_VRING_BASE, VringState{0, std::get<VringState>(base->payload).num});
  kick_[0] = make_eventfd();
  send(Request::SET_VRING_KICK, uint64_t{0}, {kick_[0].get()});
  add_echo("two");
  kick(0);

  EXPECT_EQ(device_.ready[0], 2);
  EXPECT_EQ(driver_->used_idx(), 2);
}

TEST_F(BackendTest, DisconnectResetsDeviceAndNextFrontendIsServed) {
  negotiate();
  setup_queue(0);
  int resets_before = device_.resets;

  frontend_.reset();
  pump();

  EXPECT_FALSE(backend_->connected());
  EXPECT_GT(device_.resets, resets_before);
  EXPECT_EQ(device_.stopped[0], 1);
  EXPECT_EQ(backend_->memory(), nullptr);
  connect();
  EXPECT_EQ(call_u64(Request::GET_QUEUE_NUM), 2u);
  negotiate();
  setup_queue(0);
  add_echo("again");
  kick(0);
  EXPECT_EQ(driver_->used_idx(), 1);
}

TEST_F(BackendTest, BadVersionDropsTheConnection) {
  uint32_t raw[3] = {1, 0 /* version 0 */, 0};
  ASSERT_EQ(::write(frontend_.get(), raw, sizeof raw), 12);
  pump();

  char c;
  EXPECT_FALSE(backend_->connected());
  EXPECT_EQ(::read(frontend_.get(), &c, 1), 0);  // EOF
}

TEST_F(BackendTest, UnknownRequestDropsTheConnection) {
  send(static_cast<Request>(99), std::monostate{});

  EXPECT_FALSE(backend_->connected());
}

TEST_F(BackendTest, MalformedRequestWithReplyAckGetsAnErrorReply) {
  negotiate();
  MemoryTable t;
  t.regions.push_back(mem_.region);

  // One region described, no fd sent.
  uint64_t status = call_u64(Request::SET_MEM_TABLE, t, {}, kVersion | kFlagNeedReply);

  EXPECT_NE(status, 0u);
  EXPECT_TRUE(backend_->connected());
  EXPECT_NE(backend_->memory(), nullptr);  // the previous table is still in place
}

TEST_F(BackendTest, LoggingIsRefusedPolitely) {
  negotiate();
  UniqueFd log = make_eventfd();

  uint64_t status =
      call_u64(Request::SET_LOG_BASE, LogPayload{4096, 0}, {log.get()}, kVersion | kFlagNeedReply);
  send(Request::SET_LOG_FD, std::monostate{}, {log.get()});

  EXPECT_NE(status, 0u);
  EXPECT_TRUE(backend_->connected());
}

TEST_F(BackendTest, UnofferedFeaturesAndBadIndicesAreErrors) {
  negotiate();

  uint64_t features = call_u64(Request::SET_FEATURES, uint64_t{kDeviceFeatures | bit(5)}, {},
                               kVersion | kFlagNeedReply);
  uint64_t index =
      call_u64(Request::SET_VRING_NUM, VringState{7, 16}, {}, kVersion | kFlagNeedReply);
  uint64_t size = call_u64(Request::SET_VRING_NUM, VringState{0, 3}, {}, kVersion | kFlagNeedReply);
  uint64_t ok = call_u64(Request::SET_VRING_NUM, VringState{0, 16}, {}, kVersion | kFlagNeedReply);

  EXPECT_NE(features, 0u);
  EXPECT_NE(index, 0u);
  EXPECT_NE(size, 0u);
  EXPECT_EQ(ok, 0u);
  EXPECT_TRUE(backend_->connected());
}

TEST_F(BackendTest, GetVringBaseForABadIndexDropsTheConnection) {
  negotiate();

  auto reply = call(Request::GET_VRING_BASE, VringState{9, 0});

  EXPECT_FALSE(reply.has_value());
  EXPECT_FALSE(backend_->connected());
}

TEST_F(BackendTest, HostileRingBreaksOnlyThatQueue) {
  negotiate();
  setup_queue(0);
  setup_queue(1);
  driver_->set_avail_idx(1000);  // both queues share this ring layout in the test...
  // ...so give queue 1 its own, valid ring.
  MockDriver other(mem_.memory, mem_.region, kQueueSize, 0x10000, 0x30000);
  send(Request::GET_VRING_BASE, VringState{1, 0});
  send(Request::SET_VRING_ADDR,
       VringAddr{1, 0, other.to_va(other.desc_gpa()), other.to_va(other.used_gpa()),
                 other.to_va(other.avail_gpa()), 0});
  send(Request::SET_VRING_BASE, VringState{1, 0});
  kick_[1] = make_eventfd();
  send(Request::SET_VRING_KICK, uint64_t{1}, {kick_[1].get()});

  kick(0);
  uint64_t in = other.put("fine");
  uint64_t out = other.alloc(8);
  other.add_chain({{in, 4, false}, {out, 8, true}});
  kick(1);

  EXPECT_TRUE(backend_->queue(0).broken());
  EXPECT_EQ(read_counter(err_[0].get()), 1u);
  EXPECT_TRUE(backend_->connected());
  EXPECT_FALSE(backend_->queue(1).broken());
  EXPECT_EQ(other.used_idx(), 1);
}

TEST(BackendListen, ServesOneFrontendAtATimeOnAPrivateSocket) {
  char dir_template[] = "/tmp/vhost-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::string path = std::string(dir_template) + "/dev.sock";
  EchoDevice device;
  auto loop = std::move(*EventLoop::create());
  auto pump = [&] {
    for (int i = 0; i < 100; i++) {
      if (*loop->run_once(0) == 0) return;
    }
  };
  auto backend = std::make_unique<VhostUserBackend>(*loop, device, "listen-test");
  ASSERT_TRUE(backend->listen(path));
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);

  auto first = unix_connect(path);
  ASSERT_TRUE(first.has_value());
  pump();
  auto second = unix_connect(path);
  ASSERT_TRUE(second.has_value());
  pump();
  char c;
  ssize_t second_read = ::read(second->get(), &c, 1);
  bool connected_with_first = backend->connected();
  first->reset();
  pump();
  bool connected_after_close = backend->connected();
  auto third = unix_connect(path);
  ASSERT_TRUE(third.has_value());
  pump();
  auto bytes = encode(static_cast<uint32_t>(Request::GET_QUEUE_NUM), kVersion, std::monostate{});
  ASSERT_TRUE(send_message(third->get(), bytes));
  pump();
  auto reply = receive_message(third->get());

  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(second_read, 0);  // refused: closed at once
  EXPECT_TRUE(connected_with_first);
  EXPECT_FALSE(connected_after_close);
  ASSERT_TRUE(reply.has_value() && reply->has_value());
  EXPECT_EQ((*reply)->header.request, static_cast<uint32_t>(Request::GET_QUEUE_NUM));
  backend.reset();
  EXPECT_NE(::access(path.c_str(), F_OK), 0);  // socket removed
  ::rmdir(dir_template);
}

}  // namespace
}  // namespace pinata::vhost
