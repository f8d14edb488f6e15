// HostFile: the I/O engine under every image format — positional reads and writes on one host
// file, durability (fdatasync), holes (fallocate) and truncation. It knows nothing of formats.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>

#include "base/fd.h"
#include "base/result.h"
#include "disk/disk.h"

namespace pinata::disk {

enum class Create { kNo, kExclusive };

class HostFile {
 public:
  HostFile() = default;
  // `fd` is owned; its current size is read once (see known_size()).
  HostFile(UniqueFd fd, std::string name, bool writable);

  static Result<HostFile> open(const std::string& path, Access access, Create create = Create::kNo);

  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }
  bool writable() const { return writable_; }

  // Reads exactly buf.size() bytes; the part beyond the end of the file reads as zeros.
  Status read_at(uint64_t offset, std::span<uint8_t> buf) const;
  Status write_at(uint64_t offset, std::span<const uint8_t> data);
  // Gathers `iov` (all of it) at `offset`.
  Status writev_at(uint64_t offset, std::span<const struct iovec> iov);
  Status readv_at(uint64_t offset, std::span<const struct iovec> iov) const;
  Status sync();
  // Deallocates [offset, offset + len) keeping the size; a file system without holes is not an
  // error (the data stays, the caller's metadata is what counts).
  Status punch_hole(uint64_t offset, uint64_t len);
  // Makes the range read as zeros, deallocating it if `unmap` allows.
  Status zero_range(uint64_t offset, uint64_t len, Unmap unmap);
  Status truncate(uint64_t size);
  Result<uint64_t> size() const;
  Result<uint64_t> allocated_bytes() const;
  // The file's size as of the last change made through this object (the library assumes it is
  // the only writer of an image): everything at or beyond it reads as zeros.
  uint64_t known_size() const { return known_size_; }

 private:
  UniqueFd fd_;
  std::string name_;
  bool writable_ = false;
  uint64_t known_size_ = 0;
};

}  // namespace pinata::disk
