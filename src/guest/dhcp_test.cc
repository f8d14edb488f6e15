#include "guest/dhcp.h"

#include <gtest/gtest.h>

namespace pinata::guest::dhcp {
namespace {

constexpr MacAddress kMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr uint32_t kXid = 0xdeadbeef;

// A server reply as QEMU's slirp sends it; tests tweak it.
struct ReplyBuilder {
  std::vector<uint8_t> p = std::vector<uint8_t>(kHeaderSize + 4, 0);
  ReplyBuilder(uint8_t type, uint32_t xid = kXid) {
    p[0] = 2;
    p[1] = 1;
    p[2] = 6;
    set32(4, xid);
    set32(16, 0x0A00020F);  // yiaddr 10.0.2.15
    std::copy(kMac.begin(), kMac.end(), p.begin() + 28);
    set32(kHeaderSize, kMagicCookie);
    opt(option::kMessageType, {type});
  }
  void set32(size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) p[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  }
  ReplyBuilder& opt(uint8_t code, std::vector<uint8_t> data) {
    p.push_back(code);
    p.push_back(static_cast<uint8_t>(data.size()));
    p.insert(p.end(), data.begin(), data.end());
    return *this;
  }
  ReplyBuilder& slirp_options() {
    opt(option::kServerId, {10, 0, 2, 2});
    opt(option::kLeaseTime, {0, 1, 0x51, 0x80});
    opt(option::kSubnetMask, {255, 255, 255, 0});
    opt(option::kRouter, {10, 0, 2, 2});
    opt(option::kDns, {10, 0, 2, 3});
    return *this;
  }
  std::vector<uint8_t> done() {
    auto out = p;
    out.push_back(option::kEnd);
    return out;
  }
};

std::vector<Option> options_of(const std::vector<uint8_t>& packet) {
  auto opts = parse_options(std::span<const uint8_t>(packet).subspan(kHeaderSize + 4));
  EXPECT_TRUE(opts.has_value());
  return opts ? *opts : std::vector<Option>{};
}

const Option* find(const std::vector<Option>& opts, uint8_t code) {
  for (const auto& o : opts) {
    if (o.code == code) return &o;
  }
  return nullptr;
}

TEST(DhcpBuild, DiscoverHasHeaderBroadcastFlagAndType) {
  auto p = build_discover(kXid, kMac, "pinata");
  ASSERT_GE(p.size(), kMinPacketSize);
  EXPECT_EQ(p[0], 1);  // BOOTREQUEST
  EXPECT_EQ(p[1], 1);
  EXPECT_EQ(p[2], 6);
  EXPECT_EQ(p[4], 0xde);
  EXPECT_EQ(p[7], 0xef);
  EXPECT_EQ(p[10], 0x80);  // broadcast flag
  EXPECT_TRUE(std::equal(kMac.begin(), kMac.end(), p.begin() + 28));
  EXPECT_EQ(p[236], 99);
  EXPECT_EQ(p[239], 99);
  auto opts = options_of(p);
  auto* type = find(opts, option::kMessageType);
  ASSERT_NE(type, nullptr);
  EXPECT_EQ(type->data, std::vector<uint8_t>{1});
  auto* host = find(opts, option::kHostName);
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(std::string(host->data.begin(), host->data.end()), "pinata");
  EXPECT_NE(find(opts, option::kParameterList), nullptr);
}

TEST(DhcpBuild, RequestCarriesRequestedIpAndServerId) {
  auto p = build_request(kXid, kMac, 0x0A00020F, 0x0A000202, "");
  auto opts = options_of(p);
  EXPECT_EQ(find(opts, option::kMessageType)->data, std::vector<uint8_t>{3});
  EXPECT_EQ(find(opts, option::kRequestedIp)->data, (std::vector<uint8_t>{10, 0, 2, 15}));
  EXPECT_EQ(find(opts, option::kServerId)->data, (std::vector<uint8_t>{10, 0, 2, 2}));
  EXPECT_EQ(find(opts, option::kHostName), nullptr);
}

TEST(DhcpParse, ParsesSlirpOffer) {
  auto r = parse_reply(ReplyBuilder(2).slirp_options().done(), kXid, kMac);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->type, MessageType::kOffer);
  EXPECT_EQ(format_ipv4(r->your_ip), "10.0.2.15");
  EXPECT_EQ(r->server_id, 0x0A000202u);
  EXPECT_EQ(r->subnet_mask, 0xFFFFFF00u);
  EXPECT_EQ(r->router, 0x0A000202u);
  ASSERT_EQ(r->dns.size(), 1u);
  EXPECT_EQ(format_ipv4(r->dns[0]), "10.0.2.3");
  EXPECT_EQ(r->lease_seconds, 86400u);
  EXPECT_FALSE(r->mtu);
  EXPECT_EQ(resolv_conf(*r), "nameserver 10.0.2.3\n");
}

TEST(DhcpParse, ParsesAckWithMtuAndDomain) {
  auto r = parse_reply(ReplyBuilder(5)
                           .slirp_options()
                           .opt(option::kInterfaceMtu, {0x05, 0xdc})
                           .opt(option::kDomainName, {'l', 'a', 'n'})
                           .done(),
                       kXid, kMac);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->type, MessageType::kAck);
  EXPECT_EQ(r->mtu, 1500);
  EXPECT_EQ(r->domain, "lan");
  EXPECT_EQ(resolv_conf(*r), "search lan\nnameserver 10.0.2.3\n");
}

