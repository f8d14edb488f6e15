// Mounts: the initramfs stage (proc/sys/dev, the overlay root, switch_root) and the
// mounts dockerd needs in the real root.
#pragma once

#include <string>

#include "base/result.h"

namespace pinata::guest {

// Mounts a file system on `target`, creating the directory first.
Status mount_fs(const std::string& source, const std::string& target, const std::string& type,
                unsigned long flags, const std::string& data = "");

// proc, sysfs, devtmpfs in the initramfs.
Status mount_early();

// Opens /dev/console as fds 0, 1 and 2 (the initramfs has no /dev/console node, so the kernel
// could not give us one).
void attach_console();

// Read-only ext4 `root_device` at /mnt/lower, tmpfs at /mnt/rw, overlay of both at /newroot.
Status mount_root(const std::string& root_device);

// Moves /dev /proc /sys under /newroot, frees the initramfs files and makes /newroot the root.
Status switch_root();

// In the new root: cgroup2, devpts (+/dev/ptmx), /dev/shm, mqueue, /run, /tmp, /dev/fd links,
// /var/run -> /run.
Status mount_late();

}  // namespace pinata::guest
