#include "guest/dhcp.h"

#include <algorithm>
#include <map>

namespace pinata::guest::dhcp {
namespace {

constexpr uint8_t kOpRequest = 1;
constexpr uint8_t kOpReply = 2;
constexpr uint8_t kHtypeEthernet = 1;
constexpr uint16_t kFlagBroadcast = 0x8000;

void put16(std::vector<uint8_t>& p, size_t at, uint16_t v) {
  p[at] = static_cast<uint8_t>(v >> 8);
  p[at + 1] = static_cast<uint8_t>(v);
}
void put32(std::vector<uint8_t>& p, size_t at, uint32_t v) {
  for (int i = 0; i < 4; i++) p[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
uint32_t get32(std::span<const uint8_t> p, size_t at) {
  return (uint32_t{p[at]} << 24) | (uint32_t{p[at + 1]} << 16) | (uint32_t{p[at + 2]} << 8) |
         uint32_t{p[at + 3]};
}

void add_option(std::vector<uint8_t>& p, uint8_t code, std::span<const uint8_t> data) {
  // Long values are split into several options of at most 255 bytes (RFC 3396).
  size_t off = 0;
  do {
    size_t n = std::min<size_t>(255, data.size() - off);
    p.push_back(code);
    p.push_back(static_cast<uint8_t>(n));
    p.insert(p.end(), data.begin() + off, data.begin() + off + n);
    off += n;
  } while (off < data.size());
}
void add_ip_option(std::vector<uint8_t>& p, uint8_t code, Ipv4 ip) {
  uint8_t b[4] = {static_cast<uint8_t>(ip >> 24), static_cast<uint8_t>(ip >> 16),
                  static_cast<uint8_t>(ip >> 8), static_cast<uint8_t>(ip)};
  add_option(p, code, b);
}

std::vector<uint8_t> base_packet(uint32_t xid, const MacAddress& mac, MessageType type) {
  std::vector<uint8_t> p(kHeaderSize + 4, 0);
  p[0] = kOpRequest;
  p[1] = kHtypeEthernet;
  p[2] = 6;  // hlen
  put32(p, 4, xid);
  put16(p, 10, kFlagBroadcast);  // we have no address yet: ask for broadcast replies
  std::copy(mac.begin(), mac.end(), p.begin() + 28);
  put32(p, kHeaderSize, kMagicCookie);
  uint8_t t = static_cast<uint8_t>(type);
  add_option(p, option::kMessageType, std::span<const uint8_t>(&t, 1));
  return p;
}

void finish_packet(std::vector<uint8_t>& p, std::string_view hostname) {
  static constexpr uint8_t kParams[] = {
      option::kSubnetMask,   option::kRouter,    option::kDns,     option::kDomainName,
      option::kInterfaceMtu, option::kLeaseTime, option::kServerId};
  add_option(p, option::kParameterList, kParams);
  static constexpr uint8_t kMaxSize[] = {0x05, 0xdc};  // 1500
  add_option(p, option::kMaxMessageSize, kMaxSize);
  if (!hostname.empty()) {
    add_option(p, option::kHostName,
               std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(hostname.data()),
                                        std::min<size_t>(hostname.size(), 255)));
  }
  p.push_back(option::kEnd);
  if (p.size() < kMinPacketSize) p.resize(kMinPacketSize, 0);
}

bool plausible_domain(const std::vector<uint8_t>& d) {
  if (d.empty() || d.size() > 253) return false;
  for (uint8_t c : d) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool usable_host_address(Ipv4 ip) {
  uint8_t first = static_cast<uint8_t>(ip >> 24);
  return ip != 0 && ip != 0xffffffff && first != 127 && first < 224;
}

}  // namespace

std::vector<uint8_t> build_discover(uint32_t xid, const MacAddress& mac,
                                    std::string_view hostname) {
  auto p = base_packet(xid, mac, MessageType::kDiscover);
  finish_packet(p, hostname);
  return p;
}

std::vector<uint8_t> build_request(uint32_t xid, const MacAddress& mac, Ipv4 requested_ip,
                                   Ipv4 server_id, std::string_view hostname) {
  auto p = base_packet(xid, mac, MessageType::kRequest);
  add_ip_option(p, option::kRequestedIp, requested_ip);
  add_ip_option(p, option::kServerId, server_id);
  finish_packet(p, hostname);
  return p;
}

Result<std::vector<Option>> parse_options(std::span<const uint8_t> area) {
  std::vector<Option> out;
  std::map<uint8_t, size_t> index;
  size_t i = 0;
  while (i < area.size()) {
    uint8_t code = area[i];
    if (code == option::kPad) {
      i++;
      continue;
    }
    if (code == option::kEnd) return out;
    if (i + 1 >= area.size()) {
      return fail(ErrorKind::kInvalidInput,
                  "option " + std::to_string(code) + " truncated before its length byte");
    }
    size_t len = area[i + 1];
    if (i + 2 + len > area.size()) {
      return fail(ErrorKind::kInvalidInput, "option " + std::to_string(code) + " length " +
                                                std::to_string(len) + " runs past the packet end");
    }
    auto data = area.subspan(i + 2, len);
    auto it = index.find(code);
    if (it == index.end()) {
      index[code] = out.size();
      out.push_back(Option{code, std::vector<uint8_t>(data.begin(), data.end())});
    } else {
      auto& existing = out[it->second].data;
      existing.insert(existing.end(), data.begin(), data.end());
    }
    i += 2 + len;
  }
  return out;  // no END option: tolerated, everything before it was well-formed
}

Result<Reply> parse_reply(std::span<const uint8_t> packet, uint32_t xid, const MacAddress& mac) {
  if (packet.size() < kHeaderSize + 4) {
    return fail(ErrorKind::kInvalidInput,
                "packet too short (" + std::to_string(packet.size()) + " bytes)");
  }
  if (packet[0] != kOpReply) return fail(ErrorKind::kInvalidInput, "not a BOOTREPLY");
  if (packet[1] != kHtypeEthernet || packet[2] != 6) {
    return fail(ErrorKind::kInvalidInput, "not an Ethernet hardware address");
  }
  if (get32(packet, 4) != xid) return fail(ErrorKind::kInvalidInput, "wrong transaction id");
  if (!std::equal(mac.begin(), mac.end(), packet.begin() + 28)) {
    return fail(ErrorKind::kInvalidInput, "reply for another client address");
  }
  if (get32(packet, kHeaderSize) != kMagicCookie) {
    return fail(ErrorKind::kInvalidInput, "bad magic cookie");
  }
  auto opts = parse_options(packet.subspan(kHeaderSize + 4));
  if (!opts) return fail(opts.error());

  Reply r{};
  bool have_type = false;
  auto bad_len = [](const char* what, size_t n) {
    return fail(ErrorKind::kInvalidInput,
                std::string("bad length ") + std::to_string(n) + " for option " + what);
  };
  for (const Option& o : *opts) {
    std::span<const uint8_t> d(o.data);
    switch (o.code) {
      case option::kMessageType:
        if (d.size() != 1) return bad_len("message type", d.size());
        if (d[0] != static_cast<uint8_t>(MessageType::kOffer) &&
            d[0] != static_cast<uint8_t>(MessageType::kAck) &&
            d[0] != static_cast<uint8_t>(MessageType::kNak)) {
          return fail(ErrorKind::kInvalidInput, "unexpected message type " + std::to_string(d[0]));
        }
        r.type = static_cast<MessageType>(d[0]);
        have_type = true;
        break;
      case option::kServerId:
        if (d.size() != 4) return bad_len("server id", d.size());
        r.server_id = get32(d, 0);
        break;
      case option::kSubnetMask:
        if (d.size() != 4) return bad_len("subnet mask", d.size());
        r.subnet_mask = get32(d, 0);
        if (!netmask_prefix(*r.subnet_mask)) {
          return fail(ErrorKind::kInvalidInput,
                      "non-contiguous subnet mask " + format_ipv4(*r.subnet_mask));
        }
        break;
      case option::kRouter:
        if (d.empty() || d.size() % 4 != 0) return bad_len("router", d.size());
        r.router = get32(d, 0);
        break;
      case option::kDns:
        if (d.empty() || d.size() % 4 != 0) return bad_len("dns", d.size());
        for (size_t i = 0; i < d.size() && r.dns.size() < kMaxDns; i += 4) {
          r.dns.push_back(get32(d, i));
        }
        break;
      case option::kInterfaceMtu: {
        if (d.size() != 2) return bad_len("interface mtu", d.size());
        uint16_t mtu = static_cast<uint16_t>((d[0] << 8) | d[1]);
        if (mtu >= kMinMtu) r.mtu = mtu;  // an absurd MTU is ignored, not applied
        break;
      }
      case option::kLeaseTime:
        if (d.size() != 4) return bad_len("lease time", d.size());
        r.lease_seconds = get32(d, 0);
        break;
      case option::kDomainName:
        if (plausible_domain(o.data)) r.domain = std::string(o.data.begin(), o.data.end());
        break;
      default: break;
    }
  }
  if (!have_type) return fail(ErrorKind::kInvalidInput, "no DHCP message type option");
  r.your_ip = get32(packet, 16);
  if (r.type != MessageType::kNak) {
    if (!usable_host_address(r.your_ip)) {
      return fail(ErrorKind::kInvalidInput, "unusable offered address " + format_ipv4(r.your_ip));
    }
    if (!r.server_id) return fail(ErrorKind::kInvalidInput, "no server identifier");
  }
  return r;
}

std::string format_ipv4(Ipv4 ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 0xff) + "." +
         std::to_string((ip >> 8) & 0xff) + "." + std::to_string(ip & 0xff);
}

std::optional<int> netmask_prefix(Ipv4 mask) {
  int prefix = 0;
  while (prefix < 32 && (mask & (0x80000000u >> prefix))) prefix++;
  uint32_t expected = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  if (mask != expected) return std::nullopt;
  return prefix;
}

std::string resolv_conf(const Reply& reply) {
  std::string out;
  if (reply.domain) out += "search " + *reply.domain + "\n";
  for (Ipv4 ip : reply.dns) out += "nameserver " + format_ipv4(ip) + "\n";
  return reply.dns.empty() ? "" : out;
}

}  // namespace pinata::guest::dhcp