TEST(DhcpParse, NakNeedsNoAddress) {
  ReplyBuilder b(6);
  b.set32(16, 0);
  auto r = parse_reply(b.done(), kXid, kMac);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->type, MessageType::kNak);
}

TEST(DhcpParse, IgnoresPadsAndUnknownOptionsAndToleratesMissingEnd) {
  ReplyBuilder b(2);
  b.slirp_options();
  b.p.push_back(option::kPad);
  b.opt(200, {1, 2, 3});
  auto r = parse_reply(b.p, kXid, kMac);  // no END option
  ASSERT_TRUE(r) << r.error().message();
}

TEST(DhcpParse, ConcatenatesSplitOptions) {
  auto r = parse_reply(ReplyBuilder(2)
                           .slirp_options()
                           .opt(option::kDns, {1, 1, 1, 1})
                           .opt(option::kDns, {8, 8, 8, 8, 9, 9, 9, 9})
                           .done(),
                       kXid, kMac);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->dns.size(), kMaxDns);  // capped
  EXPECT_EQ(format_ipv4(r->dns[2]), "8.8.8.8");
}

TEST(DhcpParse, IgnoresImplausibleMtuAndDomain) {
  auto r = parse_reply(ReplyBuilder(5)
                           .slirp_options()
                           .opt(option::kInterfaceMtu, {0x00, 0x44})
                           .opt(option::kDomainName, {'a', '\n', 'b'})
                           .done(),
                       kXid, kMac);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->mtu);
  EXPECT_FALSE(r->domain);
}

TEST(DhcpParse, RejectsTruncatedHeader) {
  auto p = ReplyBuilder(2).slirp_options().done();
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, kHeaderSize, kHeaderSize + 3}) {
    std::vector<uint8_t> cut(p.begin(), p.begin() + n);
    EXPECT_FALSE(parse_reply(cut, kXid, kMac)) << n;
  }
}

TEST(DhcpParse, RejectsOptionRunningPastEnd) {
  ReplyBuilder b(2);
  b.slirp_options();
  b.p.push_back(option::kDns);
  b.p.push_back(8);
  b.p.insert(b.p.end(), {10, 0, 2, 3});  // only 4 of 8 bytes
  auto r = parse_reply(b.p, kXid, kMac);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("runs past"), std::string::npos);
}

TEST(DhcpParse, RejectsOptionCutBeforeLength) {
  ReplyBuilder b(2);
  b.slirp_options();
  b.p.push_back(option::kRouter);
  EXPECT_FALSE(parse_reply(b.p, kXid, kMac));
}

