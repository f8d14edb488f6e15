// DHCP replies come from the network (QEMU's slirp today, pinata-net later): untrusted bytes.
#include <cstddef>
#include <cstdint>
#include <span>

#include "guest/dhcp.h"

using namespace pinata::guest::dhcp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> packet(data, size);
  // The seeds are replies to xid 0x01020304 from MAC 52:54:00:12:34:56.
  const MacAddress mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  auto reply = parse_reply(packet, 0x01020304, mac);
  if (reply) {
    (void)resolv_conf(*reply);
    (void)format_ipv4(reply->your_ip);
  }
  (void)parse_options(packet);
  return 0;
}
