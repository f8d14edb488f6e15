#include "vhost/message.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "vhost/message_io.h"

namespace pinata::vhost {
namespace {

// Encodes a request as a frontend would, then decodes it as the backend does.
Result<Message> roundtrip(Request r, const Payload& p, size_t fds = 0, uint32_t flags = kVersion) {
  auto bytes = encode(static_cast<uint32_t>(r), flags, p);
  TRY_ASSIGN(Header h, decode_header(bytes));
  return decode_request(h, std::span<const uint8_t>(bytes).subspan(kHeaderSize), fds);
}

// Raw bytes: header + arbitrary payload.
std::vector<uint8_t> raw(uint32_t request, uint32_t flags, std::vector<uint8_t> payload) {
  auto out = encode(request, flags, RawPayload{std::move(payload)});
  return out;
}

Result<Message> decode_raw(const std::vector<uint8_t>& bytes, size_t fds = 0) {
  TRY_ASSIGN(Header h, decode_header(bytes));
  return decode_request(h, std::span<const uint8_t>(bytes).subspan(kHeaderSize), fds);
}

TEST(Message, DecodesRequestsWithoutPayload) {
  for (Request r : {Request::GET_FEATURES, Request::GET_PROTOCOL_FEATURES, Request::GET_QUEUE_NUM,
                    Request::SET_OWNER, Request::RESET_OWNER, Request::RESET_DEVICE,
                    Request::GET_MAX_MEM_SLOTS}) {
    auto m = roundtrip(r, std::monostate{});
    ASSERT_TRUE(m.has_value()) << request_name(static_cast<uint32_t>(r));
    EXPECT_TRUE(std::holds_alternative<std::monostate>(m->payload));
    EXPECT_FALSE(roundtrip(r, uint64_t{0}).has_value()) << request_name(static_cast<uint32_t>(r));
    EXPECT_FALSE(roundtrip(r, std::monostate{}, 1).has_value());
  }
}

TEST(Message, DecodesU64Requests) {
  for (Request r : {Request::SET_FEATURES, Request::SET_PROTOCOL_FEATURES, Request::SET_STATUS}) {
    auto m = roundtrip(r, uint64_t{0x140000000ull});
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(std::get<uint64_t>(m->payload), 0x140000000ull);
    EXPECT_FALSE(roundtrip(r, std::monostate{}).has_value());
    EXPECT_FALSE(roundtrip(r, ConfigSpace{}).has_value());  // 12 bytes
  }
}

TEST(Message, DecodesVringStateRequests) {
  for (Request r : {Request::SET_VRING_NUM, Request::SET_VRING_BASE, Request::GET_VRING_BASE,
                    Request::SET_VRING_ENABLE}) {
    auto m = roundtrip(r, VringState{1, 256});
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(std::get<VringState>(m->payload).index, 1u);
    EXPECT_EQ(std::get<VringState>(m->payload).num, 256u);
    EXPECT_EQ(m->vring_index(), 1u);
    EXPECT_FALSE(roundtrip(r, std::monostate{}).has_value());
    EXPECT_FALSE(roundtrip(r, VringState{1, 256}, 1).has_value());
  }
}

TEST(Message, DecodesVringAddr) {
  VringAddr a{2, 0, 0x7f0000001000, 0x7f0000003000, 0x7f0000002000, 0};

  auto m = roundtrip(Request::SET_VRING_ADDR, a);

  ASSERT_TRUE(m.has_value());
  auto got = std::get<VringAddr>(m->payload);
  EXPECT_EQ(got.index, 2u);
  EXPECT_EQ(got.descriptor, 0x7f0000001000u);
  EXPECT_EQ(got.used, 0x7f0000003000u);
  EXPECT_EQ(got.available, 0x7f0000002000u);
}

TEST(Message, VringFdRequestsNeedOneFdUnlessNoFdBit) {
  for (Request r : {Request::SET_VRING_KICK, Request::SET_VRING_CALL, Request::SET_VRING_ERR}) {
    auto with_fd = roundtrip(r, uint64_t{0x102 & 0xff}, 1);
    auto no_fd = roundtrip(r, uint64_t{0x103}, 0);
    ASSERT_TRUE(with_fd.has_value());
    ASSERT_TRUE(no_fd.has_value());
    EXPECT_EQ(with_fd->vring_index(), 2u);
    EXPECT_TRUE(with_fd->vring_has_fd());
    EXPECT_EQ(no_fd->vring_index(), 3u);
    EXPECT_FALSE(no_fd->vring_has_fd());
    EXPECT_FALSE(roundtrip(r, uint64_t{2}, 0).has_value());
    EXPECT_FALSE(roundtrip(r, uint64_t{2}, 2).has_value());
    EXPECT_FALSE(roundtrip(r, uint64_t{0x102}, 1).has_value());
  }
}

TEST(Message, VringIndexIsMaskedToLowByte) {
  auto m = roundtrip(Request::SET_VRING_CALL, uint64_t{0xff05}, 0);  // bit 8 set: no fd

  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->vring_index(), 5u);
}

TEST(Message, DecodesMemTableWithMatchingFds) {
  MemoryTable t;
  t.regions.push_back({0, 0x8000000, 0x7f0000000000, 0});
  t.regions.push_back({0x100000000, 0x1000000, 0x7f1000000000, 0x8000000});

  auto m = roundtrip(Request::SET_MEM_TABLE, t, 2);

  ASSERT_TRUE(m.has_value());
  auto got = std::get<MemoryTable>(m->payload);
  ASSERT_EQ(got.regions.size(), 2u);
  EXPECT_EQ(got.regions[1].guest_phys_addr, 0x100000000u);
  EXPECT_EQ(got.regions[1].mmap_offset, 0x8000000u);
  EXPECT_FALSE(roundtrip(Request::SET_MEM_TABLE, t, 1).has_value());
  EXPECT_FALSE(roundtrip(Request::SET_MEM_TABLE, t, 3).has_value());
}

TEST(Message, RejectsMemTableWithTooManyRegionsOrWrongSize) {
  std::vector<uint8_t> nine(8 + 9 * 32, 0);
  nine[0] = 9;
  std::vector<uint8_t> short_table(8 + 32 + 4, 0);
  short_table[0] = 1;
  std::vector<uint8_t> no_count(4, 0);

  EXPECT_FALSE(decode_raw(raw(5, kVersion, nine), 8).has_value());
  EXPECT_FALSE(decode_raw(raw(5, kVersion, short_table), 1).has_value());
  EXPECT_FALSE(decode_raw(raw(5, kVersion, no_count), 0).has_value());
}

TEST(Message, AcceptsFullSizeMemTablePayload) {
  std::vector<uint8_t> full(8 + 8 * 32, 0);
  full[0] = 1;

  auto m = decode_raw(raw(5, kVersion, full), 1);

  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(std::get<MemoryTable>(m->payload).regions.size(), 1u);
}

TEST(Message, DecodesGetConfigWithOrWithoutDataBytes) {
  ConfigSpace with_data{0, 8, 0, std::vector<uint8_t>(8, 0)};
  ConfigSpace header_only{0, 8, 0, {}};

  auto a = roundtrip(Request::GET_CONFIG, with_data);
  auto b = roundtrip(Request::GET_CONFIG, header_only);

  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(std::get<ConfigSpace>(a->payload).size, 8u);
  EXPECT_EQ(std::get<ConfigSpace>(b->payload).offset, 0u);
}

TEST(Message, RejectsBadConfigRanges) {
  EXPECT_FALSE(roundtrip(Request::GET_CONFIG, ConfigSpace{0, 257, 0, {}}).has_value());
  EXPECT_FALSE(roundtrip(Request::GET_CONFIG, ConfigSpace{250, 8, 0, {}}).has_value());
  EXPECT_FALSE(roundtrip(Request::GET_CONFIG, ConfigSpace{0xffffffff, 2, 0, {}}).has_value());
  EXPECT_FALSE(
      roundtrip(Request::GET_CONFIG, ConfigSpace{0, 8, 0, std::vector<uint8_t>(4)}).has_value());
  EXPECT_FALSE(roundtrip(Request::SET_CONFIG, ConfigSpace{0, 8, 0, {}}).has_value());
  EXPECT_FALSE(decode_raw(raw(24, kVersion, {1, 2, 3})).has_value());
}

TEST(Message, DecodesSetConfig) {
  auto m = roundtrip(Request::SET_CONFIG, ConfigSpace{4, 2, 0, {0xaa, 0xbb}});

  ASSERT_TRUE(m.has_value());
  auto c = std::get<ConfigSpace>(m->payload);
  EXPECT_EQ(c.offset, 4u);
  EXPECT_EQ(c.data, (std::vector<uint8_t>{0xaa, 0xbb}));
}

TEST(Message, DecodesLogAndInflightPayloads) {
  auto log_base = roundtrip(Request::SET_LOG_BASE, LogPayload{0x1000, 0}, 1);
  auto log_fd = roundtrip(Request::SET_LOG_FD, std::monostate{}, 1);
  auto inflight = roundtrip(Request::GET_INFLIGHT_FD, InflightPayload{0, 0, 2, 256});

  ASSERT_TRUE(log_base.has_value());
  ASSERT_TRUE(log_fd.has_value());
  ASSERT_TRUE(inflight.has_value());
  EXPECT_EQ(std::get<LogPayload>(log_base->payload).mmap_size, 0x1000u);
  EXPECT_EQ(std::get<InflightPayload>(inflight->payload).queue_size, 256u);
  EXPECT_FALSE(roundtrip(Request::SET_LOG_FD, std::monostate{}, 0).has_value());
}

TEST(Message, DecodesMemRegionMessages) {
  auto add = roundtrip(Request::ADD_MEM_REG, SingleRegion{{0x1000, 0x2000, 0x3000, 0}}, 1);
  auto add_no_fd = roundtrip(Request::ADD_MEM_REG, SingleRegion{{0x1000, 0x2000, 0x3000, 0}}, 0);

  ASSERT_TRUE(add.has_value());
  EXPECT_EQ(std::get<SingleRegion>(add->payload).region.memory_size, 0x2000u);
  EXPECT_FALSE(add_no_fd.has_value());
}

TEST(Message, RejectsBadVersionsAndFlags) {
  auto v0 = raw(1, 0, {});
  auto v2 = raw(1, 2, {});
  auto reply_flag = raw(1, kVersion | kFlagReply, {});

  EXPECT_FALSE(decode_header(v0).has_value());
  EXPECT_FALSE(decode_header(v2).has_value());
  EXPECT_FALSE(decode_raw(reply_flag).has_value());
}

TEST(Message, NeedReplyFlagIsVisible) {
  auto m = roundtrip(Request::SET_MEM_TABLE, MemoryTable{}, 0, kVersion | kFlagNeedReply);

  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(m->header.need_reply());
}

TEST(Message, RejectsUnknownRequestsAndOversizePayloads) {
  std::vector<uint8_t> big_header(12);
  uint32_t fields[3] = {1, kVersion, 4097};
  std::memcpy(big_header.data(), fields, 12);

  EXPECT_FALSE(decode_raw(raw(0, kVersion, {})).has_value());
  EXPECT_FALSE(decode_raw(raw(41, kVersion, {})).has_value());
  EXPECT_FALSE(decode_raw(raw(0xffffffff, kVersion, {})).has_value());
  EXPECT_FALSE(decode_header(big_header).has_value());
  EXPECT_FALSE(decode_header(std::vector<uint8_t>(11)).has_value());
}

TEST(Message, RejectsPayloadSizeDifferentFromHeader) {
  auto bytes = encode(1, kVersion, std::monostate{});
  Header h = *decode_header(bytes);
  h.size = 4;

  auto m = decode_request(h, std::vector<uint8_t>(3), 0);

  EXPECT_FALSE(m.has_value());
}

TEST(Message, RejectsMoreThanEightFds) {
  EXPECT_FALSE(roundtrip(Request::SET_MEM_TABLE, MemoryTable{}, 9).has_value());
}

TEST(Message, EncodesRepliesAndDecodesThem) {
  auto u64 = encode_reply(1, uint64_t{0x100000001ull});
  auto state = encode_reply(11, VringState{1, 42});
  auto config = encode_reply(24, ConfigSpace{0, 8, 0, {3, 0, 0, 0, 0, 0, 0, 0}});
  auto config_failed = encode_reply(24, std::monostate{});

  auto d1 = decode_reply(*decode_header(u64), std::span(u64).subspan(12), 1);
  auto d2 = decode_reply(*decode_header(state), std::span(state).subspan(12), 11);
  auto d3 = decode_reply(*decode_header(config), std::span(config).subspan(12), 24);
  auto d4 = decode_reply(*decode_header(config_failed), std::span(config_failed).subspan(12), 24);

  EXPECT_EQ(u64.size(), 20u);
  EXPECT_EQ(config.size(), 12u + 12u + 8u);
  ASSERT_TRUE(d1 && d2 && d3 && d4);
  EXPECT_EQ(std::get<uint64_t>(d1->payload), 0x100000001ull);
  EXPECT_EQ(std::get<VringState>(d2->payload).num, 42u);
  EXPECT_EQ(std::get<ConfigSpace>(d3->payload).data[0], 3);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(d4->payload));
  EXPECT_FALSE(decode_reply(*decode_header(u64), std::span(u64).subspan(12), 2).has_value());
}

