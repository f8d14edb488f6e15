#include "net/dns.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace pinata::net {

namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint8_t kIpProtoUdp = 17;
constexpr uint16_t kIpFlagDontFragment = 0x4000;
constexpr uint16_t kIpFlagMoreFragments = 0x2000;
constexpr uint16_t kIpFragmentOffsetMask = 0x1fff;
constexpr uint8_t kReplyIpTtl = 64;

// DNS header flag bits (RFC 1035 4.1.1).
constexpr uint16_t kFlagQr = 0x8000;
constexpr uint16_t kOpcodeMask = 0x7800;
constexpr uint16_t kFlagTc = 0x0200;
constexpr uint16_t kFlagRd = 0x0100;
constexpr uint16_t kFlagRa = 0x0080;

constexpr size_t kMaxLabelLength = 63;
// Answer records name the question by a compression pointer to offset 12, where the
// question's QNAME starts: 2 (name) + 2 (type) + 2 (class) + 4 (TTL) + 2 (RDLENGTH).
constexpr size_t kAnswerFixedSize = 12;
constexpr uint8_t kPointerToQuestion[2] = {0xc0, kDnsHeaderSize};

uint16_t load_be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t load_be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}
void put_be16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}
void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put_bytes(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

tl::unexpected<Error> malformed(const std::string& why) {
  return fail(ErrorKind::kInvalidInput, "DNS query frame: " + why);
}
tl::unexpected<Error> not_ours(const std::string& why) {
  return fail(ErrorKind::kUnsupported, "not a query for the DNS responder: " + why);
}

// Only letters, digits, '-' and '_' reach getaddrinfo: a label holding '.', NUL, a space or
// non-ASCII bytes would mean something else once the labels are joined into a C string
// ("a.b" as one label would become two), so such names are left to the upstream server,
// which sees the wire format. '_' is not valid in hostnames but common in DNS names.
bool hostname_byte(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

char lower(uint8_t c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c); }

std::string normalize_name(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](char c) { return lower(static_cast<uint8_t>(c)); });
  while (!name.empty() && name.back() == '.') name.pop_back();
  return name;
}

// Address order as the resolver gave it (it may be sorted by RFC 6724 preference), without
// duplicates.
std::vector<Address> unique_of_family(const std::vector<Address>& in, int family) {
  std::vector<Address> out;
  for (const Address& a : in) {
    if (a.family != family) continue;
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  return out;
}

}  // namespace

Address Address::v4(uint32_t host_order) {
  Address a;
  a.family = AF_INET;
  for (int i = 0; i < 4; i++) a.bytes[i] = static_cast<uint8_t>(host_order >> (24 - 8 * i));
  return a;
}

Address Address::v6(const std::array<uint8_t, 16>& bytes) {
  Address a;
  a.family = AF_INET6;
  a.bytes = bytes;
  return a;
}

uint16_t internet_checksum_add(std::span<const uint8_t> bytes, uint32_t sum) {
  size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) sum += load_be16(&bytes[i]);
  if (i < bytes.size()) sum += uint32_t{bytes[i]} << 8;  // odd length: pad with a zero byte
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

