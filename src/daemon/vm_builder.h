// Builds the hypervisor command line for a VM (QEMU today). Pure: no I/O, unit-testable.
#pragma once

#include <string>
#include <vector>

#include "daemon/kvm_probe.h"

namespace pinata {

struct VmConfig {
  std::string qemu = "qemu-system-x86_64";
  Accel accel = Accel::kTcg;
  int memory_mib = 2048;
  int ncpu = 2;
  std::string kernel;      // uncompressed vmlinux (PVH entry)
  std::string initrd;
  std::string root_image;  // read-only ext4 root
  std::string data_disk;   // Docker.qcow2
  // The vhost-user socket of pinata-blk serving data_disk; empty: QEMU's own qcow2 driver
  // opens data_disk (kept for comparisons: bench/disk's in-guest half).
  std::string data_disk_socket;
  std::string qmp_socket;
  std::string vsock_socket;  // vhost-user socket of pinata-vsock
  // The vhost-user socket of pinata-net (userspace networking + port forwarding); empty: QEMU's
  // own user network (`-netdev user`, kept so bench/net can compare the two in the same VM).
  std::string net_socket;
  int net_mtu = 65520;       // pinata-net's MTU (QEMU's host_mtu; pinata-net gets the same)
  std::string hostname = "pinata";
  long tsc_khz = 0;        // 0: let the kernel calibrate
  std::vector<std::string> extra_cmdline;
};

class QemuBuilder {
 public:
  explicit QemuBuilder(VmConfig config) : config_(std::move(config)) {}

  // The full argv (argv[0] is the QEMU binary). The serial console is QEMU's stdio.
  std::vector<std::string> argv() const;
  std::string kernel_cmdline() const;

 private:
  VmConfig config_;
};

// Quotes argv for a shell (for vm.args and logs).
std::string shell_join(const std::vector<std::string>& argv);

// The TSC frequency in kHz from /proc/cpuinfo's "cpu MHz" (0 if unknown). microvm has no
// HPET or PM timer, and early TSC calibration hangs about one boot in four without it.
long host_tsc_khz();

}  // namespace pinata