// ---- socket I/O ----

struct Pair {
  UniqueFd a, b;
};
Pair socket_pair() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

TEST(MessageIo, ReceivesMessageWithFdsAsCloexec) {
  auto p = socket_pair();
  UniqueFd e(::eventfd(0, EFD_CLOEXEC));
  int fds[] = {e.get()};
  auto bytes = encode(13, kVersion, uint64_t{1});
  ASSERT_TRUE(send_message(p.a.get(), bytes, fds));

  auto m = receive_request(p.b.get());

  ASSERT_TRUE(m.has_value());
  ASSERT_TRUE(m->has_value());
  ASSERT_EQ((*m)->fds.size(), 1u);
  EXPECT_EQ((*m)->vring_index(), 1u);
  EXPECT_TRUE(::fcntl((*m)->fds[0].get(), F_GETFD) & FD_CLOEXEC);
}

TEST(MessageIo, OrderlyEofIsNotAnError) {
  auto p = socket_pair();
  p.a.reset();

  auto m = receive_message(p.b.get());

  ASSERT_TRUE(m.has_value());
  EXPECT_FALSE(m->has_value());
}

TEST(MessageIo, EofInsideMessageIsAnError) {
  auto p = socket_pair();
  auto bytes = encode(2, kVersion, uint64_t{1});
  ASSERT_TRUE(send_message(p.a.get(), std::span(bytes).first(15)));
  p.a.reset();

  auto m = receive_message(p.b.get());

  EXPECT_FALSE(m.has_value());
}

