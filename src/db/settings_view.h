// Typed, defaulted settings read from the configuration database, for pinatad.
//
// Every value is the one at the branch head (or at a given commit); keys missing from the
// repository and stored values that fail validation read as their defaults, the latter with
// a warning to log. To notice changes, poll Store::head() (one small file read) or watch
// Store::watch_paths() with inotify and re-read when head() differs from `head` below.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "db/schema.h"
#include "db/store.h"

namespace pinata::db {

struct DbSettings {
  std::string head;        // the commit these values were read at; "" when there is no database yet
  std::string hypervisor;  // "qemu"
  int memory_gib = 0;
  int ncpu = 0;
  std::string daemon_json;  // a validated JSON object
  std::string hostname;
  std::string sysctl_conf;  // validated sysctl.conf(5) text
  std::vector<std::string> insecure_registries;
  std::string network;  // "slirp"
  bool external_bind = false;
  std::string slirp_docker;  // the VM's address
  std::string slirp_host;    // the host's address seen from the VM
  std::string filesystem;    // "virtio-fs" | "none"
  bool expose_docker_socket = false;
  bool proxy_verbose = false;
  std::string on_sleep;
  std::vector<std::string> warnings;  // invalid stored values replaced by defaults
};

// From a set of repository files (missing keys: defaults).
DbSettings settings_from_files(const Files& files);

// At the branch head (or commit `at`).
Result<DbSettings> read_settings(const Store& store, const std::optional<std::string>& at = {});

// From $PINATA_HOME/database without creating it: the defaults when it does not exist.
Result<DbSettings> read_settings_at_home(const std::string& pinata_home);

}  // namespace pinata::db
