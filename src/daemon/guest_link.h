// The host end of the guest's Docker API: pinata-vsock's forward of guest vsock port 2376,
// a unix socket in $PINATA_HOME/vsock (no handshake). pinata-init proxies the port to
// dockerd's /var/run/docker.sock.
#pragma once

#include <chrono>
#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace pinata {

constexpr unsigned kDockerVsockPort = 2376;

// The forward socket of guest port `port` in `vsock_dir`: "<dir>/00000003.<port as %08x>".
std::string vsock_forward_path(const std::string& vsock_dir, unsigned port, unsigned cid = 3);

class GuestLink {
 public:
  explicit GuestLink(std::string docker_forward) : docker_forward_(std::move(docker_forward)) {}

  // A connection to the guest's dockerd.
  Result<UniqueFd> connect_docker() const;
  // GET /_ping through the Docker API; true when dockerd answers "OK".
  Result<bool> ping_docker(std::chrono::milliseconds timeout) const;

  const std::string& docker_forward() const { return docker_forward_; }

 private:
  std::string docker_forward_;
};

}  // namespace pinata