Result<DnsQuery> parse_query(std::span<const uint8_t> frame, uint32_t nameserver_ip) {
  DnsQuery q;

  // Ethernet II. A VLAN tag (0x8100) is not ours: the guest's network is untagged.
  if (frame.size() < kEthernetHeaderSize) return malformed("shorter than an Ethernet header");
  std::copy_n(frame.begin(), 6, q.server_mac.begin());
  std::copy_n(frame.begin() + 6, 6, q.guest_mac.begin());
  if (load_be16(&frame[12]) != kEtherTypeIpv4) return not_ours("not IPv4");
  // A group source address is not a host we could reply to.
  if (q.guest_mac[0] & 1) return malformed("multicast source MAC");

  // IPv4. The frame may be longer than the packet (Ethernet pads to 60 bytes): trust the
  // total length, after checking it against the frame.
  std::span<const uint8_t> ip = frame.subspan(kEthernetHeaderSize);
  if (ip.size() < kIpv4HeaderSize) return malformed("shorter than an IPv4 header");
  if ((ip[0] >> 4) != 4) return malformed("IP version is not 4");
  const size_t ihl = size_t{ip[0] & 0x0fu} * 4;
  if (ihl < kIpv4HeaderSize) return malformed("IHL below 5");
  const size_t total = load_be16(&ip[2]);
  if (total < ihl || total > ip.size()) return malformed("IPv4 total length outside the frame");
  // libslirp drops packets with a bad header checksum; a packet we took would not be.
  if (internet_checksum_add(ip.first(ihl)) != 0xffff) return malformed("bad IPv4 header checksum");
  const uint16_t fragment = load_be16(&ip[6]);
  // Fragments are left to libslirp, which reassembles them; a DNS query over 576 bytes is
  // not something resolvers send.
  if (fragment & (kIpFlagMoreFragments | kIpFragmentOffsetMask)) return not_ours("IPv4 fragment");
  if (ip[9] != kIpProtoUdp) return not_ours("not UDP");
  q.guest_ip = load_be32(&ip[12]);
  q.server_ip = load_be32(&ip[16]);
  if (nameserver_ip == 0 || q.server_ip != nameserver_ip) return not_ours("other destination IP");

  // UDP. The checksum is not checked: with virtio-net checksum offload the guest leaves it
  // partial, and the IPv4/DNS checks catch what matters.
  std::span<const uint8_t> udp = ip.subspan(ihl, total - ihl);
  if (udp.size() < kUdpHeaderSize) return malformed("shorter than a UDP header");
  q.guest_port = load_be16(&udp[0]);
  if (load_be16(&udp[2]) != kDnsPort) return not_ours("other destination port");
  if (q.guest_port == 0) return malformed("UDP source port 0");
  const size_t udp_length = load_be16(&udp[4]);
  if (udp_length < kUdpHeaderSize || udp_length > udp.size())
    return malformed("UDP length outside the IPv4 packet");
  std::span<const uint8_t> dns = udp.subspan(kUdpHeaderSize, udp_length - kUdpHeaderSize);

  // DNS header. Anything but one standard query is passed on: the upstream server answers
  // it (FORMERR, NOTIMP...) better than we could.
  if (dns.size() < kDnsHeaderSize) return malformed("shorter than a DNS header");
  q.id = load_be16(&dns[0]);
  q.flags = load_be16(&dns[2]);
  if (q.flags & kFlagQr) return not_ours("a DNS response, not a query");
  if (q.flags & kOpcodeMask) return not_ours("DNS opcode is not QUERY");
  if (load_be16(&dns[4]) != 1) return not_ours("QDCOUNT is not 1");
  if (load_be16(&dns[6]) != 0 || load_be16(&dns[8]) != 0)
    return not_ours("a query with answer or authority records");
  // ARCOUNT is not checked: resolvers add an EDNS OPT record (RFC 6891), which we ignore; a
  // reply without OPT tells them we do not do EDNS, so they keep to 512 bytes.

  // QNAME: uncompressed labels. A query has nothing earlier to point to, so a compression
  // pointer is malformed; the extended label types (0x40, 0x80) are obsolete.
  size_t pos = kDnsHeaderSize;
  size_t wire_length = 1;  // the terminating zero
  bool hostname = true;
  for (;;) {
    if (pos >= dns.size()) return malformed("QNAME runs past the end");
    const uint8_t length = dns[pos];
    if ((length & 0xc0) == 0xc0) return malformed("compression pointer in the question");
    if (length & 0xc0) return malformed("extended label type");
    pos++;
    if (length == 0) break;
    // 63 is implied by the two top bits being clear; the total is what needs checking.
    static_assert(kMaxLabelLength == 0x3f);
    wire_length += 1 + size_t{length};
    if (wire_length > kMaxNameWireLength) return malformed("QNAME longer than 255 bytes");
    if (length > dns.size() - pos) return malformed("label runs past the end");
    if (!q.name.empty()) q.name.push_back('.');
    for (size_t i = 0; i < length; i++) {
      const uint8_t c = dns[pos + i];
      hostname = hostname && hostname_byte(c);
      q.name.push_back(lower(c));
    }
    pos += length;
  }
  if (dns.size() - pos < 4) return malformed("QTYPE/QCLASS run past the end");
  q.qtype = load_be16(&dns[pos]);
  const uint16_t qclass = load_be16(&dns[pos + 2]);
  pos += 4;
  q.question.assign(dns.begin() + kDnsHeaderSize, dns.begin() + static_cast<ptrdiff_t>(pos));

  if (q.name.empty()) return not_ours("a query for the root");
  if (!hostname) return not_ours("a name that is not a hostname");
  if (qclass != kClassIn) return not_ours("QCLASS is not IN");
  if (q.qtype != kTypeA && q.qtype != kTypeAAAA && q.qtype != kTypeAny)
    return not_ours("QTYPE " + std::to_string(q.qtype) + " (only A, AAAA and ANY are answered)");
  return q;
}

