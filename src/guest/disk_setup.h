// Disk discovery and the data disk (I/O side of disks.h).
#pragma once

#include <chrono>
#include <string>

#include "base/result.h"
#include "guest/cmdline.h"
#include "guest/disks.h"

namespace pinata::guest {

inline constexpr const char* kDockerDataDir = "/var/lib/docker";

// Probes every /sys/block/vd* disk's superblock. Waits up to `timeout` for a disk labelled
// kRootLabel to appear (block devices can show up after the driver's module load returns).
DiskLayout find_disks(std::chrono::milliseconds timeout);

// Mounts the data disk (/dev/<name>) at kDockerDataDir, formatting it first if it carries no
// ext4 magic, with -o discard when `trim` says so. Any failure falls back to a tmpfs, loudly.
// `name` empty: tmpfs directly. Returns whether the real disk is mounted.
bool setup_data_disk(const std::string& name, const TrimPolicy& trim);

// Runs FITRIM on kDockerDataDir every `interval` on a thread of its own (detached), so blocks
// freed by deleted images and containers go back to the host image. Logs only when something
// was trimmed or the ioctl fails.
void start_periodic_trim(std::chrono::seconds interval);

}  // namespace pinata::guest
