#include "disk/host_file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace pinata::disk {

HostFile::HostFile(UniqueFd fd, std::string name, bool writable)
    : fd_(std::move(fd)), name_(std::move(name)), writable_(writable) {
  if (auto sz = size()) known_size_ = *sz;
}

Result<HostFile> HostFile::open(const std::string& path, Access access, Create create) {
  int flags = O_CLOEXEC | (access == Access::kReadOnly ? O_RDONLY : O_RDWR);
  if (create == Create::kExclusive) flags |= O_CREAT | O_EXCL;
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return fail_errno("open " + path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return fail_errno("stat " + path, err);
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    ::close(fd);
    return fail(ErrorKind::kInvalidInput, path + ": not a regular file or block device");
  }
  return HostFile(UniqueFd(fd), path, access == Access::kReadWrite);
}

Status HostFile::read_at(uint64_t offset, std::span<uint8_t> buf) const {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pread(fd_.get(), buf.data() + done, buf.size() - done,
                        static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(name_ + ": read at " + std::to_string(offset + done));
    }
    if (n == 0) {  // end of file: the rest reads as zeros
      std::fill(buf.begin() + done, buf.end(), 0);
      return {};
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Status HostFile::write_at(uint64_t offset, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd_.get(), data.data() + done, data.size() - done,
                         static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(name_ + ": write at " + std::to_string(offset + done));
    }
    done += static_cast<size_t>(n);
  }
  known_size_ = std::max(known_size_, offset + data.size());
  return {};
}

namespace {

// Advances an iovec array past `n` bytes (copying it once so the caller's stays intact).
void advance(std::vector<struct iovec>& v, size_t& first, size_t n) {
  while (n > 0 && first < v.size()) {
    if (n >= v[first].iov_len) {
      n -= v[first].iov_len;
      first++;
    } else {
      v[first].iov_base = static_cast<uint8_t*>(v[first].iov_base) + n;
      v[first].iov_len -= n;
      n = 0;
    }
  }
}

}  // namespace

Status HostFile::writev_at(uint64_t offset, std::span<const struct iovec> iov) {
  std::vector<struct iovec> v(iov.begin(), iov.end());
  size_t first = 0;
  uint64_t pos = offset;
  while (first < v.size()) {
    size_t cnt = std::min<size_t>(v.size() - first, IOV_MAX);
    ssize_t n = ::pwritev(fd_.get(), v.data() + first, static_cast<int>(cnt), static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(name_ + ": write at " + std::to_string(pos));
    }
    pos += static_cast<uint64_t>(n);
    advance(v, first, static_cast<size_t>(n));
    while (first < v.size() && v[first].iov_len == 0) first++;
  }
  known_size_ = std::max(known_size_, pos);
  return {};
}

Status HostFile::readv_at(uint64_t offset, std::span<const struct iovec> iov) const {
  std::vector<struct iovec> v(iov.begin(), iov.end());
  size_t first = 0;
  uint64_t pos = offset;
  while (first < v.size()) {
    if (v[first].iov_len == 0) {
      first++;
      continue;
    }
    size_t cnt = std::min<size_t>(v.size() - first, IOV_MAX);
    ssize_t n = ::preadv(fd_.get(), v.data() + first, static_cast<int>(cnt), static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(name_ + ": read at " + std::to_string(pos));
    }
    if (n == 0) {  // end of file: zeros
      for (size_t i = first; i < v.size(); i++)
        std::fill_n(static_cast<uint8_t*>(v[i].iov_base), v[i].iov_len, 0);
      return {};
    }
    pos += static_cast<uint64_t>(n);
    advance(v, first, static_cast<size_t>(n));
  }
  return {};
}

Status HostFile::sync() {
  if (::fdatasync(fd_.get()) != 0) return fail_errno(name_ + ": fdatasync");
  return {};
}

Status HostFile::punch_hole(uint64_t offset, uint64_t len) {
  if (len == 0) return {};
  if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(len)) != 0) {
    if (errno == EOPNOTSUPP || errno == ENOSYS) return {};
    return fail_errno(name_ + ": punch hole at " + std::to_string(offset));
  }
  return {};
}

Status HostFile::zero_range(uint64_t offset, uint64_t len, Unmap unmap) {
  if (len == 0) return {};
  int mode = unmap == Unmap::kAllowed ? (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
                                      : FALLOC_FL_ZERO_RANGE;
  if (::fallocate(fd_.get(), mode, static_cast<off_t>(offset), static_cast<off_t>(len)) == 0) {
    // Punching past the end keeps the size; a zeroed range must still be inside the file.
    TRY_ASSIGN(uint64_t sz, size());
    if (sz < offset + len) TRY(truncate(offset + len));
    return {};
  }
  if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
    return fail_errno(name_ + ": zero range at " + std::to_string(offset));
  std::vector<uint8_t> zeros(std::min<uint64_t>(len, 1 << 20), 0);
  for (uint64_t done = 0; done < len;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), len - done));
    TRY(write_at(offset + done, std::span<const uint8_t>(zeros.data(), n)));
    done += n;
  }
  return {};
}

Status HostFile::truncate(uint64_t size) {
  if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0)
    return fail_errno(name_ + ": truncate to " + std::to_string(size));
  known_size_ = size;
  return {};
}

Result<uint64_t> HostFile::size() const {
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) return fail_errno(name_ + ": stat");
  if (S_ISBLK(st.st_mode)) {
    off_t end = ::lseek(fd_.get(), 0, SEEK_END);
    if (end < 0) return fail_errno(name_ + ": seek");
    return static_cast<uint64_t>(end);
  }
  return static_cast<uint64_t>(st.st_size);
}

Result<uint64_t> HostFile::allocated_bytes() const {
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) return fail_errno(name_ + ": stat");
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

}  // namespace pinata::disk