TEST(MessageIo, KeepsAtMostEightFdsAndClosesTheRest) {
  auto p = socket_pair();
  std::vector<UniqueFd> owned;
  std::vector<int> raw_fds;
  for (int i = 0; i < 10; i++) {
    owned.emplace_back(::eventfd(0, EFD_CLOEXEC));
    raw_fds.push_back(owned.back().get());
  }
  auto bytes = encode(1, kVersion, std::monostate{});
  // send_message refuses more than 8 fds, so build the hostile message by hand.
  struct iovec iov {
    bytes.data(), bytes.size()
  };
  alignas(struct cmsghdr) char control[CMSG_SPACE(10 * sizeof(int))];
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(10 * sizeof(int));
  std::memcpy(CMSG_DATA(c), raw_fds.data(), 10 * sizeof(int));
  ASSERT_EQ(::sendmsg(p.a.get(), &msg, 0), static_cast<ssize_t>(bytes.size()));
  int probe = ::eventfd(0, EFD_CLOEXEC);  // the lowest free fd number before receiving
  ::close(probe);

  auto first = receive_message(p.b.get());

  ASSERT_TRUE(first.has_value() && first->has_value());
  EXPECT_EQ((*first)->fds.size(), 8u);
  // The two extras were closed: the next fd numbers after the kept ones are free again.
  int after = ::eventfd(0, EFD_CLOEXEC);
  int max_kept = 0;
  for (auto& fd : (*first)->fds) max_kept = std::max(max_kept, fd.get());
  EXPECT_LT(after, max_kept + 2);
  ::close(after);
  auto decoded = decode_request((*first)->header, (*first)->payload, (*first)->fds.size());
  EXPECT_FALSE(decoded.has_value());  // GET_FEATURES carries no fds
}

