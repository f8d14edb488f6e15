// The userland-proxy hook: what dockerd runs (--userland-proxy-path) for each published port,
// in place of docker-proxy. pinata-init is multi-call; invoked as `pinata-proxy` it runs
// userland_proxy_main(). Depends only on src/base and libc.
//
// dockerd 20.10 (libnetwork/portmapper/proxy.go) runs
//   PATH -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2 -container-port 80
// with fd 3 the write end of a pipe, and waits up to 16 s for "0\n" (ready) or "1\n<error>"
// (then EOF; `docker run -p` fails with "Error starting userland proxy: <error>"). It stops the
// proxy with SIGINT (SIGTERM if dockerd dies: Pdeathsig).
//
// The hook (docs/protocols/ports.md):
//   1. listens in the guest on host-ip:host-port and relays to the container, as docker-proxy
//      does, so that clients inside the VM keep working;
//   2. for an IPv4 binding, asks the host for the same forward through the port tree:
//      mkdir <dir>/<spec>, open <spec>/ctl, write the spec, read at offset 0; "ERROR x" fails
//      the port with x. <dir> is $PINATA_PORT_DIR, or /run/pinata/port. If that directory is
//      missing or (without $PINATA_PORT_DIR) not a 9p mount, the host side is not running: the
//      hook says so on stderr and forwards inside the VM only;
//   3. writes "0\n" to fd 3 and runs until SIGINT or SIGTERM; exiting closes the ctl, which
//      stops the host's forward.
// IPv6 bindings (dockerd's "::" when IPv6 is on) are forwarded inside the VM only.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "ports/spec.h"

namespace pinata::ports {

struct ProxyArgs {
  Proto proto = Proto::kTcp;
  std::string host_ip;
  uint16_t host_port = 0;
  std::string container_ip;
  uint16_t container_port = 0;
};

// Parses docker-proxy's flags as Go's flag package does: -name value, -name=value, --name ...;
// all five are required (proto defaults to tcp); sctp and unknown flags are errors.
[[nodiscard]] Result<ProxyArgs> parse_proxy_args(int argc, char** argv);

// The spec to ask the host for, if the binding can be expressed as one (IPv4 on both sides).
[[nodiscard]] Result<ForwardSpec> spec_for(const ProxyArgs& args);

constexpr const char* kDefaultPortDir = "/run/pinata/port";

// The whole hook; returns the exit status (0 after a signal, 1 after reporting a failure, 2 for
// bad arguments).
int userland_proxy_main(int argc, char** argv);

}  // namespace pinata::ports
