#include "net/dns.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace pinata::net {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kNameserver = 0xC0A84107;  // 192.168.65.7
constexpr uint32_t kGuest = 0xC0A84102;       // 192.168.65.2
constexpr uint32_t kHost = 0xC0A84101;        // 192.168.65.1
constexpr uint16_t kGuestPort = 41234;
constexpr MacAddress kGuestMac = {0x02, 0x50, 0x00, 0x00, 0x00, 0x02};
constexpr MacAddress kGatewayMac = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};

// --- Building frames the way a guest kernel would, independently of dns.cc ---------------

void put16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}
void put32(std::vector<uint8_t>& v, uint32_t x) {
  put16(v, static_cast<uint16_t>(x >> 16));
  put16(v, static_cast<uint16_t>(x));
}
uint16_t get16(const std::vector<uint8_t>& v, size_t at) {
  return static_cast<uint16_t>(v.at(at) << 8 | v.at(at + 1));
}
uint32_t get32(const std::vector<uint8_t>& v, size_t at) {
  return uint32_t{get16(v, at)} << 16 | get16(v, at + 2);
}

// RFC 1071, written out again so the test does not trust the code under test.
uint16_t reference_checksum(const std::vector<uint8_t>& bytes) {
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes.size(); i += 2) {
    uint16_t word = static_cast<uint16_t>(bytes[i] << 8);
    if (i + 1 < bytes.size()) word |= bytes[i + 1];
    sum += word;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

std::vector<uint8_t> encode_name(const std::string& name) {
  std::vector<uint8_t> out;
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    out.push_back(static_cast<uint8_t>(dot - start));
    out.insert(out.end(), name.begin() + static_cast<long>(start),
               name.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  out.push_back(0);
  return out;
}

std::vector<uint8_t> dns_query(const std::string& name, uint16_t qtype, uint16_t id = 0x1234,
                               uint16_t qclass = kClassIn) {
  std::vector<uint8_t> d;
  put16(d, id);
  put16(d, 0x0100);  // RD
  put16(d, 1);
  put16(d, 0);
  put16(d, 0);
  put16(d, 0);
  std::vector<uint8_t> qname = encode_name(name);
  d.insert(d.end(), qname.begin(), qname.end());
  put16(d, qtype);
  put16(d, qclass);
  return d;
}

struct FrameSpec {
  MacAddress dst_mac = kGatewayMac;
  uint16_t ethertype = 0x0800;
  uint32_t src_ip = kGuest;
  uint32_t dst_ip = kNameserver;
  uint8_t protocol = 17;
  uint16_t fragment = 0x4000;  // DF
  std::vector<uint8_t> ip_options;
  uint16_t src_port = kGuestPort;
  uint16_t dst_port = 53;
  size_t padding = 0;  // Ethernet padding after the IP packet
};

std::vector<uint8_t> frame_for(const std::vector<uint8_t>& payload, const FrameSpec& s = {}) {
  std::vector<uint8_t> f(s.dst_mac.begin(), s.dst_mac.end());
  f.insert(f.end(), kGuestMac.begin(), kGuestMac.end());
  put16(f, s.ethertype);
  std::vector<uint8_t> ip;
  ip.push_back(static_cast<uint8_t>(0x40 | (5 + s.ip_options.size() / 4)));
  ip.push_back(0);
  put16(ip, static_cast<uint16_t>(20 + s.ip_options.size() + 8 + payload.size()));
  put16(ip, 0x4242);
  put16(ip, s.fragment);
  ip.push_back(64);
  ip.push_back(s.protocol);
  put16(ip, 0);
  put32(ip, s.src_ip);
  put32(ip, s.dst_ip);
  ip.insert(ip.end(), s.ip_options.begin(), s.ip_options.end());
  uint16_t sum = reference_checksum(ip);
  ip[10] = static_cast<uint8_t>(sum >> 8);
  ip[11] = static_cast<uint8_t>(sum);
  put16(ip, s.src_port);
  put16(ip, s.dst_port);
  put16(ip, static_cast<uint16_t>(8 + payload.size()));
  put16(ip, 0);  // no UDP checksum (or a partial one with offload: not checked)
  ip.insert(ip.end(), payload.begin(), payload.end());
  f.insert(f.end(), ip.begin(), ip.end());
  f.insert(f.end(), s.padding, 0);
  return f;
}

std::vector<uint8_t> query_frame(const std::string& name, uint16_t qtype, uint16_t id = 0x1234) {
  return frame_for(dns_query(name, qtype, id));
}

// --- Checking replies ---------------------------------------------------------------------

struct ParsedReply {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint16_t rcode = 0;
  std::vector<uint8_t> question;
  std::vector<std::pair<uint16_t, std::vector<uint8_t>>> answers;  // type, rdata
  std::vector<uint32_t> ttls;
  size_t dns_size = 0;
};

// Checks the Ethernet/IPv4/UDP framing (addresses, lengths, both checksums) with EXPECTs
// and returns the DNS part.
ParsedReply check_reply(const std::vector<uint8_t>& f, size_t question_size,
                        const MacAddress& src_mac = kGatewayMac) {
  ParsedReply r;
  EXPECT_GE(f.size(), 14u + 20 + 8 + 12);
  if (f.size() < 14 + 20 + 8 + 12) return r;
  EXPECT_TRUE(std::equal(kGuestMac.begin(), kGuestMac.end(), f.begin()));
  EXPECT_TRUE(std::equal(src_mac.begin(), src_mac.end(), f.begin() + 6));
  EXPECT_EQ(get16(f, 12), 0x0800);
  EXPECT_EQ(f[14], 0x45);
  EXPECT_EQ(get16(f, 16), f.size() - 14);  // total length
  EXPECT_EQ(f[14 + 9], 17);
  EXPECT_EQ(get32(f, 14 + 12), kNameserver);
  EXPECT_EQ(get32(f, 14 + 16), kGuest);
  std::vector<uint8_t> header(f.begin() + 14, f.begin() + 34);
  EXPECT_EQ(reference_checksum(header), 0) << "IPv4 header checksum";
  EXPECT_EQ(get16(f, 34), 53);
  EXPECT_EQ(get16(f, 36), kGuestPort);
  EXPECT_EQ(get16(f, 38), f.size() - 34);  // UDP length
  std::vector<uint8_t> pseudo;
  put32(pseudo, kNameserver);
  put32(pseudo, kGuest);
  put16(pseudo, 17);
  put16(pseudo, static_cast<uint16_t>(f.size() - 34));
  pseudo.insert(pseudo.end(), f.begin() + 34, f.end());
  EXPECT_NE(get16(f, 40), 0) << "UDP checksum is computed";
  EXPECT_EQ(reference_checksum(pseudo), 0) << "UDP checksum";

  const size_t d = 42;
  r.dns_size = f.size() - d;
  r.id = get16(f, d);
  r.flags = get16(f, d + 2);
  r.rcode = r.flags & 0xf;
  EXPECT_EQ(get16(f, d + 4), 1);  // QDCOUNT
  const uint16_t ancount = get16(f, d + 6);
  EXPECT_EQ(get16(f, d + 8), 0);
  EXPECT_EQ(get16(f, d + 10), 0);
  r.question.assign(f.begin() + d + 12, f.begin() + static_cast<long>(d + 12 + question_size));
  size_t pos = d + 12 + question_size;
  for (uint16_t i = 0; i < ancount; i++) {
    EXPECT_EQ(get16(f, pos), 0xc00c) << "answer names the question";
    const uint16_t type = get16(f, pos + 2);
    EXPECT_EQ(get16(f, pos + 4), kClassIn);
    r.ttls.push_back(get32(f, pos + 6));
    const uint16_t rdlength = get16(f, pos + 10);
    r.answers.emplace_back(
        type, std::vector<uint8_t>(f.begin() + static_cast<long>(pos + 12),
                                   f.begin() + static_cast<long>(pos + 12 + rdlength)));
    pos += 12 + rdlength;
  }
  EXPECT_EQ(pos, f.size()) << "no bytes after the answers";
  return r;
}

std::vector<uint8_t> v4_bytes(uint32_t ip) {
  return {static_cast<uint8_t>(ip >> 24), static_cast<uint8_t>(ip >> 16),
          static_cast<uint8_t>(ip >> 8), static_cast<uint8_t>(ip)};
}

DnsQuery parsed(const std::vector<uint8_t>& frame) {
  Result<DnsQuery> q = parse_query(frame, kNameserver);
  EXPECT_TRUE(q.has_value()) << (q ? "" : q.error().message());
  return q ? *q : DnsQuery{};
}

// A resolver that must not be called.
Result<std::vector<Address>> no_resolver(const std::string& name, int) {
  ADD_FAILURE() << "resolver called for " << name;
  return fail(ErrorKind::kInternal, "unexpected");
}

// --- parse_query / build_reply ------------------------------------------------------------

TEST(DnsCodec, RoundTripAnswersWithTheAddress) {
  std::vector<uint8_t> frame = query_frame("example.com", kTypeA, 0xbeef);
  DnsQuery q = parsed(frame);
  EXPECT_EQ(q.name, "example.com");
  EXPECT_EQ(q.id, 0xbeef);
  EXPECT_EQ(q.qtype, kTypeA);
  EXPECT_EQ(q.guest_ip, kGuest);
  EXPECT_EQ(q.server_ip, kNameserver);
  EXPECT_EQ(q.guest_port, kGuestPort);
  EXPECT_EQ(q.guest_mac, kGuestMac);
  EXPECT_EQ(q.server_mac, kGatewayMac);

  std::vector<uint8_t> reply =
      build_reply(q, DnsAnswer{Rcode::kNoError, {Address::v4(0x5DB8D822)}});

  ParsedReply r = check_reply(reply, q.question.size());
  EXPECT_EQ(r.id, 0xbeef);
  EXPECT_TRUE(r.flags & 0x8000) << "QR";
  EXPECT_TRUE(r.flags & 0x0100) << "RD copied";
  EXPECT_TRUE(r.flags & 0x0080) << "RA";
  EXPECT_FALSE(r.flags & 0x0200) << "TC";
  EXPECT_EQ(r.rcode, 0);
  std::vector<uint8_t> question = encode_name("example.com");
  put16(question, kTypeA);
  put16(question, kClassIn);
  EXPECT_EQ(r.question, question);
  ASSERT_EQ(r.answers.size(), 1u);
  EXPECT_EQ(r.answers[0].first, kTypeA);
  EXPECT_EQ(r.answers[0].second, v4_bytes(0x5DB8D822));
  EXPECT_EQ(r.ttls[0], kAnswerTtlSeconds);
}

TEST(DnsCodec, LowercasesTheNameButEchoesTheQuestionAsSent) {
  DnsQuery q = parsed(query_frame("ExAmPle.COM", kTypeA));
  EXPECT_EQ(q.name, "example.com");

  ParsedReply r = check_reply(build_reply(q, DnsAnswer{}), q.question.size());

  std::vector<uint8_t> question = encode_name("ExAmPle.COM");
  put16(question, kTypeA);
  put16(question, kClassIn);
  EXPECT_EQ(r.question, question);
  EXPECT_TRUE(r.answers.empty());
}

TEST(DnsCodec, AaaaRecordsForAaaaAndOnlyAddressesOfThatFamily) {
  DnsQuery q = parsed(query_frame("example.com", kTypeAAAA));
  std::array<uint8_t, 16> v6{0x20, 0x01, 0x0d, 0xb8};
  v6[15] = 1;

  ParsedReply r = check_reply(
      build_reply(q, DnsAnswer{Rcode::kNoError, {Address::v4(0x01020304), Address::v6(v6)}}),
      q.question.size());

  ASSERT_EQ(r.answers.size(), 1u);
  EXPECT_EQ(r.answers[0].first, kTypeAAAA);
  EXPECT_EQ(r.answers[0].second, std::vector<uint8_t>(v6.begin(), v6.end()));
}

TEST(DnsCodec, NxDomainAndServFailCarryNoAnswers) {
  DnsQuery q = parsed(query_frame("does-not-exist.invalid", kTypeA));

  ParsedReply nx =
      check_reply(build_reply(q, DnsAnswer{Rcode::kNxDomain, {Address::v4(1)}}), q.question.size());
  ParsedReply sf = check_reply(build_reply(q, DnsAnswer{Rcode::kServFail, {}}), q.question.size());

  EXPECT_EQ(nx.rcode, 3);
  EXPECT_TRUE(nx.answers.empty());
  EXPECT_EQ(sf.rcode, 2);
}

TEST(DnsCodec, TruncatesTo512BytesAndSetsTc) {
  DnsQuery q = parsed(query_frame("many.example.com", kTypeAAAA));
  DnsAnswer answer;
  for (uint8_t i = 0; i < 100; i++) {
    std::array<uint8_t, 16> v6{0xfd};
    v6[15] = i;
    answer.addresses.push_back(Address::v6(v6));
  }

  ParsedReply r = check_reply(build_reply(q, answer), q.question.size());

  EXPECT_LE(r.dns_size, kMaxDnsUdpPayload);
  EXPECT_TRUE(r.flags & 0x0200) << "TC";
  EXPECT_EQ(r.answers.size(), (512 - 12 - q.question.size()) / 28);
}

TEST(DnsCodec, AcceptsIpOptionsEdnsAndEthernetPadding) {
  std::vector<uint8_t> payload = dns_query("example.com", kTypeA);
  payload[11] = 1;  // ARCOUNT: an EDNS OPT record
  const uint8_t opt[] = {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0};
  payload.insert(payload.end(), std::begin(opt), std::end(opt));
  FrameSpec spec;
  spec.ip_options = {0x94, 0x04, 0x00, 0x00};  // router alert
  spec.padding = 30;

  DnsQuery q = parsed(frame_for(payload, spec));

  EXPECT_EQ(q.name, "example.com");
  EXPECT_EQ(q.question.size(), encode_name("example.com").size() + 4);
}

TEST(DnsCodec, AcceptsAnyAndNumericNames) {
  EXPECT_EQ(parsed(query_frame("example.com", kTypeAny)).qtype, kTypeAny);
  EXPECT_EQ(parsed(query_frame("1.2.3.4", kTypeA)).name, "1.2.3.4");
  EXPECT_EQ(parsed(query_frame("_http._tcp.x", kTypeA)).name, "_http._tcp.x");
}

TEST(DnsCodec, FramesThatAreNotOursAreUnsupported) {
  auto kind = [](const std::vector<uint8_t>& frame) {
    Result<DnsQuery> q = parse_query(frame, kNameserver);
    return q ? std::optional<ErrorKind>() : q.error().kind();
  };
  const std::vector<uint8_t> payload = dns_query("example.com", kTypeA);
  FrameSpec tcp, other_ip, other_port, ipv6, more_fragments, offset, vlan;
  tcp.protocol = 6;
  other_ip.dst_ip = kHost;
  other_port.dst_port = 5353;
  ipv6.ethertype = 0x86dd;
  more_fragments.fragment = 0x2000;
  offset.fragment = 0x0010;
  vlan.ethertype = 0x8100;
  for (const FrameSpec* s : {&tcp, &other_ip, &other_port, &ipv6, &more_fragments, &offset, &vlan})
    EXPECT_EQ(kind(frame_for(payload, *s)), ErrorKind::kUnsupported);

  EXPECT_EQ(kind(query_frame("example.com", 15)), ErrorKind::kUnsupported);           // MX
  EXPECT_EQ(kind(query_frame("example.com", 16)), ErrorKind::kUnsupported);           // TXT
  EXPECT_EQ(kind(query_frame("example.com", 33)), ErrorKind::kUnsupported);           // SRV
  EXPECT_EQ(kind(query_frame("4.3.2.1.in-addr.arpa", 12)), ErrorKind::kUnsupported);  // PTR
  EXPECT_EQ(kind(frame_for(dns_query("version.bind", 16, 1, 3))), ErrorKind::kUnsupported);
  EXPECT_EQ(kind(query_frame("", kTypeA)), ErrorKind::kUnsupported);  // the root
  EXPECT_EQ(kind(query_frame("a b.example", kTypeA)), ErrorKind::kUnsupported);
  EXPECT_EQ(kind(query_frame("a\xc3\xa9.example", kTypeA)), ErrorKind::kUnsupported);

  std::vector<uint8_t> response = payload;
  response[2] |= 0x80;  // QR
  EXPECT_EQ(kind(frame_for(response)), ErrorKind::kUnsupported);
  std::vector<uint8_t> notify = payload;
  notify[2] |= 4 << 3;  // opcode NOTIFY
  EXPECT_EQ(kind(frame_for(notify)), ErrorKind::kUnsupported);
  std::vector<uint8_t> two = payload;
  two[5] = 2;  // QDCOUNT
  EXPECT_EQ(kind(frame_for(two)), ErrorKind::kUnsupported);
  EXPECT_EQ(kind(query_frame("example.com", kTypeA)), std::nullopt);
  EXPECT_EQ(parse_query(query_frame("example.com", kTypeA), 0).error().kind(),
            ErrorKind::kUnsupported)
      << "nameserver_ip 0 takes nothing";
}

TEST(DnsCodec, EveryTruncationOfAQueryIsRejected) {
  const std::vector<uint8_t> frame = query_frame("www.example.com", kTypeAAAA);
  for (size_t n = 0; n < frame.size(); n++) {
    std::vector<uint8_t> cut(frame.begin(), frame.begin() + static_cast<long>(n));
    EXPECT_FALSE(parse_query(cut, kNameserver).has_value()) << "length " << n;
  }
  // The same with the IP and UDP lengths fixed up to match the cut DNS payload.
  const std::vector<uint8_t> payload = dns_query("www.example.com", kTypeAAAA);
  for (size_t n = 0; n < payload.size(); n++) {
    std::vector<uint8_t> cut(payload.begin(), payload.begin() + static_cast<long>(n));
    Result<DnsQuery> q = parse_query(frame_for(cut), kNameserver);
    ASSERT_FALSE(q.has_value()) << "DNS length " << n;
    EXPECT_EQ(q.error().kind(), ErrorKind::kInvalidInput) << "DNS length " << n;
  }
}

TEST(DnsCodec, MalformedHeadersAndNamesAreRejected) {
  auto rejected = [](std::vector<uint8_t> frame) {
    return !parse_query(frame, kNameserver).has_value();
  };
  const std::vector<uint8_t> good = query_frame("example.com", kTypeA);
  auto fix_ip_checksum = [](std::vector<uint8_t>& f) {
    f[24] = f[25] = 0;
    const size_t ihl = (f[14] & 15u) * 4;
    std::vector<uint8_t> header(f.begin() + 14,
                                f.begin() + 14 + static_cast<long>(std::min(ihl, f.size() - 14)));
    uint16_t sum = reference_checksum(header);
    f[24] = static_cast<uint8_t>(sum >> 8);
    f[25] = static_cast<uint8_t>(sum);
  };
  std::vector<uint8_t> ihl4 = good;
  ihl4[14] = 0x44;
  fix_ip_checksum(ihl4);
  EXPECT_TRUE(rejected(ihl4));
  std::vector<uint8_t> ihl15 = good;
  ihl15[14] = 0x4f;  // 60 bytes of header: past the UDP header
  fix_ip_checksum(ihl15);
  EXPECT_TRUE(rejected(ihl15));
  std::vector<uint8_t> bad_sum = good;
  bad_sum[24] ^= 1;
  EXPECT_TRUE(rejected(bad_sum));
  std::vector<uint8_t> long_total = good;
  long_total[17] += 1;  // total length one past the frame
  fix_ip_checksum(long_total);
  EXPECT_TRUE(rejected(long_total));
  std::vector<uint8_t> long_udp = good;
  long_udp[39] += 1;
  EXPECT_TRUE(rejected(long_udp));
  std::vector<uint8_t> version6 = good;
  version6[14] = 0x65;
  fix_ip_checksum(version6);
  EXPECT_TRUE(rejected(version6));

  // Names.
  std::vector<uint8_t> payload = dns_query("example.com", kTypeA);
  std::vector<uint8_t> overflow = payload;
  overflow[12] = 60;  // label length past the end of the message
  EXPECT_TRUE(rejected(frame_for(overflow)));
  std::vector<uint8_t> pointer = payload;
  pointer[12] = 0xc0;
  pointer[13] = 0x0c;
  EXPECT_TRUE(rejected(frame_for(pointer)));
  std::vector<uint8_t> extended = payload;
  extended[12] = 0x41;
  EXPECT_TRUE(rejected(frame_for(extended)));
  std::string label(63, 'a');
  std::string at_limit = label + "." + label + "." + label + "." + std::string(61, 'a');  // 255
  EXPECT_FALSE(rejected(query_frame(at_limit, kTypeA)));
  EXPECT_TRUE(rejected(query_frame(at_limit + "a", kTypeA)));
  EXPECT_TRUE(rejected(query_frame(std::string(64, 'a'), kTypeA)));  // 64 = 0x40: extended
}

// --- resolve_query ------------------------------------------------------------------------

const std::vector<std::pair<std::string, uint32_t>> kFixed = {{"host.docker.internal", kHost},
                                                              {"gateway.docker.internal", kHost}};

TEST(DnsResolve, FixedNamesAnswerWithoutTheResolver) {
  DnsAnswer a =
      resolve_query(parsed(query_frame("Host.Docker.Internal", kTypeA)), kFixed, no_resolver, true);
  DnsAnswer any = resolve_query(parsed(query_frame("gateway.docker.internal", kTypeAny)), kFixed,
                                no_resolver, true);
  DnsAnswer aaaa = resolve_query(parsed(query_frame("host.docker.internal", kTypeAAAA)), kFixed,
                                 no_resolver, true);

  EXPECT_EQ(a.rcode, Rcode::kNoError);
  EXPECT_EQ(a.addresses, std::vector<Address>{Address::v4(kHost)});
  EXPECT_EQ(any.addresses, std::vector<Address>{Address::v4(kHost)});
  EXPECT_EQ(aaaa.rcode, Rcode::kNoError);
  EXPECT_TRUE(aaaa.addresses.empty());
}

TEST(DnsResolve, LocalhostResolvesWithTheHostsGetaddrinfo) {
  DnsAnswer a =
      resolve_query(parsed(query_frame("localhost", kTypeA)), {}, resolve_with_getaddrinfo, true);

  EXPECT_EQ(a.rcode, Rcode::kNoError);
  EXPECT_NE(std::find(a.addresses.begin(), a.addresses.end(), Address::v4(0x7f000001)),
            a.addresses.end());
}

TEST(DnsResolve, LocalhostAaaaIsNotNxDomain) {
  // glibc says EAI_NONAME for AF_INET6 when /etc/hosts has localhost only as 127.0.0.1; the
  // name exists, so the answer must be NOERROR (with ::1 or nothing).
  DnsAnswer aaaa = resolve_query(parsed(query_frame("localhost", kTypeAAAA)), {},
                                 resolve_with_getaddrinfo, true);

  EXPECT_EQ(aaaa.rcode, Rcode::kNoError);
  for (const Address& a : aaaa.addresses) EXPECT_EQ(a.family, AF_INET6);
}

TEST(DnsResolve, NumericNameResolvesAsGetaddrinfoDoes) {
  DnsAnswer a =
      resolve_query(parsed(query_frame("1.2.3.4", kTypeA)), {}, resolve_with_getaddrinfo, true);

  EXPECT_EQ(a.addresses, std::vector<Address>{Address::v4(0x01020304)});
}

TEST(DnsResolve, UnknownNameIsNxDomain) {
  std::vector<int> families;
  Resolver none = [&](const std::string& name, int family) -> Result<std::vector<Address>> {
    EXPECT_EQ(name, "does-not-exist.invalid");
    families.push_back(family);
    return fail(ErrorKind::kNotFound, "EAI_NONAME");
  };

  DnsAnswer a =
      resolve_query(parsed(query_frame("does-not-exist.invalid", kTypeA)), kFixed, none, true);

  EXPECT_EQ(a.rcode, Rcode::kNxDomain);
  EXPECT_EQ(families, (std::vector<int>{AF_INET, AF_INET6}));
}

TEST(DnsResolve, NameWithOnlyTheOtherFamilyIsNoDataNotNxDomain) {
  Resolver v4_only = [](const std::string&, int family) -> Result<std::vector<Address>> {
    if (family == AF_INET) return std::vector<Address>{Address::v4(0x0a000001)};
    return fail(ErrorKind::kNotFound, "EAI_NONAME");
  };

  DnsAnswer aaaa = resolve_query(parsed(query_frame("box.lan", kTypeAAAA)), {}, v4_only, true);

  EXPECT_EQ(aaaa.rcode, Rcode::kNoError);
  EXPECT_TRUE(aaaa.addresses.empty());
}

TEST(DnsResolve, ResolverFailureIsServFail) {
  Resolver broken = [](const std::string&, int) -> Result<std::vector<Address>> {
    return fail(ErrorKind::kIo, "Temporary failure in name resolution");
  };
  Resolver half = [](const std::string&, int family) -> Result<std::vector<Address>> {
    if (family == AF_INET) return fail(ErrorKind::kNotFound, "EAI_NONAME");
    return fail(ErrorKind::kIo, "EAI_AGAIN");
  };

  EXPECT_EQ(resolve_query(parsed(query_frame("x.com", kTypeA)), {}, broken, true).rcode,
            Rcode::kServFail);
  EXPECT_EQ(resolve_query(parsed(query_frame("x.com", kTypeA)), {}, half, true).rcode,
            Rcode::kServFail);
}

TEST(DnsResolve, DeduplicatesAndKeepsTheFamilyAsked) {
  Resolver dup = [](const std::string&, int) -> Result<std::vector<Address>> {
    return std::vector<Address>{Address::v4(1), Address::v4(2), Address::v4(1),
                                Address::v6({0xfe, 0x80})};
  };

  DnsAnswer a = resolve_query(parsed(query_frame("x.com", kTypeAny)), {}, dup, true);

  EXPECT_EQ(a.addresses, (std::vector<Address>{Address::v4(1), Address::v4(2)}));
}

TEST(DnsResolve, WithoutIpv6AaaaHasNoAnswersAndNoLookup) {
  DnsAnswer a =
      resolve_query(parsed(query_frame("example.com", kTypeAAAA)), {}, no_resolver, false);

  EXPECT_EQ(a.rcode, Rcode::kNoError);
  EXPECT_TRUE(a.addresses.empty());
}

// --- DnsResponder -------------------------------------------------------------------------

// Blocks resolver calls until opened.
class Gate {
 public:
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    entered_++;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
  }
  void wait_entered(int n) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return entered_ >= n; });
  }
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int entered_ = 0;
  bool open_ = false;
};

class DnsResponderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop.has_value());
    loop_ = std::move(*loop);
  }

  DnsOptions options() {
    DnsOptions o;
    o.nameserver_ip = kNameserver;
    o.fixed = {{"host.docker.internal", kHost}, {"gateway.docker.internal", kHost}};
    return o;
  }

  std::function<void(std::vector<uint8_t>)> collect() {
    return [this](std::vector<uint8_t> frame) { replies_.push_back(std::move(frame)); };
  }

  // Runs the loop until `n` replies arrived (or 10 s passed).
  void run_until(size_t n) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (replies_.size() < n && std::chrono::steady_clock::now() < deadline)
      ASSERT_TRUE(loop_->run_once(50).has_value());
  }

  std::unique_ptr<EventLoop> loop_;
  std::vector<std::vector<uint8_t>> replies_;
};

TEST_F(DnsResponderTest, AnswersAFixedNameThroughTheLoop) {
  DnsOptions o = options();
  o.resolver = no_resolver;
  DnsResponder responder(std::move(o), *loop_, collect());
  std::vector<uint8_t> frame = query_frame("host.docker.internal", kTypeA, 7);

  ASSERT_TRUE(responder.handle_frame(frame));
  run_until(1);

  ASSERT_EQ(replies_.size(), 1u);
  ParsedReply r = check_reply(replies_[0], parsed(frame).question.size());
  EXPECT_EQ(r.id, 7);
  EXPECT_EQ(r.rcode, 0);
  ASSERT_EQ(r.answers.size(), 1u);
  EXPECT_EQ(r.answers[0].second, v4_bytes(kHost));
  EXPECT_EQ(responder.pending(), 0u);
}

