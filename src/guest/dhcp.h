// DHCPv4 client codec (RFC 2131/2132), pure: builds DISCOVER/REQUEST, parses server replies.
//
// Replies come from an untrusted server: parse_reply checks every length against the buffer
// and returns an error (never reads out of bounds) for truncated packets, bad option lengths,
// the wrong transaction id, client address or magic cookie.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace pinata::guest::dhcp {

using MacAddress = std::array<uint8_t, 6>;
// IPv4 addresses are held in host byte order: 10.0.2.15 == 0x0A00020F.
using Ipv4 = uint32_t;

inline constexpr uint16_t kServerPort = 67;
inline constexpr uint16_t kClientPort = 68;
inline constexpr size_t kHeaderSize = 236;  // BOOTP fixed part, up to the magic cookie
inline constexpr uint32_t kMagicCookie = 0x63825363;
inline constexpr size_t kMinPacketSize = 300;  // BOOTP minimum; we pad requests to it

enum class MessageType : uint8_t {
  kDiscover = 1,
  kOffer = 2,
  kRequest = 3,
  kDecline = 4,
  kAck = 5,
  kNak = 6,
  kRelease = 7,
  kInform = 8,
};

namespace option {
inline constexpr uint8_t kPad = 0;
inline constexpr uint8_t kSubnetMask = 1;
inline constexpr uint8_t kRouter = 3;
inline constexpr uint8_t kDns = 6;
inline constexpr uint8_t kHostName = 12;
inline constexpr uint8_t kDomainName = 15;
inline constexpr uint8_t kInterfaceMtu = 26;
inline constexpr uint8_t kRequestedIp = 50;
inline constexpr uint8_t kLeaseTime = 51;
inline constexpr uint8_t kMessageType = 53;
inline constexpr uint8_t kServerId = 54;
inline constexpr uint8_t kParameterList = 55;
inline constexpr uint8_t kMaxMessageSize = 57;
inline constexpr uint8_t kEnd = 255;
}  // namespace option

struct Option {
  uint8_t code;
  std::vector<uint8_t> data;
};

// A validated reply (OFFER, ACK or NAK).
struct Reply {
  MessageType type;
  Ipv4 your_ip = 0;  // yiaddr
  std::optional<Ipv4> server_id;
  std::optional<Ipv4> subnet_mask;  // contiguous
  std::optional<Ipv4> router;       // the first router listed
  std::vector<Ipv4> dns;            // at most kMaxDns
  std::optional<uint16_t> mtu;      // only if within [kMinMtu, kMaxMtu]
  std::optional<uint32_t> lease_seconds;
  std::optional<std::string> domain;  // only if it is a plausible DNS name
};

inline constexpr size_t kMaxDns = 3;
inline constexpr uint16_t kMinMtu = 576;
inline constexpr uint16_t kMaxMtu = 65535;

std::vector<uint8_t> build_discover(uint32_t xid, const MacAddress& mac, std::string_view hostname);
std::vector<uint8_t> build_request(uint32_t xid, const MacAddress& mac, Ipv4 requested_ip,
                                   Ipv4 server_id, std::string_view hostname);

// Splits the options area (after the magic cookie). Repeated options are concatenated
// (RFC 3396). Errors: an option whose length runs past the end of the buffer.
Result<std::vector<Option>> parse_options(std::span<const uint8_t> area);

// Parses and validates a server reply for our transaction.
Result<Reply> parse_reply(std::span<const uint8_t> packet, uint32_t xid, const MacAddress& mac);

std::string format_ipv4(Ipv4 ip);
// Prefix length of a contiguous netmask, nullopt if the mask has holes.
std::optional<int> netmask_prefix(Ipv4 mask);
// /etc/resolv.conf for a lease ("" if the lease has no DNS servers).
std::string resolv_conf(const Reply& reply);

}  // namespace pinata::guest::dhcp
