// A minimal DHCP client over a UDP socket (DISCOVER/OFFER/REQUEST/ACK), for boot.
#pragma once

#include <chrono>
#include <string>

#include "base/result.h"
#include "guest/dhcp.h"

namespace pinata::guest {

// Runs DHCP on `ifname` (up, no address yet) until an ACK or `total` time has passed.
// Each exchange waits 1 s, 2 s, 4 s... (at most 8 s) for a reply before retransmitting.
Result<dhcp::Reply> run_dhcp(const std::string& ifname, const dhcp::MacAddress& mac,
                             const std::string& hostname, std::chrono::milliseconds total);

}  // namespace pinata::guest
