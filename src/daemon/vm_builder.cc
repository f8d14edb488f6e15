#include "daemon/vm_builder.h"

#include <cstdlib>
#include <fstream>

namespace pinata {

std::string QemuBuilder::kernel_cmdline() const {
  std::string cmd = "console=ttyS0 panic=-1 reboot=t pinata.hostname=" + config_.hostname;
  if (config_.tsc_khz > 0) cmd += " tsc_early_khz=" + std::to_string(config_.tsc_khz);
  // Under TCG the vCPUs' TSCs look unsynchronised, the kernel falls back to the jiffies
  // clocksource and then cannot stop the tick when idle: 250 timer interrupts a second per
  // vCPU, each emulated. With the TSC trusted the idle guest sleeps (kvm-clock wins on KVM).
  cmd += " tsc=reliable";
  // No kernel-memory accounting in memory cgroups: enabling it (when runc makes the first
  // container's cgroup) flips a static key, i.e. patches kernel text while the other vCPU may
  // be running it, and QEMU's multi-threaded TCG once left both vCPUs spinning forever on the
  // patched instruction (soft lockup in kmem_cache_alloc under cgroup_mkdir, seen in CI).
  // Docker does not need kmem accounting (its kernel-memory limit is deprecated).
  cmd += " cgroup.memory=nokmem";
  for (const auto& extra : config_.extra_cmdline) cmd += " " + extra;
  return cmd;
}

std::vector<std::string> QemuBuilder::argv() const {
  const VmConfig& c = config_;
  std::vector<std::string> a = {c.qemu, "-name", "pinata"};
  a.insert(a.end(), {"-M", "microvm,memory-backend=mem,rtc=on"});
  if (c.accel == Accel::kKvm) {
    a.insert(a.end(), {"-accel", "kvm", "-cpu", "host"});
  } else {
    // A smaller translation cache: at idle the default one costs ~650 MB of RSS.
    // ARAT (the local APIC timer keeps running in idle states): without it the guest needs a
    // broadcast timer (microvm has no HPET) before it stops the periodic tick when idle.
    a.insert(a.end(), {"-accel", "tcg,tb-size=64", "-cpu", "qemu64,+arat"});
  }
  a.insert(a.end(), {"-smp", std::to_string(c.ncpu), "-m", std::to_string(c.memory_mib) + "M"});
  // Shared memfd guest RAM, so vhost-user backends can map it.
  a.insert(a.end(), {"-object", "memory-backend-memfd,id=mem,size=" +
                                    std::to_string(c.memory_mib) + "M,share=on"});
  a.insert(a.end(), {"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"});
  a.insert(a.end(), {"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console"});
  a.insert(a.end(), {"-kernel", c.kernel, "-initrd", c.initrd, "-append", kernel_cmdline()});
  a.insert(a.end(), {"-drive", "file=" + c.root_image + ",if=none,id=root,format=raw,readonly=on",
                     "-device", "virtio-blk-device,drive=root"});
  if (!c.data_disk_socket.empty()) {
    // The data disk through pinata-blk (our qcow2): discard frees clusters in the image.
    a.insert(a.end(), {"-chardev", "socket,id=blk,path=" + c.data_disk_socket, "-device",
                       "vhost-user-blk,chardev=blk,num-queues=1"});
  } else {
    a.insert(a.end(), {"-drive", "file=" + c.data_disk +
                                     ",if=none,id=data,format=qcow2,discard=unmap,cache=writeback",
                       "-device", "virtio-blk-device,drive=data"});
  }
  if (!c.net_socket.empty()) {
    // Guest traffic through pinata-net (libslirp behind vhost-user-net): every flow leaves as
    // an ordinary host socket; a large MTU so the emulated guest handles fewer packets.
    a.insert(a.end(), {"-chardev", "socket,id=netc,path=" + c.net_socket, "-netdev",
                       "vhost-user,id=net0,chardev=netc", "-device",
                       "virtio-net-device,netdev=net0,host_mtu=" + std::to_string(c.net_mtu)});
  } else {
    // QEMU's user network (also libslirp); nothing in.
    a.insert(a.end(), {"-netdev", "user,id=net0", "-device", "virtio-net-device,netdev=net0"});
  }
  a.insert(a.end(), {"-device", "virtio-rng-device"});
  // vsock through pinata-vsock (vhost-user): the Docker API and, later, the other services.
  a.insert(a.end(), {"-chardev", "socket,id=vsock,path=" + c.vsock_socket, "-device",
                     "vhost-user-vsock-device,chardev=vsock"});
  a.insert(a.end(), {"-qmp", "unix:" + c.qmp_socket + ",server=on,wait=off"});
  return a;
}

std::string shell_join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !arg.empty() && arg.find_first_not_of(
                                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789-_./=:,+@%") == std::string::npos;
    if (plain) {
      out += arg;
      continue;
    }
    out += '\'';
    for (char ch : arg) {
      if (ch == '\'') out += "'\\''"; else out += ch;
    }
    out += '\'';
  }
  return out;
}

long host_tsc_khz() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu MHz", 0) == 0) {
      size_t colon = line.find(':');
      if (colon == std::string::npos) return 0;
      double mhz = std::atof(line.c_str() + colon + 1);
      return mhz > 0 ? static_cast<long>(mhz * 1000) : 0;
    }
  }
  return 0;
}

}  // namespace pinata
