// The host end of the guest's API service (pinata-init, TCP port 2375 in the guest, reached
// through QEMU's user-network forward on 127.0.0.1). Every connection starts with one line,
// "<token> <command>\n"; the token keeps other local users off the forwarded port.
#pragma once

#include <chrono>
#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace pinata {

class GuestLink {
 public:
  GuestLink(int port, std::string token) : port_(port), token_(std::move(token)) {}

  // A connection proxied to the guest's /var/run/docker.sock.
  Result<UniqueFd> connect_docker() const;
  // GET /_ping through the Docker API; true when dockerd answers "OK".
  Result<bool> ping_docker(std::chrono::milliseconds timeout) const;
  // Asks pinata-init for a clean shutdown; ok when it acknowledged.
  Status request_shutdown(std::chrono::milliseconds timeout) const;

  int port() const { return port_; }

 private:
  Result<UniqueFd> open(const std::string& command) const;

  int port_;
  std::string token_;
};

// A random 32-hex-digit secret.
Result<std::string> make_token();
// A currently free TCP port on 127.0.0.1.
Result<int> pick_free_port();

}  // namespace pinata
