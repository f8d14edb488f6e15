// The Docker API service: TCP port 2375, a token handshake, then a proxy to dockerd's socket.
//
// Each connection sends one line "<token> <command>\n" first:
//   docker   -> the rest of the connection is proxied to /var/run/docker.sock
//   ping     -> "pong\n", close
//   shutdown -> "ok\n", close, clean VM shutdown
// Anything else (wrong token, garbage, no newline within 4096 bytes or 10 s) is closed.
#pragma once

#include <string>

namespace pinata::guest {

struct ApiServiceConfig {
  int port = 2375;
  std::string token_path = "/sys/firmware/qemu_fw_cfg/by_name/opt/pinata/token/raw";
  std::string docker_socket = "/var/run/docker.sock";
};

// Starts listening and serving on detached threads. Logs and returns on a listen failure.
void start_api_service(const ApiServiceConfig& config);

}  // namespace pinata::guest
