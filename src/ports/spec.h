// Forward specs: the names of the port-forwarding tree (docs/protocols/ports.md).
//
//   tcp:127.0.0.1:8080:tcp:172.17.0.2:80
//   proto:host_ip:host_port:proto:container_ip:container_port
//
// The guest sends these (as a directory name and as the text written to its ctl file), so
// they are parsed strictly, as untrusted bytes: IPv4 dotted quads without leading zeros (so
// nobody can wonder whether "010" is octal), decimal ports 1-65535, both protos the same.
// Pure functions; fuzz target `ports_spec`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace pinata::ports {

enum class Proto { kTcp, kUdp };

// "tcp" / "udp".
std::string_view proto_name(Proto proto);

struct Ipv4Endpoint {
  uint32_t ip = 0;  // host byte order: 127.0.0.1 is 0x7f000001
  uint16_t port = 0;
  bool operator==(const Ipv4Endpoint&) const = default;
};

struct ForwardSpec {
  Proto proto = Proto::kTcp;
  Ipv4Endpoint host;       // where the host listens (0.0.0.0 is mapped by policy, see tree.h)
  Ipv4Endpoint container;  // where the guest forwarder connects
  bool operator==(const ForwardSpec&) const = default;
};

// The longest spec: "udp:255.255.255.255:65535:udp:255.255.255.255:65535" is 51 bytes; input
// longer than this is rejected before it is looked at.
constexpr size_t kMaxSpecBytes = 64;

// Parses a spec; kInvalidInput with a message saying which part is wrong and what is accepted.
[[nodiscard]] Result<ForwardSpec> parse_spec(std::string_view text);
// The canonical text; parse_spec(format_spec(s)) == s.
[[nodiscard]] std::string format_spec(const ForwardSpec& spec);

[[nodiscard]] Result<Proto> parse_proto(std::string_view text);
// "a.b.c.d", each 0-255 in decimal, no leading zeros, no spaces.
[[nodiscard]] Result<uint32_t> parse_ipv4(std::string_view text);
[[nodiscard]] std::string format_ipv4(uint32_t ip);
// 1-65535 in decimal, no sign, no leading zeros.
[[nodiscard]] Result<uint16_t> parse_port(std::string_view text);
// "a.b.c.d:port".
[[nodiscard]] std::string format_endpoint(const Ipv4Endpoint& endpoint);

}  // namespace pinata::ports