Result<std::vector<Address>> resolve_with_getaddrinfo(const std::string& name, int family) {
  struct addrinfo hints {};
  hints.ai_family = family;
  // One result per address (not one per socket type). No AI_ADDRCONFIG: the answer is for
  // the guest, whose network is not the host's (DnsOptions::ipv6 decides about AAAA).
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    switch (rc) {
      case EAI_NONAME:
        return fail(ErrorKind::kNotFound, "getaddrinfo " + name + ": " + ::gai_strerror(rc));
#ifdef EAI_NODATA
      case EAI_NODATA:  // the name exists, without addresses (of this family)
#endif
#ifdef EAI_ADDRFAMILY
      case EAI_ADDRFAMILY:  // the name has no address of this family
#endif
        return std::vector<Address>{};
      case EAI_SYSTEM:
        return fail_errno("getaddrinfo " + name);
      default:
        return fail(ErrorKind::kIo, "getaddrinfo " + name + ": " + ::gai_strerror(rc));
    }
  }
  std::vector<Address> out;
  for (const struct addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(sockaddr_in)) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
      out.push_back(Address::v4(ntohl(sin->sin_addr.s_addr)));
    } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(sockaddr_in6)) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
      std::array<uint8_t, 16> bytes;
      std::memcpy(bytes.data(), &sin6->sin6_addr, bytes.size());
      out.push_back(Address::v6(bytes));
    }
  }
  ::freeaddrinfo(list);
  return out;
}

