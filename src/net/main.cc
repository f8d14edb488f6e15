// pinata-net: the vhost-user-net backend: the guest's NIC on libslirp
// (docs/protocols/virtio-net.md).
//
//   pinata-net --socket PATH [--net 192.168.65.0/24] [--host-ip 192.168.65.1]
//              [--guest-ip 192.168.65.2] [--dns-ip 192.168.65.7] [--mtu N]
//              [--vsock-dir DIR] [--verbose]
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "base/event_loop.h"
#include "base/log.h"
#include "net/device.h"
#include "net/dns.h"
#include "net/slirp_stack.h"
#include "ports/host.h"
#include "vhost/backend.h"

using namespace pinata;

namespace {

constexpr const char* kUsage =
    "usage: pinata-net --socket PATH [--net CIDR] [--host-ip IP] [--guest-ip IP] [--dns-ip IP]\n"
    "                  [--mtu N] [--vsock-dir DIR] [--external-bind] [--verbose]\n"
    "  --socket PATH    vhost-user socket to listen on (the hypervisor connects)\n"
    "  --net CIDR       the guest network (default 192.168.65.0/24)\n"
    "  --host-ip IP     the host as the guest sees it; connections to it reach the host's\n"
    "                   127.0.0.1 (default 192.168.65.1)\n"
    "  --guest-ip IP    the address the guest gets by DHCP (default 192.168.65.2)\n"
    "  --dns-ip IP      the guest's nameserver (default 192.168.65.7; not the host IP)\n"
    "  --mtu N          the MTU, 68-65520 (default 1500); give the hypervisor the same value\n"
    "                   (QEMU: -device virtio-net-device,host_mtu=N)\n"
    "  --vsock-dir DIR  the vsock socket directory: serve port forwarding (9P on vsock port\n"
    "                   565) and carry forwarded connections to the guest through it\n"
    "  --external-bind  published ports listen on the address asked for (0.0.0.0 too), not\n"
    "                   only 127.0.0.1 (the database's `network` external-bind=true)\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "pinata-net: %s\n%s", message.c_str(), kUsage);
  return 2;
}