TEST_F(DnsResponderTest, AnswersLocalhostWithTheRealResolver) {
  DnsResponder responder(options(), *loop_, collect());
  std::vector<uint8_t> frame = query_frame("localhost", kTypeA, 8);

  ASSERT_TRUE(responder.handle_frame(frame));
  run_until(1);

  ASSERT_EQ(replies_.size(), 1u);
  ParsedReply r = check_reply(replies_[0], parsed(frame).question.size());
  EXPECT_EQ(r.rcode, 0);
  bool loopback = false;
  for (const auto& [type, rdata] : r.answers) loopback |= rdata == v4_bytes(0x7f000001);
  EXPECT_TRUE(loopback);
}

TEST_F(DnsResponderTest, PassesOnFramesThatAreNotOurs) {
  DnsOptions o = options();
  o.resolver = no_resolver;
  DnsResponder responder(std::move(o), *loop_, collect());
  FrameSpec tcp, other_ip, broadcast;
  tcp.protocol = 6;
  other_ip.dst_ip = 0x08080808;
  broadcast.dst_mac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const std::vector<uint8_t> payload = dns_query("host.docker.internal", kTypeA);

  EXPECT_FALSE(responder.handle_frame(frame_for(payload, tcp)));
  EXPECT_FALSE(responder.handle_frame(frame_for(payload, other_ip)));
  EXPECT_FALSE(responder.handle_frame(frame_for(payload, broadcast)));
  EXPECT_FALSE(responder.handle_frame(query_frame("example.com", 15)));
  EXPECT_FALSE(responder.handle_frame({}));
  EXPECT_EQ(responder.pending(), 0u);
}

