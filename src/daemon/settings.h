// VM settings. memory, ncpu and hostname come from the configuration database (pinatad
// overrides what this file says); $PINATA_HOME/settings (key=value lines) keeps the settings
// that are not user-facing database keys: guest_forwards (used by tests and benchmarks).
#pragma once

#include <cstdint>
#include <vector>
#include <string>

#include "base/result.h"

namespace pinata {

struct VmSettings {
  int memory_gib = 2;
  int ncpu = 2;
  // Guest vsock ports forwarded to $PINATA_HOME/vsock/00000003.%08x ("2376;1525"); 2376
  // (the Docker API) is always forwarded.
  std::vector<uint32_t> guest_forwards = {2376};
  // How the guest trims the data disk: "" (the guest's default: ext4 -o discard plus fstrim
  // every 300 s), "mount" (-o discard only) or a number of seconds between fstrims with no
  // -o discard (0: never trim). Kernel command line pinata.trim=...; tests and benches set it.
  std::string trim;
  // Who serves Docker.qcow2 to the VM: pinata-blk (vhost-user-blk, the default) or QEMU's own
  // qcow2 driver ("qemu", kept so bench/disk can compare the two in the same VM).
  enum class DiskDriver { kPinataBlk, kQemu };
  DiskDriver disk_driver = DiskDriver::kPinataBlk;
  // Who gives the VM its network: pinata-net (vhost-user-net, port forwarding; the default) or
  // QEMU's user network ("qemu": no published ports; kept so bench/net can compare).
  enum class NetDriver { kPinataNet, kQemu };
  NetDriver net_driver = NetDriver::kPinataNet;
  // From the configuration database (not the settings file).
  std::string hostname = "pinata";
};

// Parses "key=value" lines ('#' comments, blank lines allowed). Unknown keys and bad values
// are errors that say what would be accepted.
Result<VmSettings> parse_settings(const std::string& text, int host_cpus, int host_memory_gib);
std::string format_settings(const VmSettings& s);

// Validates one setting, returning the updated settings.
Result<VmSettings> apply_setting(VmSettings s, const std::string& key, const std::string& value,
                                 int host_cpus, int host_memory_gib);

// Reads the settings file (missing file = defaults).
Result<VmSettings> load_settings(const std::string& path);

int host_cpu_count();
int host_memory_gib();

}  // namespace pinata