TEST(DhcpParse, RejectsBadOptionLengths) {
  EXPECT_FALSE(parse_reply(ReplyBuilder(2).slirp_options().opt(option::kSubnetMask, {255}).done(),
                           kXid, kMac));
  EXPECT_FALSE(parse_reply(ReplyBuilder(2).slirp_options().opt(option::kRouter, {10, 0, 2}).done(),
                           kXid, kMac));
  EXPECT_FALSE(parse_reply(ReplyBuilder(2).slirp_options().opt(option::kDns, {8, 8, 8}).done(),
                           kXid, kMac));  // 4 + 3 bytes after concatenation
  EXPECT_FALSE(parse_reply(
      ReplyBuilder(2).opt(option::kServerId, {10, 0, 2, 2}).opt(option::kDns, {}).done(), kXid,
      kMac));
  EXPECT_FALSE(parse_reply(ReplyBuilder(2).slirp_options().opt(option::kInterfaceMtu, {5}).done(),
                           kXid, kMac));
  ReplyBuilder two_types(2);
  two_types.opt(option::kMessageType, {2});  // concatenated: length 2
  EXPECT_FALSE(parse_reply(two_types.slirp_options().done(), kXid, kMac));
}

TEST(DhcpParse, RejectsWrongXid) {
  auto r = parse_reply(ReplyBuilder(2, kXid + 1).slirp_options().done(), kXid, kMac);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("transaction"), std::string::npos);
}

TEST(DhcpParse, RejectsWrongMagic) {
  ReplyBuilder b(2);
  b.set32(kHeaderSize, 0x63825364);
  EXPECT_FALSE(parse_reply(b.slirp_options().done(), kXid, kMac));
}

TEST(DhcpParse, RejectsOtherClientAndRequests) {
  auto p = ReplyBuilder(2).slirp_options().done();
  MacAddress other = kMac;
  other[5] ^= 1;
  EXPECT_FALSE(parse_reply(p, kXid, other));
  p[0] = 1;  // BOOTREQUEST (e.g. our own broadcast looped back)
  EXPECT_FALSE(parse_reply(p, kXid, kMac));
}

TEST(DhcpParse, RejectsMissingOrUnexpectedType) {
  ReplyBuilder b(1);  // DISCOVER from a server makes no sense
  EXPECT_FALSE(parse_reply(b.slirp_options().done(), kXid, kMac));
  ReplyBuilder none(2);
  none.p.resize(kHeaderSize + 4);  // drop the type option
  EXPECT_FALSE(parse_reply(none.slirp_options().done(), kXid, kMac));
}

TEST(DhcpParse, RejectsNonContiguousMask) {
  EXPECT_FALSE(
      parse_reply(ReplyBuilder(2).slirp_options().opt(option::kSubnetMask, {255, 0, 255, 0}).done(),
                  kXid, kMac));
}

TEST(DhcpParse, RejectsUnusableAddressOrMissingServerId) {
  ReplyBuilder b(2);
  b.set32(16, 0x7F000001);
  EXPECT_FALSE(parse_reply(b.slirp_options().done(), kXid, kMac));
  EXPECT_FALSE(parse_reply(ReplyBuilder(2).done(), kXid, kMac));
}

TEST(DhcpParse, SurvivesEveryTruncationOfAValidPacket) {
  auto p = ReplyBuilder(5).slirp_options().opt(option::kInterfaceMtu, {5, 220}).done();
  for (size_t n = 0; n <= p.size(); n++) {
    std::vector<uint8_t> cut(p.begin(), p.begin() + n);
    (void)parse_reply(cut, kXid, kMac);  // must not crash or read out of bounds (ASan)
  }
}

TEST(Netmask, Prefix) {
  EXPECT_EQ(netmask_prefix(0xFFFFFF00), 24);
  EXPECT_EQ(netmask_prefix(0xFFFFFFFF), 32);
  EXPECT_EQ(netmask_prefix(0), 0);
  EXPECT_EQ(netmask_prefix(0xFF00FF00), std::nullopt);
}

}  // namespace
}  // namespace pinata::guest::dhcp
