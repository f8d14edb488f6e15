// Disk discovery and the data disk (I/O side of disks.h).
#pragma once

#include <chrono>
#include <string>

#include "base/result.h"
#include "guest/disks.h"

namespace pinata::guest {

inline constexpr const char* kDockerDataDir = "/var/lib/docker";

// Probes every /sys/block/vd* disk's superblock. Waits up to `timeout` for a disk labelled
// kRootLabel to appear (block devices can show up after the driver's module load returns).
DiskLayout find_disks(std::chrono::milliseconds timeout);

// Mounts the data disk (/dev/<name>) at kDockerDataDir, formatting it first if it carries no
// ext4 magic. Any failure falls back to a tmpfs, loudly. `name` empty: tmpfs directly.
void setup_data_disk(const std::string& name);

}  // namespace pinata::guest
