// Kernel module loading from the initramfs list (/etc/pinata/modules.list).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace pinata::guest {

inline constexpr const char* kModulesList = "/etc/pinata/modules.list";

// What the boot needs before it can mount the root and start services. Everything else in the
// list (netfilter, bridge, 9p, vsock, ...) loads in the background while the services start.
// crc32c: ext4's soft dependency (it asks the crypto API for "crc32c" at mount time, and the
// initramfs has no modprobe to satisfy the request).
inline const std::vector<std::string> kBootCriticalModules = {
    "virtio_mmio", "virtio_pci", "virtio_blk", "crc32c_generic", "crc32c_intel",
    "ext4",        "overlay",    "virtio_net", "qemu_fw_cfg"};

struct ModuleLoadSummary {
  int loaded = 0;
  int already = 0;         // EEXIST: built in or loaded before
  int not_applicable = 0;  // ENODEV: the module found no hardware it drives
  int failed = 0;
  int deferred = 0;  // left to the background thread
  std::chrono::milliseconds elapsed{0};
};

// Loads, with finit_module(2) and in list order, the modules in `first` and their dependencies
// (from each .ko's .modinfo depends=) and returns once they are in. The rest load in list order
// on a detached thread that logs its own summary; their files are opened before this returns,
// so the initramfs may be deleted meanwhile. `first` empty: everything loads now. Failures are
// logged and counted, never fatal.
//
// Measured under TCG (81 modules): one by one 1.1-1.7 s; four threads honouring dependencies
// were slower (4.2 s), so loads are sequential.
// `soon` (and dependencies) go first in the background order: what a boot step is waiting
// for (wait_for_soon_modules).
ModuleLoadSummary load_modules(const std::string& list_path, const std::vector<std::string>& first,
                               const std::vector<std::string>& soon = {});

// The configuration database's transport: vsock and the 9p client.
inline const std::vector<std::string> kSoonModules = {"vmw_vsock_virtio_transport", "9p",
                                                      "9pnet_fd"};

// Blocks until the `soon` background group is loaded (or everything is, or the timeout).
bool wait_for_soon_modules(std::chrono::milliseconds timeout);

// Blocks until the background loads of load_modules have finished (returns at once if none).
void wait_for_background_modules();

}  // namespace pinata::guest
