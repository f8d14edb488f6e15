#include "guest/netconfig.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/io.h"
#include "base/log.h"
#include "guest/boot_clock.h"
#include "guest/dhcp_client.h"

namespace pinata::guest {
namespace {

Result<UniqueFd> ioctl_socket() {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  return fd;
}

Result<struct ifreq> make_ifreq(const std::string& ifname) {
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  if (ifname.size() >= IFNAMSIZ)
    return fail(ErrorKind::kInvalidInput, "interface name too long: " + ifname);
  std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
  return ifr;
}

void set_sockaddr(struct sockaddr* sa, dhcp::Ipv4 ip) {
  struct sockaddr_in sin;
  std::memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(ip);
  std::memcpy(sa, &sin, sizeof sin);
}

}  // namespace

Status interface_up(const std::string& ifname) {
  TRY_ASSIGN(UniqueFd fd, ioctl_socket());
  TRY_ASSIGN(struct ifreq ifr, make_ifreq(ifname));
  if (::ioctl(fd.get(), SIOCGIFFLAGS, &ifr) != 0) return fail_errno("SIOCGIFFLAGS " + ifname);
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (::ioctl(fd.get(), SIOCSIFFLAGS, &ifr) != 0) return fail_errno("SIOCSIFFLAGS " + ifname);
  return {};
}

Result<dhcp::MacAddress> interface_mac(const std::string& ifname) {
  TRY_ASSIGN(UniqueFd fd, ioctl_socket());
  TRY_ASSIGN(struct ifreq ifr, make_ifreq(ifname));
  if (::ioctl(fd.get(), SIOCGIFHWADDR, &ifr) != 0) return fail_errno("SIOCGIFHWADDR " + ifname);
  dhcp::MacAddress mac;
  std::memcpy(mac.data(), ifr.ifr_hwaddr.sa_data, mac.size());
  return mac;
}

Status set_address(const std::string& ifname, dhcp::Ipv4 ip, dhcp::Ipv4 netmask) {
  TRY_ASSIGN(UniqueFd fd, ioctl_socket());
  TRY_ASSIGN(struct ifreq ifr, make_ifreq(ifname));
  set_sockaddr(&ifr.ifr_addr, ip);
  if (::ioctl(fd.get(), SIOCSIFADDR, &ifr) != 0) return fail_errno("SIOCSIFADDR " + ifname);
  set_sockaddr(&ifr.ifr_netmask, netmask);
  if (::ioctl(fd.get(), SIOCSIFNETMASK, &ifr) != 0) return fail_errno("SIOCSIFNETMASK " + ifname);
  return {};
}

Status set_mtu(const std::string& ifname, int mtu) {
  TRY_ASSIGN(UniqueFd fd, ioctl_socket());
  TRY_ASSIGN(struct ifreq ifr, make_ifreq(ifname));
  ifr.ifr_mtu = mtu;
  if (::ioctl(fd.get(), SIOCSIFMTU, &ifr) != 0) return fail_errno("SIOCSIFMTU " + ifname);
  return {};
}

Status add_default_route(const std::string& ifname, dhcp::Ipv4 gateway) {
  TRY_ASSIGN(UniqueFd fd, ioctl_socket());
  struct rtentry rt;
  std::memset(&rt, 0, sizeof rt);
  set_sockaddr(&rt.rt_dst, 0);
  set_sockaddr(&rt.rt_genmask, 0);
  set_sockaddr(&rt.rt_gateway, gateway);
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  std::string dev = ifname;
  rt.rt_dev = dev.data();
  if (::ioctl(fd.get(), SIOCADDRT, &rt) != 0 && errno != EEXIST) {
    return fail_errno("SIOCADDRT default via " + dhcp::format_ipv4(gateway));
  }
  return {};
}

std::string primary_interface() {
  if (::access("/sys/class/net/eth0", F_OK) == 0) return "eth0";
  std::vector<std::string> names;
  if (DIR* dir = ::opendir("/sys/class/net")) {
    while (struct dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || name == "lo") continue;
      auto type = read_file("/sys/class/net/" + name + "/type", 64);
      if (type && std::atoi(type->c_str()) == 1) names.push_back(name);
    }
    ::closedir(dir);
  }
  std::sort(names.begin(), names.end());
  return names.empty() ? "" : names.front();
}

void configure_network(const std::string& hostname) {
  if (auto st = interface_up("lo"); !st) log::error("lo: %s", st.error().message().c_str());
  std::string ifname = primary_interface();
  if (ifname.empty()) {
    log::error("network: no Ethernet interface found (is virtio_net loaded?)");
    return;
  }
  if (auto st = interface_up(ifname); !st) {
    log::error("network: %s", st.error().message().c_str());
    return;
  }
  auto mac = interface_mac(ifname);
  if (!mac) {
    log::error("network: %s", mac.error().message().c_str());
    return;
  }
  auto lease = run_dhcp(ifname, *mac, hostname, std::chrono::seconds(60));
  if (!lease) {
    log::error("network: DHCP on %s failed: %s; continuing without network", ifname.c_str(),
               lease.error().message().c_str());
    return;
  }
  dhcp::Ipv4 mask = lease->subnet_mask.value_or(0xFFFFFF00);
  if (lease->mtu) {
    if (auto st = set_mtu(ifname, *lease->mtu); !st)
      log::warn("network: %s", st.error().message().c_str());
  }
  if (auto st = set_address(ifname, lease->your_ip, mask); !st) {
    log::error("network: %s", st.error().message().c_str());
    return;
  }
  if (lease->router) {
    if (auto st = add_default_route(ifname, *lease->router); !st) {
      log::error("network: %s", st.error().message().c_str());
    }
  }
  std::string resolv = dhcp::resolv_conf(*lease);
  if (!resolv.empty()) {
    ::unlink("/etc/resolv.conf");  // may be a dangling symlink in the image
    if (auto st = write_file_atomic("/etc/resolv.conf", resolv); !st) {
      log::error("network: %s", st.error().message().c_str());
    }
  }
  std::string dns;
  for (auto ip : lease->dns) dns += (dns.empty() ? "" : ",") + dhcp::format_ipv4(ip);
  step("network: %s %s/%d router %s dns %s%s", ifname.c_str(),
       dhcp::format_ipv4(lease->your_ip).c_str(), dhcp::netmask_prefix(mask).value_or(24),
       lease->router ? dhcp::format_ipv4(*lease->router).c_str() : "none",
       dns.empty() ? "none" : dns.c_str(),
       lease->mtu ? (" mtu " + std::to_string(*lease->mtu)).c_str() : "");
}

}  // namespace pinata::guest
