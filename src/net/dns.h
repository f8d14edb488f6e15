// DNS for the guest, answered with the HOST's resolver.
//
// libslirp can forward the guest's DNS packets to the nameserver in the host's resolv.conf,
// but then the guest never sees what the host's getaddrinfo sees: /etc/hosts, nsswitch
// modules (mdns, libvirt, systemd-resolved's per-link DNS, VPN split DNS). So pinata-net puts
// a DnsResponder in front of libslirp: A, AAAA and ANY queries (class IN) to
// nameserver_ip:53 over UDP are answered here with getaddrinfo (on worker threads, because it
// blocks); everything else (other types, TCP, malformed packets) goes on to libslirp, which
// forwards it upstream.
//
// The pure part (parse_query, resolve_query, build_reply) needs no threads or network, so it
// is unit-tested and fuzzed (fuzz/net_dns_fuzzer.cc) on its own.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "base/result.h"

namespace pinata::net {

using MacAddress = std::array<uint8_t, 6>;

inline constexpr uint16_t kDnsPort = 53;
inline constexpr size_t kEthernetHeaderSize = 14;
inline constexpr size_t kIpv4HeaderSize = 20;  // without options
inline constexpr size_t kUdpHeaderSize = 8;
inline constexpr size_t kDnsHeaderSize = 12;
// Without EDNS a DNS message over UDP is at most 512 bytes (RFC 1035 4.2.1); we never send
// more, whatever the query's OPT record offers.
inline constexpr size_t kMaxDnsUdpPayload = 512;
inline constexpr size_t kMaxNameWireLength = 255;  // RFC 1035 3.1, length bytes included
inline constexpr uint32_t kAnswerTtlSeconds = 60;

// Query types we answer; the rest go upstream.
inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeAAAA = 28;
inline constexpr uint16_t kTypeAny = 255;  // answered as A (RFC 8482 allows a subset)
inline constexpr uint16_t kClassIn = 1;

enum class Rcode : uint8_t {
  kNoError = 0,
  kServFail = 2,
  kNxDomain = 3,
};

// One address in network byte order: the first 4 bytes for AF_INET, all 16 for AF_INET6.
struct Address {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};

  static Address v4(uint32_t host_order);
  static Address v6(const std::array<uint8_t, 16>& bytes);
  bool operator==(const Address&) const = default;
};

// Looks `name` up for `family` (AF_INET or AF_INET6). The outcome maps onto DNS like this:
//   a non-empty list                  → NOERROR with those addresses
//   an empty list                     → the name exists without addresses of this family:
//                                       NOERROR, no answers ("NODATA")
//   an error of kind kNotFound        → the name does not exist (EAI_NONAME): NXDOMAIN, unless
//                                       the other family finds it (then NODATA, see
//                                       resolve_query)
//   any other error                   → SERVFAIL (the guest retries or tries another server)
using Resolver = std::function<Result<std::vector<Address>>(const std::string& name, int family)>;

// The default Resolver: getaddrinfo(3), so the host's /etc/hosts, resolv.conf (including its
// search domains) and nsswitch all apply. Blocks for as long as the host's resolver does.
[[nodiscard]] Result<std::vector<Address>> resolve_with_getaddrinfo(const std::string& name,
                                                                    int family);

struct DnsOptions {
  // Host byte order, e.g. 192.168.65.7: queries to this IP:53 (UDP) are ours. 0: none are.
  uint32_t nameserver_ip = 0;
  // Name (lower case, no trailing dot; others are normalised) → IPv4 (host byte order).
  std::vector<std::pair<std::string, uint32_t>> fixed;
  unsigned workers = 2;  // resolver threads (getaddrinfo blocks); at least 1 is started
  // Queries in flight; beyond this, new queries are dropped (the guest retries).
  size_t max_pending = 256;
  // Source MAC of the replies. All zero (the default): the destination MAC of the query,
  // i.e. whatever MAC the guest resolved the nameserver IP to (slirp's gateway MAC).
  MacAddress gateway_mac{};
  // false: AAAA queries get NOERROR with no answers, without asking the resolver — for a
  // guest network without IPv6, where AAAA answers only make clients try (and time out on)
  // addresses they cannot reach first.
  bool ipv6 = true;
  // Empty: resolve_with_getaddrinfo. Tests inject a fake. Called on the worker threads.
  Resolver resolver;
};

// A parsed guest query: everything needed to address and build the reply.
struct DnsQuery {
  MacAddress guest_mac{};   // Ethernet source
  MacAddress server_mac{};  // Ethernet destination (the reply's source, see gateway_mac)
  uint32_t guest_ip = 0;    // host byte order
  uint32_t server_ip = 0;   // host byte order (== nameserver_ip)
  uint16_t guest_port = 0;
  uint16_t id = 0;
  uint16_t flags = 0;  // as sent; the reply copies RD from it
  uint16_t qtype = 0;
  std::string name;  // lower case, no trailing dot, only [a-z0-9_-] labels joined by '.'
  // QNAME + QTYPE + QCLASS exactly as sent (case kept: resolvers that randomise the case of
  // the name, "DNS 0x20", compare it with the echo).
  std::vector<uint8_t> question;
};

