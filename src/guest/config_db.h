// The configuration database in the guest. pinatad serves it over 9P2000.L on vsock port 564
// (host CID 2); pinata-init mounts it with the kernel's 9p client (trans=fd on a connected
// vsock socket) at kDbMount, applies it before dockerd starts, and follows daemon.json.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace pinata::guest {

constexpr const char* kDbMount = "/run/pinata/database";
constexpr unsigned kDbVsockPort = 564;
// Where the settings live in the mounted tree (datakit layout, docs/protocols/config-db.md).
constexpr const char* kDbSettingsDir =
    "/run/pinata/database/branch/master/ro/com.docker.driver.amd64-linux";
constexpr const char* kDaemonJson = "/etc/docker/daemon.json";

struct DbBootConfig {
  bool mounted = false;
  std::vector<std::string> dockerd_args;  // --insecure-registry=... from insecure-registry
  std::optional<std::string> hostname;    // etc/hostname, if valid
};

// Connects to the host's port 564 (retrying until `timeout`: the vsock transport may still be
// loading), mounts the database and applies etc/sysctl.conf, etc/docker/daemon.json (written to
// /etc/docker/daemon.json), etc/hostname and insecure-registry. Every failure is logged and
// leaves Docker's defaults in place; nothing here stops the boot.
DbBootConfig mount_and_apply_db(std::chrono::milliseconds timeout);

// Follows daemon.json in the mounted database (its watch/.../tree.live stream). When the
// content changes, /etc/docker/daemon.json is rewritten and the returned eventfd becomes
// readable: the main loop then restarts dockerd. Returns -1 if the database is not mounted.
int start_daemon_json_watch();

}  // namespace pinata::guest
