#include "guest/disk_setup.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "base/io.h"
#include "base/log.h"
#include "guest/boot_clock.h"
#include "guest/mounts.h"
#include "guest/process.h"

namespace pinata::guest {
namespace {

std::vector<std::string> list_virtio_disks() {
  std::vector<std::string> names;
  DIR* dir = ::opendir("/sys/block");
  if (!dir) return names;
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name.size() > 2 && name.starts_with("vd")) names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

// nullopt superblock for unreadable or blank disks; an error only if the device can't be read.
Result<std::optional<Ext4Superblock>> probe_disk(const std::string& name) {
  std::string dev = "/dev/" + name;
  UniqueFd fd(::open(dev.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open " + dev);
  std::vector<uint8_t> sb(kSuperblockSize);
  ssize_t n = ::pread(fd.get(), sb.data(), sb.size(), kSuperblockOffset);
  if (n < 0) return fail_errno("read " + dev);
  sb.resize(static_cast<size_t>(n));
  return parse_ext4_superblock(sb);
}

void mount_tmpfs_fallback(const std::string& why) {
  log::error("!!! %s", why.c_str());
  log::error("!!! /var/lib/docker is a tmpfs: images and containers will NOT survive a restart");
  auto st = mount_fs("tmpfs", kDockerDataDir, "tmpfs", 0, "mode=0711");
  if (!st) log::error("mounting tmpfs on %s: %s", kDockerDataDir, st.error().message().c_str());
}

}  // namespace

DiskLayout find_disks(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<DiskProbe> probes;
    for (const std::string& name : list_virtio_disks()) {
      auto sb = probe_disk(name);
      if (!sb) {
        log::warn("probing %s: %s", name.c_str(), sb.error().message().c_str());
        continue;
      }
      probes.push_back(DiskProbe{name, *sb});
    }
    DiskLayout layout = classify_disks(probes);
    if (layout.root || std::chrono::steady_clock::now() >= deadline) {
      for (const DiskProbe& p : probes) {
        log::info(
            "disk %s: %s", p.name.c_str(),
            p.ext4 ? ("ext4, label \"" + p.ext4->label + "\"").c_str() : "no ext4 file system");
      }
      return layout;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool setup_data_disk(const std::string& name, const TrimPolicy& trim) {
  if (auto st = make_dirs(kDockerDataDir); !st) {
    log::error("%s", st.error().message().c_str());
  }
  if (name.empty()) {
    mount_tmpfs_fallback("no data disk found");
    return false;
  }
  std::string dev = "/dev/" + name;
  auto sb = probe_disk(name);
  if (!sb) {
    mount_tmpfs_fallback("data disk " + dev + ": " + sb.error().message());
    return false;
  }
  if (!*sb) {
    step("formatting data disk (first boot): %s", dev.c_str());
    std::vector<std::string> argv = {"/sbin/mkfs.ext4",
                                     "-q",
                                     "-F",
                                     "-L",
                                     std::string(kDataLabel),
                                     "-E",
                                     "lazy_itable_init=1,lazy_journal_init=1",
                                     dev};
    auto status = run_and_wait(argv, "mkfs");
    if (!status) {
      mount_tmpfs_fallback("formatting " + dev + ": " + status.error().message());
      return false;
    }
    if (*status != 0) {
      mount_tmpfs_fallback("formatting " + dev + ": mkfs.ext4 " + describe_wait_status(*status));
      return false;
    }
    step("formatted data disk %s", dev.c_str());
  }
  const bool discard = trim.mount_discard;
  auto st = mount_fs(dev, kDockerDataDir, "ext4", MS_NOATIME, discard ? "discard" : "");
  if (!st) {
    mount_tmpfs_fallback("mounting data disk: " + st.error().message());
    return false;
  }
  step("data disk %s mounted on %s%s", dev.c_str(), kDockerDataDir, discard ? " (-o discard)" : "");
  return true;
}

void start_periodic_trim(std::chrono::seconds interval) {
  std::thread([interval] {
    for (;;) {
      std::this_thread::sleep_for(interval);
      UniqueFd fd(::open(kDockerDataDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fd) {
        log::warn("fstrim %s: %s", kDockerDataDir, std::strerror(errno));
        continue;
      }
      // The whole file system; ext4 skips block groups it trimmed before and that have had no
      // frees since, so an idle disk costs one cheap ioctl per interval.
      struct fstrim_range range = {0, UINT64_MAX, 0};
      auto start = std::chrono::steady_clock::now();
      if (::ioctl(fd.get(), FITRIM, &range) != 0) {
        log::warn("fstrim %s: %s", kDockerDataDir, std::strerror(errno));
        if (errno == EOPNOTSUPP) return;  // the disk offers no discard: nothing to do, ever
        continue;
      }
      if (range.len > 0) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start).count();
        log::info("fstrim %s: %llu MiB trimmed in %lld ms", kDockerDataDir,
                  static_cast<unsigned long long>(range.len >> 20), static_cast<long long>(ms));
      }
    }
  }).detach();
}

}  // namespace pinata::guest
