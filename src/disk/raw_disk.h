// RawDisk: the image file is the disk, byte for byte.
#pragma once

#include <memory>
#include <string>

#include "disk/disk.h"
#include "disk/host_file.h"

namespace pinata::disk {

class RawDisk final : public Disk {
 public:
  static Result<std::unique_ptr<RawDisk>> open(const std::string& path, Access access);
  // Creates a sparse raw file of `size` bytes (fails if it exists).
  static Status create(const std::string& path, uint64_t size);

  ImageFormat format() const override { return ImageFormat::kRaw; }
  uint64_t virtual_size() const override { return size_; }
  bool read_only() const override { return !file_.writable(); }
  Status read(uint64_t offset, std::span<uint8_t> buf) override;
  Status write(uint64_t offset, std::span<const uint8_t> data) override;
  Status write_zeroes(uint64_t offset, uint64_t len, Unmap unmap) override;
  Status discard(uint64_t offset, uint64_t len) override;
  Status flush() override;
  Result<DiskInfo> info() override;
  Status compact() override { return {}; }  // holes are already returned by discard
  Status close() override { return read_only() ? Status{} : flush(); }

 private:
  RawDisk(HostFile file, uint64_t size) : file_(std::move(file)), size_(size) {}
  Status check_range(uint64_t offset, uint64_t len, bool write) const;

  HostFile file_;
  uint64_t size_;
};

}  // namespace pinata::disk
