// Port forwarding in the guest (docs/protocols/ports.md): the three pieces pinata-init runs so
// that `docker run -p` publishes ports on the host.
//   - the port tree: pinata-net's 9P control tree (host vsock port 565) mounted at
//     /run/pinata/port, where the userland-proxy hook asks for host listeners;
//   - the forwarder: vsock port 62373, where the host carries each forwarded connection in;
//   - the hook: pinata-init itself, run as `pinata-proxy` by dockerd (--userland-proxy-path).
#pragma once

#include <chrono>
#include <string>

namespace pinata::guest {

inline constexpr const char* kPortTreeMount = "/run/pinata/port";
inline constexpr const char* kUserlandProxyPath = "/usr/local/sbin/pinata-proxy";

// Mounts the port tree (waiting up to `timeout` for the vsock transport). Failure is logged:
// the hook then publishes ports inside the VM only.
bool mount_port_tree(std::chrono::milliseconds timeout);

// Listens on vsock port 62373 (retrying while the vsock module loads) and serves the host's
// forwarded connections, on threads of its own, for the life of the process.
void start_port_forwarder();

// Puts a copy of this executable at kUserlandProxyPath (the initramfs it came from is gone
// after switch_root), so dockerd can run it as the hook.
bool install_userland_proxy();

}  // namespace pinata::guest