TEST_F(DnsResponderTest, GatewayMacOptionIsTheReplySource) {
  DnsOptions o = options();
  o.gateway_mac = {0x02, 0, 0, 0, 0, 0x99};
  o.resolver = no_resolver;
  DnsResponder responder(std::move(o), *loop_, collect());
  FrameSpec broadcast;
  broadcast.dst_mac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const std::vector<uint8_t> payload = dns_query("host.docker.internal", kTypeA);

  ASSERT_TRUE(responder.handle_frame(frame_for(payload, broadcast)));
  run_until(1);

  ASSERT_EQ(replies_.size(), 1u);
  check_reply(replies_[0], payload.size() - 12, {0x02, 0, 0, 0, 0, 0x99});
}

TEST_F(DnsResponderTest, DropsQueriesBeyondMaxPending) {
  Gate gate;
  DnsOptions o = options();
  o.workers = 1;
  o.max_pending = 3;
  o.resolver = [&gate](const std::string&, int) -> Result<std::vector<Address>> {
    gate.wait();
    return std::vector<Address>{Address::v4(0x0a000001)};
  };
  DnsResponder responder(std::move(o), *loop_, collect());

  for (uint16_t id = 0; id < 10; id++)
    EXPECT_TRUE(responder.handle_frame(query_frame("example.com", kTypeA, id)));
  EXPECT_EQ(responder.pending(), 3u);
  gate.open();
  run_until(3);
  loop_->run_once(100).value();  // nothing more arrives

  EXPECT_EQ(replies_.size(), 3u);
  EXPECT_EQ(responder.pending(), 0u);
  // There is room again.
  EXPECT_TRUE(responder.handle_frame(query_frame("example.com", kTypeA, 99)));
  run_until(4);
  EXPECT_EQ(replies_.size(), 4u);
}