bool parse_u32(std::string_view s, uint32_t min, uint32_t max, uint32_t& out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v < min || v > max) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path, vsock_dir;
  bool external_bind = false;
  net::SlirpOptions options;
  bool verbose = false;
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--verbose" || arg == "-v") {
      verbose = true;
    } else if (arg == "--external-bind") {
      external_bind = true;
    } else if (arg == "--socket" || arg == "--net" || arg == "--host-ip" ||
               arg == "--guest-ip" || arg == "--dns-ip" || arg == "--mtu" ||
               arg == "--vsock-dir") {
      if (i + 1 >= argc) return usage_error(std::string(arg) + " needs a value");
      std::string_view v = argv[++i];
      if (arg == "--socket") {
        socket_path = v;
      } else if (arg == "--vsock-dir") {
        vsock_dir = v;
      } else if (arg == "--net") {
        if (auto s = net::parse_ipv4_prefix(v, options.network, options.netmask); !s) {
          return usage_error("--net: " + s.error().message());
        }
      } else if (arg == "--mtu") {
        if (!parse_u32(v, net::kMinMtu, net::kMaxMtu, options.mtu)) {
          return usage_error("--mtu '" + std::string(v) + "': expected a number from 68 to 65520");
        }
      } else {
        auto ip = net::parse_ipv4(v);
        if (!ip) return usage_error(std::string(arg) + ": " + ip.error().message());
        if (arg == "--host-ip") options.host_ip = *ip;
        if (arg == "--guest-ip") options.dhcp_start = *ip;
        if (arg == "--dns-ip") options.dns_ip = *ip;
      }
    } else {
      return usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (socket_path.empty()) return usage_error("--socket is required");
  if (auto s = net::validate(options); !s) return usage_error(s.error().message());

  log::init("pinata-net", verbose ? log::Level::kDebug : log::Level::kInfo);
  // Writes to host sockets whose peer went away must fail with EPIPE, not kill the process
  // (libslirp sends with MSG_NOSIGNAL on most paths, not all).
  ::signal(SIGPIPE, SIG_IGN);

  auto loop_or = EventLoop::create();
  if (!loop_or) {
    log::error("%s", loop_or.error().message().c_str());
    return 1;
  }
  EventLoop& loop = **loop_or;
  // SIGINT/SIGTERM stop the loop so the socket is unlinked and libslirp's sockets closed.
  auto sigfd = stop_on_termination_signals(loop);
  if (!sigfd) log::warn("%s", sigfd.error().message().c_str());

  // Everything below runs on the loop thread; libslirp only ever sees that thread.
  net::Device device(net::DeviceOptions{options.mtu});
  auto stack = net::SlirpStack::create(
      loop, options, [&device](std::span<const uint8_t> frame) { device.send_to_guest(frame); });
  if (!stack) {
    log::error("%s", stack.error().message().c_str());
    return 1;
  }
  device.set_network(stack->get());

  // DNS queries to dns_ip are answered from the host's resolver (getaddrinfo), with the
  // Docker Desktop names for the host fixed; other DNS traffic goes to libslirp, which
  // forwards it to the host's nameservers.
  net::DnsOptions dns_options;
  dns_options.nameserver_ip = options.dns_ip;
  dns_options.fixed = {{"host.docker.internal", options.host_ip},
                       {"gateway.docker.internal", options.host_ip}};
  dns_options.ipv6 = options.ipv6;
  net::DnsResponder dns(std::move(dns_options), loop, [&device](std::vector<uint8_t> frame) {
    device.send_to_guest(frame);
  });
  device.set_intercept([&dns](std::span<const uint8_t> frame) { return dns.handle_frame(frame); });

  // Port forwarding (docs/protocols/ports.md): the 9P control tree on vsock port 565, i.e. the
  // unix socket <vsock dir>/00000002.00000235 that pinata-vsock connects the guest's mount to.
  // Its sessions and relays run on threads of their own, not on this loop.
  std::unique_ptr<ports::PortService> port_service;
  if (!vsock_dir.empty()) {
    ports::HostOptions port_options;
    port_options.vsock_dir = vsock_dir;
    port_options.external_bind = external_bind;
    auto service = ports::PortService::create(port_options);
    if (service) {
      if (auto st = (*service)->serve(ports::control_socket_path(vsock_dir)); !st) {
        log::error("port forwarding: %s", st.error().message().c_str());
        return 1;
      }
      port_service = std::move(*service);
      log::info("port forwarding on %s (host listeners on %s)", ports::control_socket_path(vsock_dir).c_str(),
                external_bind ? "the requested address" : "127.0.0.1");
    } else {
      log::error("port forwarding: %s", service.error().message().c_str());
      return 1;
    }
  }

  vhost::VhostUserBackend backend(loop, device, "pinata-net");
  if (auto s = backend.listen(socket_path); !s) {
    log::error("%s", s.error().message().c_str());
    return 1;
  }
  log::info("network %s/%s: host %s, guest %s, DNS %s, MTU %u",
            net::format_ipv4(options.network).c_str(), net::format_ipv4(options.netmask).c_str(),
            net::format_ipv4(options.host_ip).c_str(), net::format_ipv4(options.dhcp_start).c_str(),
            net::format_ipv4(options.dns_ip).c_str(), options.mtu);
  int rc = 0;
  if (auto s = loop.run(); !s) {
    log::error("%s", s.error().message().c_str());
    rc = 1;
  }
  // Leaving: don't let the device's reset start a fresh libslirp on the way out.
  device.set_network(nullptr);
  device.set_intercept(nullptr);
  backend.disconnect();
  const auto& st = device.stats();
  log::info("exiting: %llu frames from the guest (%llu dropped), %llu to it (%llu waited for "
            "buffers, %llu dropped)",
            static_cast<unsigned long long>(st.tx_frames),
            static_cast<unsigned long long>(st.tx_dropped),
            static_cast<unsigned long long>(st.rx_frames),
            static_cast<unsigned long long>(st.rx_queued),
            static_cast<unsigned long long>(st.rx_dropped));
  return rc;
}
