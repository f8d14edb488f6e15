// The Docker API over vsock: the guest listens on vsock port 2376 and proxies every
// connection to dockerd's /var/run/docker.sock. On the host, pinata-vsock forwards
// $PINATA_HOME/vsock/00000003.00000948 (and so docker.sock) to this port. No handshake: the
// only way in is the host user's 0600 socket directory.
#pragma once

#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace pinata::guest {

struct DockerVsockConfig {
  unsigned port = 2376;
  std::string docker_socket = "/var/run/docker.sock";
};

// Listens (retrying while the vsock transport module is still loading) and serves on
// detached threads.
void start_docker_vsock_service(const DockerVsockConfig& config);

// A stream socket listening on vsock port `port` (any CID).
Result<UniqueFd> vsock_listen(unsigned port);

// A stream socket connected to vsock (cid, port), e.g. the host (2) for the database.
Result<UniqueFd> vsock_connect(unsigned cid, unsigned port);

}  // namespace pinata::guest
