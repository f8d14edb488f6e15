#include "ports/spec.h"

#include <array>
#include <vector>

namespace pinata::ports {
namespace {

// Splits on `sep` into at most `max` + 1 parts: one more than a caller expects is enough to
// tell that there were too many.
std::vector<std::string_view> split(std::string_view text, char sep, size_t max) {
  std::vector<std::string_view> parts;
  while (parts.size() <= max) {
    size_t colon = text.find(sep);
    if (colon == std::string_view::npos) {
      parts.push_back(text);
      break;
    }
    parts.push_back(text.substr(0, colon));
    text.remove_prefix(colon + 1);
  }
  return parts;
}

// A decimal number of 1..max_digits digits without leading zeros ("0" itself is allowed).
bool parse_decimal(std::string_view text, size_t max_digits, uint32_t& out) {
  if (text.empty() || text.size() > max_digits) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  out = v;
  return true;
}

// Printable for error messages: untrusted bytes are shown escaped and cut short.
std::string quote(std::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < 80; i++) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (text.size() > 80) out += "...";
  return out + "\"";
}

}  // namespace

std::string_view proto_name(Proto proto) { return proto == Proto::kTcp ? "tcp" : "udp"; }

Result<Proto> parse_proto(std::string_view text) {
  if (text == "tcp") return Proto::kTcp;
  if (text == "udp") return Proto::kUdp;
  return fail(ErrorKind::kInvalidInput, "protocol " + quote(text) + " is not tcp or udp");
}

Result<uint32_t> parse_ipv4(std::string_view text) {
  auto parts = split(text, '.', 4);
  uint32_t ip = 0;
  bool ok = parts.size() == 4;
  for (size_t i = 0; ok && i < 4; i++) {
    uint32_t octet = 0;
    ok = parse_decimal(parts[i], 3, octet) && octet <= 255;
    ip = (ip << 8) | octet;
  }
  if (!ok) {
    return fail(ErrorKind::kInvalidInput,
                "address " + quote(text) + " is not an IPv4 address like 172.17.0.2");
  }
  return ip;
}

std::string format_ipv4(uint32_t ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 255) + "." +
         std::to_string((ip >> 8) & 255) + "." + std::to_string(ip & 255);
}

Result<uint16_t> parse_port(std::string_view text) {
  uint32_t port = 0;
  if (!parse_decimal(text, 5, port) || port == 0 || port > 65535) {
    return fail(ErrorKind::kInvalidInput, "port " + quote(text) + " is not a number 1-65535");
  }
  return static_cast<uint16_t>(port);
}

std::string format_endpoint(const Ipv4Endpoint& endpoint) {
  return format_ipv4(endpoint.ip) + ":" + std::to_string(endpoint.port);
}

Result<ForwardSpec> parse_spec(std::string_view text) {
  const std::string expected =
      "expected proto:host_ip:host_port:proto:container_ip:container_port, "
      "e.g. tcp:127.0.0.1:8080:tcp:172.17.0.2:80";
  if (text.size() > kMaxSpecBytes) {
    return fail(ErrorKind::kInvalidInput,
                "spec of " + std::to_string(text.size()) + " bytes is too long; " + expected);
  }
  // Splitting on ':' works because the addresses are IPv4 (no colons).
  std::vector<std::string_view> parts = split(text, ':', 6);
  if (parts.size() != 6) {
    return fail(ErrorKind::kInvalidInput, "spec " + quote(text) + " does not have 6 fields; " +
                                              expected);
  }
  auto in_spec = [&](const Error& e) {
    return fail(ErrorKind::kInvalidInput, "spec " + quote(text) + ": " + e.message());
  };
  ForwardSpec spec;
  auto host_proto = parse_proto(parts[0]);
  if (!host_proto) return in_spec(host_proto.error());
  auto host_ip = parse_ipv4(parts[1]);
  if (!host_ip) return in_spec(host_ip.error());
  auto host_port = parse_port(parts[2]);
  if (!host_port) return in_spec(host_port.error());
  auto container_proto = parse_proto(parts[3]);
  if (!container_proto) return in_spec(container_proto.error());
  auto container_ip = parse_ipv4(parts[4]);
  if (!container_ip) return in_spec(container_ip.error());
  auto container_port = parse_port(parts[5]);
  if (!container_port) return in_spec(container_port.error());
  if (*host_proto != *container_proto) {
    return fail(ErrorKind::kInvalidInput,
                "spec " + quote(text) + ": both sides must use the same protocol");
  }
  spec.proto = *host_proto;
  spec.host = {*host_ip, *host_port};
  spec.container = {*container_ip, *container_port};
  return spec;
}

std::string format_spec(const ForwardSpec& spec) {
  std::string proto(proto_name(spec.proto));
  return proto + ":" + format_endpoint(spec.host) + ":" + proto + ":" +
         format_endpoint(spec.container);
}

}  // namespace pinata::ports
