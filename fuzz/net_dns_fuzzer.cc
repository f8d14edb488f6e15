// Fuzzes the DNS responder's codec (src/net/dns.h): the input is one Ethernet frame from the
// guest (untrusted bytes). If parse_query takes it (nameserver 192.168.65.7, as in the seeds),
// the query is answered through resolve_query with a fake resolver (no network; its outcome
// depends on the name) and build_reply. Oracles: ASan/UBSan, and every reply must be well
// formed: within 14+20+8+512 bytes, valid IPv4 header and UDP checksums, lengths that match,
// the query's id and the question echoed byte for byte.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "net/dns.h"

using namespace pinata;
using namespace pinata::net;

namespace {

constexpr uint32_t kNameserver = 0xC0A84107;  // 192.168.65.7

[[noreturn]] void oracle(const char* what) {
  std::fprintf(stderr, "net_dns_fuzzer: %s\n", what);
  std::abort();
}

uint16_t be16(const std::vector<uint8_t>& v, size_t at) {
  return static_cast<uint16_t>(v[at] << 8 | v[at + 1]);
}

void check_reply(const DnsQuery& query, const std::vector<uint8_t>& f) {
  constexpr size_t kDns = kEthernetHeaderSize + kIpv4HeaderSize + kUdpHeaderSize;
  if (f.size() < kDns + kDnsHeaderSize + query.question.size()) oracle("reply too short");
  if (f.size() > kDns + kMaxDnsUdpPayload) oracle("DNS payload over 512 bytes");
  if (be16(f, kEthernetHeaderSize + 2) != f.size() - kEthernetHeaderSize)
    oracle("IPv4 total length");
  if (be16(f, kEthernetHeaderSize + kIpv4HeaderSize + 4) !=
      f.size() - kEthernetHeaderSize - kIpv4HeaderSize)
    oracle("UDP length");
  std::span<const uint8_t> bytes(f);
  if (internet_checksum_add(bytes.subspan(kEthernetHeaderSize, kIpv4HeaderSize)) != 0xffff)
    oracle("IPv4 header checksum");
  std::vector<uint8_t> pseudo(bytes.begin() + kEthernetHeaderSize + 12,
                              bytes.begin() + kEthernetHeaderSize + 20);  // src, dst
  pseudo.push_back(0);
  pseudo.push_back(17);
  pseudo.push_back(f[kEthernetHeaderSize + kIpv4HeaderSize + 4]);
  pseudo.push_back(f[kEthernetHeaderSize + kIpv4HeaderSize + 5]);
  uint16_t sum = internet_checksum_add(pseudo);
  if (internet_checksum_add(bytes.subspan(kEthernetHeaderSize + kIpv4HeaderSize), sum) != 0xffff)
    oracle("UDP checksum");
  if (be16(f, kDns) != query.id) oracle("id not echoed");
  if (!std::equal(query.question.begin(), query.question.end(), f.begin() + kDns + kDnsHeaderSize))
    oracle("question not echoed");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Result<DnsQuery> query = parse_query(std::span<const uint8_t>(data, size), kNameserver);
  if (!query) return 0;
  if (query->name.empty() || query->question.size() > kMaxNameWireLength + 4)
    oracle("parse_query accepted an empty or over-long name");

  // The fake resolver's outcome is a function of the name, so the corpus drives every branch
  // of resolve_query: addresses (sometimes enough to truncate), NODATA, NXDOMAIN, SERVFAIL.
  const size_t h = query->name.size();
  Resolver fake = [h](const std::string&, int family) -> Result<std::vector<Address>> {
    switch (h % 5) {
      case 0:
        return fail(ErrorKind::kNotFound, "no such name");
      case 1:
        return fail(ErrorKind::kIo, "resolver down");
      case 2:
        if (family == AF_INET6) return fail(ErrorKind::kNotFound, "no such name");
        break;
      default:
        break;
    }
    std::vector<Address> out;
    for (size_t i = 0; i < h * 3; i++) {
      out.push_back(Address::v4(0x0a000000 + static_cast<uint32_t>(i)));
      std::array<uint8_t, 16> v6{0xfd};
      v6[15] = static_cast<uint8_t>(i);
      out.push_back(Address::v6(v6));
    }
    return out;
  };
  const std::vector<std::pair<std::string, uint32_t>> fixed = {
      {"host.docker.internal", 0xC0A84101}};
  for (bool ipv6 : {true, false}) {
    DnsAnswer answer = resolve_query(*query, fixed, fake, ipv6);
    check_reply(*query, build_reply(*query, answer));
  }
  check_reply(*query, build_reply(*query, DnsAnswer{Rcode::kNxDomain, {}}));
  return 0;
}