TEST(MessageIo, FdsSpreadOverHeaderAndPayloadAreCollected) {
  auto p = socket_pair();
  UniqueFd e1(::eventfd(0, EFD_CLOEXEC)), e2(::eventfd(0, EFD_CLOEXEC));
  MemoryTable t;
  t.regions.push_back({0, 0x1000, 0x10000, 0});
  t.regions.push_back({0x1000, 0x1000, 0x20000, 0});
  auto bytes = encode(5, kVersion, t);
  int f1[] = {e1.get()};
  int f2[] = {e2.get()};
  ASSERT_TRUE(send_message(p.a.get(), std::span(bytes).first(12), f1));
  ASSERT_TRUE(send_message(p.a.get(), std::span(bytes).subspan(12), f2));

  auto m = receive_request(p.b.get());

  ASSERT_TRUE(m.has_value()) << m.error().message();
  ASSERT_TRUE(m->has_value());
  EXPECT_EQ((*m)->fds.size(), 2u);
}

TEST(MessageIo, OversizeHeaderIsAnError) {
  auto p = socket_pair();
  uint32_t fields[3] = {1, kVersion, 1u << 20};
  ASSERT_EQ(::write(p.a.get(), fields, 12), 12);

  auto m = receive_message(p.b.get());

  EXPECT_FALSE(m.has_value());
}

}  // namespace
}  // namespace pinata::vhost