// What to answer a query with.
struct DnsAnswer {
  Rcode rcode = Rcode::kNoError;
  std::vector<Address> addresses;  // those of the wrong family for the qtype are skipped
};

// Parses one Ethernet frame from the guest. Succeeds only for an Ethernet II / IPv4 (valid
// header checksum, IHL and lengths, not a fragment) / UDP datagram to nameserver_ip:53 that
// carries one standard query (QR=0, OPCODE=0, QDCOUNT=1, no answer or authority records;
// additional records such as an EDNS OPT are allowed and ignored) for type A, AAAA or ANY,
// class IN, whose name is an uncompressed hostname (labels of 1..63 bytes of [A-Za-z0-9_-],
// at most 255 bytes on the wire, not the root). Errors: kUnsupported for frames that are
// well formed but not ours to answer (the caller passes them on to libslirp), kInvalidInput
// for malformed ones. Never reads outside `frame`.
[[nodiscard]] Result<DnsQuery> parse_query(std::span<const uint8_t> frame, uint32_t nameserver_ip);

// Decides the answer to `query` with `fixed` names and `resolver` (blocking: called on a
// worker thread). Fixed names answer A/ANY with their address and AAAA with no answers,
// without calling the resolver. `ipv6` as in DnsOptions.
[[nodiscard]] DnsAnswer resolve_query(const DnsQuery& query,
                                      const std::vector<std::pair<std::string, uint32_t>>& fixed,
                                      const Resolver& resolver, bool ipv6);

// The reply frame for `query`: Ethernet (query.server_mac → query.guest_mac), IPv4 (DF, TTL
// 64, header checksum), UDP (server_ip:53 → guest_ip:guest_port, checksum computed), DNS (same
// id, QR, RD copied, RA, the question echoed, one A/AAAA record per address with a 60 s TTL).
// The DNS payload stays within 512 bytes: answers that do not fit are left out and TC is set.
[[nodiscard]] std::vector<uint8_t> build_reply(const DnsQuery& query, const DnsAnswer& answer);

// The ones' complement sum of RFC 1071 over `bytes`, folded, not inverted, starting at `sum`.
[[nodiscard]] uint16_t internet_checksum_add(std::span<const uint8_t> bytes, uint32_t sum = 0);

// Answers the guest's DNS queries on worker threads; see the file comment.
//
// Threads: the constructor, handle_frame and the destructor run on `loop`'s thread (the
// destructor may also run after the loop has stopped for good); the loop must outlive the
// responder. Replies reach send_to_guest through loop.post; one still queued in the loop when
// the responder is destroyed is dropped.
class DnsResponder {
 public:
  // send_to_guest runs on `loop`'s thread (posted with loop.post) with a complete Ethernet frame.
  DnsResponder(DnsOptions options, EventLoop& loop,
               std::function<void(std::vector<uint8_t>)> send_to_guest);
  // Joins the workers; answers still queued are dropped. A getaddrinfo call already running
  // cannot be interrupted, so this waits for it (bounded by the host's resolv.conf timeout
  // and attempts).
  ~DnsResponder();
  DnsResponder(const DnsResponder&) = delete;
  DnsResponder& operator=(const DnsResponder&) = delete;

  // One Ethernet frame from the guest, on the loop thread. Returns true if it is an IPv4/UDP
  // DNS query to nameserver_ip:53 that this responder takes (it answers asynchronously);
  // false if the caller should pass the frame on (to libslirp). A query taken while
  // max_pending queries are in flight is dropped (true: the guest retries).
  [[nodiscard]] bool handle_frame(std::span<const uint8_t> frame);

  // Queries taken and not yet answered (queued or being resolved). For tests and stats.
  [[nodiscard]] size_t pending() const;

 private:
  // Shared with the tasks posted to the loop, which may run after the responder is gone.
  struct Sink {
    std::function<void(std::vector<uint8_t>)> send;
    std::atomic<bool> alive{true};
  };

  void worker();

  DnsOptions options_;
  EventLoop& loop_;
  std::shared_ptr<Sink> sink_;
  log::RateLimitedLog drop_log_;  // loop thread only

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<DnsQuery> queue_;  // guarded by mutex_
  size_t pending_ = 0;          // guarded by mutex_: queued + being resolved
  bool stopping_ = false;       // guarded by mutex_
  std::vector<std::thread> workers_;
};

}  // namespace pinata::net