DnsAnswer resolve_query(const DnsQuery& query,
                        const std::vector<std::pair<std::string, uint32_t>>& fixed,
                        const Resolver& resolver, bool ipv6) {
  const bool want_v6 = query.qtype == kTypeAAAA;
  for (const auto& [name, ip] : fixed) {
    if (name != query.name) continue;
    // The fixed names are the host's IPv4 address on the guest network; there is no IPv6
    // one, and NOERROR without answers (not NXDOMAIN) keeps the A answer usable: some
    // resolvers (musl) give up on the name if either the A or the AAAA query says NXDOMAIN.
    if (want_v6) return DnsAnswer{};
    return DnsAnswer{Rcode::kNoError, {Address::v4(ip)}};
  }
  if (want_v6 && !ipv6) return DnsAnswer{};

  const int family = want_v6 ? AF_INET6 : AF_INET;
  Result<std::vector<Address>> found = resolver(query.name, family);
  if (found) return DnsAnswer{Rcode::kNoError, unique_of_family(*found, family)};
  if (found.error().kind() != ErrorKind::kNotFound) {
    log::debug("dns: SERVFAIL for %s: %s", query.name.c_str(), found.error().message().c_str());
    return DnsAnswer{Rcode::kServFail, {}};
  }
  // getaddrinfo says EAI_NONAME both when the name does not exist and when it exists only
  // with the other family (a name in /etc/hosts with just an IPv4 address, asked for
  // AF_INET6). NXDOMAIN means "no such name, for any type" to the guest (and musl drops the
  // A answer too), so ask for the other family before saying it.
  Result<std::vector<Address>> other = resolver(query.name, want_v6 ? AF_INET : AF_INET6);
  if (other) return DnsAnswer{};
  if (other.error().kind() == ErrorKind::kNotFound) return DnsAnswer{Rcode::kNxDomain, {}};
  // Do not claim the name is absent without knowing: the guest would cache that.
  log::debug("dns: SERVFAIL for %s: %s", query.name.c_str(), other.error().message().c_str());
  return DnsAnswer{Rcode::kServFail, {}};
}

std::vector<uint8_t> build_reply(const DnsQuery& query, const DnsAnswer& answer) {
  const bool want_v6 = query.qtype == kTypeAAAA;
  const uint16_t rr_type = want_v6 ? kTypeAAAA : kTypeA;  // ANY is answered as A
  const int family = want_v6 ? AF_INET6 : AF_INET;
  const size_t rdlength = want_v6 ? 16 : 4;

  std::vector<uint8_t> dns;
  dns.reserve(kMaxDnsUdpPayload);
  uint16_t flags =
      kFlagQr | (query.flags & kFlagRd) | kFlagRa | static_cast<uint16_t>(answer.rcode);
  put_be16(dns, query.id);
  put_be16(dns, flags);
  put_be16(dns, 1);  // QDCOUNT
  put_be16(dns, 0);  // ANCOUNT, set below
  put_be16(dns, 0);  // NSCOUNT
  put_be16(dns, 0);  // ARCOUNT
  // parse_query limits the question to 259 bytes, so it always fits in 512.
  put_bytes(dns, query.question);
  uint16_t answers = 0;
  if (answer.rcode == Rcode::kNoError) {
    for (const Address& a : answer.addresses) {
      if (a.family != family) continue;
      if (dns.size() + kAnswerFixedSize + rdlength > kMaxDnsUdpPayload) {
        // RFC 2181 9: TC says the answer set is incomplete; the guest may retry over TCP
        // (which libslirp forwards upstream) or use what it got.
        flags |= kFlagTc;
        break;
      }
      put_bytes(dns, kPointerToQuestion);
      put_be16(dns, rr_type);
      put_be16(dns, kClassIn);
      put_be32(dns, kAnswerTtlSeconds);
      put_be16(dns, static_cast<uint16_t>(rdlength));
      put_bytes(dns, std::span<const uint8_t>(a.bytes.data(), rdlength));
      answers++;
    }
  }
  store_be16(&dns[2], flags);
  store_be16(&dns[6], answers);

  const size_t udp_length = kUdpHeaderSize + dns.size();
  const size_t ip_length = kIpv4HeaderSize + udp_length;
  std::vector<uint8_t> frame;
  frame.reserve(kEthernetHeaderSize + ip_length);
  put_bytes(frame, query.guest_mac);
  put_bytes(frame, query.server_mac);
  put_be16(frame, kEtherTypeIpv4);

  const size_t ip_start = frame.size();
  frame.push_back(0x45);  // version 4, IHL 5
  frame.push_back(0);     // DSCP/ECN
  put_be16(frame, static_cast<uint16_t>(ip_length));
  put_be16(frame, 0);  // identification: unused with DF (RFC 6864)
  put_be16(frame, kIpFlagDontFragment);
  frame.push_back(kReplyIpTtl);
  frame.push_back(kIpProtoUdp);
  put_be16(frame, 0);  // header checksum, set below
  put_be32(frame, query.server_ip);
  put_be32(frame, query.guest_ip);
  const uint16_t ip_sum = internet_checksum_add(std::span(frame).subspan(ip_start));
  store_be16(&frame[ip_start + 10], static_cast<uint16_t>(~ip_sum));

  const size_t udp_start = frame.size();
  put_be16(frame, kDnsPort);
  put_be16(frame, query.guest_port);
  put_be16(frame, static_cast<uint16_t>(udp_length));
  put_be16(frame, 0);  // checksum, set below
  put_bytes(frame, dns);
  // The UDP checksum covers a pseudo header (RFC 768): addresses, protocol, UDP length.
  // Computed rather than left 0 so the guest can check the reply end to end.
  std::vector<uint8_t> pseudo;
  put_be32(pseudo, query.server_ip);
  put_be32(pseudo, query.guest_ip);
  put_be16(pseudo, kIpProtoUdp);
  put_be16(pseudo, static_cast<uint16_t>(udp_length));
  uint16_t udp_sum =
      ~internet_checksum_add(std::span(frame).subspan(udp_start), internet_checksum_add(pseudo));
  if (udp_sum == 0) udp_sum = 0xffff;  // 0 would mean "no checksum"
  store_be16(&frame[udp_start + 6], udp_sum);
  return frame;
}