TEST_F(DnsResponderTest, DestroyingWithQueriesInFlightDropsTheirAnswers) {
  Gate gate;
  std::atomic<int> calls{0};
  DnsOptions o = options();
  o.workers = 2;
  o.resolver = [&](const std::string&, int) -> Result<std::vector<Address>> {
    calls++;
    gate.wait();
    return std::vector<Address>{Address::v4(0x0a000001)};
  };
  auto responder = std::make_unique<DnsResponder>(std::move(o), *loop_, collect());
  for (uint16_t id = 0; id < 50; id++)
    ASSERT_TRUE(responder->handle_frame(query_frame("example.com", kTypeA, id)));
  gate.wait_entered(2);  // both workers are inside the resolver

  std::thread opener([&] {
    std::this_thread::sleep_for(50ms);
    gate.open();
  });
  responder.reset();  // waits for the two running lookups, drops the 48 queued
  opener.join();
  loop_->run_once(100).value();

  EXPECT_EQ(calls.load(), 2);
  EXPECT_TRUE(replies_.empty());
}

TEST_F(DnsResponderTest, AnswerPostedBeforeDestructionIsNotDelivered) {
  DnsOptions o = options();
  o.resolver = no_resolver;
  auto responder = std::make_unique<DnsResponder>(std::move(o), *loop_, collect());
  ASSERT_TRUE(responder->handle_frame(query_frame("host.docker.internal", kTypeA)));
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (responder->pending() != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(responder->pending(), 0u);  // the reply is posted to the loop, not yet run

  responder.reset();
  loop_->run_once(100).value();

  EXPECT_TRUE(replies_.empty());
}

}  // namespace
}  // namespace pinata::net
