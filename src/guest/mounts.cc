#include "guest/mounts.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>

#include "base/io.h"
#include "base/log.h"

namespace pinata::guest {
namespace {

Status symlink_if_missing(const std::string& target, const std::string& link) {
  struct stat st;
  if (::lstat(link.c_str(), &st) == 0) return {};
  if (::symlink(target.c_str(), link.c_str()) != 0) return fail_errno("symlink " + link);
  return {};
}

// Deletes everything on the device `dev` below the open directory `dirfd`, without crossing
// into other mounts (what busybox switch_root does to free the initramfs memory).
void delete_tree(int dirfd, dev_t dev) {
  DIR* dir = ::fdopendir(dirfd);
  if (!dir) {
    ::close(dirfd);
    return;
  }
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (::fstatat(::dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (st.st_dev != dev) continue;  // a mount point: leave it alone
    if (S_ISDIR(st.st_mode)) {
      int sub =
          ::openat(::dirfd(dir), name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (sub >= 0) delete_tree(sub, dev);
      ::unlinkat(::dirfd(dir), name.c_str(), AT_REMOVEDIR);  // fails harmlessly if still busy
    } else {
      ::unlinkat(::dirfd(dir), name.c_str(), 0);
    }
  }
  ::closedir(dir);
}

}  // namespace

Status mount_fs(const std::string& source, const std::string& target, const std::string& type,
                unsigned long flags, const std::string& data) {
  TRY(make_dirs(target));
  if (::mount(source.c_str(), target.c_str(), type.c_str(), flags,
              data.empty() ? nullptr : data.c_str()) != 0) {
    return fail_errno("mount " + type + " " + source + " on " + target +
                      (data.empty() ? "" : " (" + data + ")"));
  }
  return {};
}

Status mount_early() {
  TRY(mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"));
  TRY(mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC));
  TRY(mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC));
  return {};
}

void attach_console() {
  int fd = ::open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0) return;
  for (int i = 0; i <= 2; i++) {
    if (fd != i) ::dup2(fd, i);
  }
  if (fd > 2) ::close(fd);
}

Status mount_root(const std::string& root_device) {
  TRY(mount_fs(root_device, "/mnt/lower", "ext4", MS_RDONLY, "noload"));
  TRY(mount_fs("tmpfs", "/mnt/rw", "tmpfs", 0, "mode=0755"));
  TRY(make_dirs("/mnt/rw/upper"));
  TRY(make_dirs("/mnt/rw/work"));
  TRY(mount_fs("overlay", "/newroot", "overlay", 0,
               "lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work"));
  return {};
}

Status switch_root() {
  for (const char* m : {"/dev", "/proc", "/sys"}) {
    std::string target = std::string("/newroot") + m;
    TRY(make_dirs(target));
    if (::mount(m, target.c_str(), nullptr, MS_MOVE, nullptr) != 0) {
      return fail_errno(std::string("move ") + m + " to " + target);
    }
  }
  // Free the initramfs, but only if "/" really is one (rootfs is ramfs or tmpfs).
  struct statfs sfs;
  struct stat root_st;
  if (::statfs("/", &sfs) == 0 && (sfs.f_type == RAMFS_MAGIC || sfs.f_type == TMPFS_MAGIC) &&
      ::stat("/", &root_st) == 0) {
    int fd = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) delete_tree(fd, root_st.st_dev);
  }
  if (::chdir("/newroot") != 0) return fail_errno("chdir /newroot");
  if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) return fail_errno("move /newroot to /");
  if (::chroot(".") != 0) return fail_errno("chroot");
  if (::chdir("/") != 0) return fail_errno("chdir /");
  return {};
}

Status mount_late() {
  TRY(mount_fs("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC,
               "nsdelegate"));
  TRY(mount_fs("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
               "newinstance,ptmxmode=0666,mode=0620,gid=5"));
  ::unlink("/dev/ptmx");
  TRY(symlink_if_missing("pts/ptmx", "/dev/ptmx"));
  TRY(mount_fs("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"));
  TRY(mount_fs("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC));
  TRY(mount_fs("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"));
  TRY(mount_fs("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"));
  TRY(symlink_if_missing("/proc/self/fd", "/dev/fd"));
  TRY(symlink_if_missing("/proc/self/fd/0", "/dev/stdin"));
  TRY(symlink_if_missing("/proc/self/fd/1", "/dev/stdout"));
  TRY(symlink_if_missing("/proc/self/fd/2", "/dev/stderr"));
  TRY(make_dirs("/var"));
  TRY(symlink_if_missing("/run", "/var/run"));
  TRY(symlink_if_missing("/proc/self/mounts", "/etc/mtab"));
  // Let dockerd/runc use every controller for containers (the root cgroup may hold
  // processes, so enabling them here is allowed).
  auto controllers = read_file("/sys/fs/cgroup/cgroup.controllers");
  if (controllers) {
    std::string enable;
    size_t pos = 0;
    std::string c = *controllers;
    while (pos < c.size()) {
      size_t end = c.find_first_of(" \n", pos);
      if (end == std::string::npos) end = c.size();
      if (end > pos) enable += "+" + c.substr(pos, end - pos) + " ";
      pos = end + 1;
    }
    int fd = ::open("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (::write(fd, enable.data(), enable.size()) < 0) {
        log::warn("enabling cgroup controllers (%s): %s", enable.c_str(), strerror(errno));
      }
      ::close(fd);
    }
  }
  return {};
}

}  // namespace pinata::guest