DnsResponder::DnsResponder(DnsOptions options, EventLoop& loop,
                           std::function<void(std::vector<uint8_t>)> send_to_guest)
    : options_(std::move(options)), loop_(loop), sink_(std::make_shared<Sink>()) {
  sink_->send = std::move(send_to_guest);
  if (!options_.resolver) options_.resolver = resolve_with_getaddrinfo;
  // Matching is on the lower-cased query name; accept fixed names written otherwise.
  for (auto& entry : options_.fixed) entry.first = normalize_name(std::move(entry.first));
  const unsigned workers = std::max(1u, options_.workers);
  workers_.reserve(workers);
  for (unsigned i = 0; i < workers; i++) workers_.emplace_back([this] { worker(); });
}

DnsResponder::~DnsResponder() {
  sink_->alive.store(false);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    pending_ -= queue_.size();
    queue_.clear();
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

bool DnsResponder::handle_frame(std::span<const uint8_t> frame) {
  Result<DnsQuery> query = parse_query(frame, options_.nameserver_ip);
  if (!query) return false;
  if (options_.gateway_mac != MacAddress{}) {
    query->server_mac = options_.gateway_mac;
  } else if (query->server_mac[0] & 1) {
    // Sent to a broadcast/multicast MAC: we cannot reply from that address.
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return true;
    if (pending_ < options_.max_pending) {
      queue_.push_back(std::move(*query));
      pending_++;
      wake_.notify_one();
      return true;
    }
  }
  // Taken but dropped: passing it to libslirp would answer from the upstream server without
  // /etc/hosts, inconsistently; the guest retries after its timeout.
  drop_log_.warn("dns: %zu queries in flight, dropping the query for %s", options_.max_pending,
                 query->name.c_str());
  return true;
}

size_t DnsResponder::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_;
}

void DnsResponder::worker() {
  for (;;) {
    DnsQuery query;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      query = std::move(queue_.front());
      queue_.pop_front();
    }
    DnsAnswer answer = resolve_query(query, options_.fixed, options_.resolver, options_.ipv6);
    std::vector<uint8_t> reply = build_reply(query, answer);
    std::lock_guard<std::mutex> lock(mutex_);
    pending_--;
    // Once stopping, the loop may be about to go away with the responder: post nothing.
    if (stopping_) return;
    loop_.post([sink = sink_, reply = std::move(reply)]() mutable {
      if (sink->alive.load()) sink->send(std::move(reply));
    });
  }
}

}  // namespace pinata::net
