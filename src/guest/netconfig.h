// Interface configuration through ioctls, and the boot-time network bring-up (lo + DHCP).
#pragma once

#include <string>

#include "base/result.h"
#include "guest/dhcp.h"

namespace pinata::guest {

Status interface_up(const std::string& ifname);
Result<dhcp::MacAddress> interface_mac(const std::string& ifname);
Status set_address(const std::string& ifname, dhcp::Ipv4 ip, dhcp::Ipv4 netmask);
Status set_mtu(const std::string& ifname, int mtu);
Status add_default_route(const std::string& ifname, dhcp::Ipv4 gateway);

// The first Ethernet interface: eth0 if present, else the first non-loopback ARPHRD_ETHER one.
std::string primary_interface();

// Brings up lo, then the primary interface with DHCP (retrying up to about a minute), writes
// /etc/resolv.conf. Logs failures; never fatal. Meant to run on its own thread.
void configure_network(const std::string& hostname);

}  // namespace pinata::guest
