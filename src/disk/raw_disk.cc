#include "disk/raw_disk.h"

namespace pinata::disk {

Result<std::unique_ptr<RawDisk>> RawDisk::open(const std::string& path, Access access) {
  TRY_ASSIGN(HostFile file, HostFile::open(path, access));
  TRY_ASSIGN(uint64_t size, file.size());
  return std::unique_ptr<RawDisk>(new RawDisk(std::move(file), size));
}

Status RawDisk::create(const std::string& path, uint64_t size) {
  TRY_ASSIGN(HostFile file, HostFile::open(path, Access::kReadWrite, Create::kExclusive));
  TRY(file.truncate(size));
  return file.sync();
}

Status RawDisk::check_range(uint64_t offset, uint64_t len, bool write) const {
  if (write && read_only()) return fail(ErrorKind::kInvalidInput, file_.name() + ": opened read-only");
  if (offset > size_ || len > size_ - offset)
    return fail(ErrorKind::kInvalidInput, file_.name() + ": request [" + std::to_string(offset) + ", +" +
                                              std::to_string(len) + ") beyond the disk size " +
                                              std::to_string(size_));
  return {};
}

Status RawDisk::read(uint64_t offset, std::span<uint8_t> buf) {
  TRY(check_range(offset, buf.size(), false));
  return file_.read_at(offset, buf);
}

Status RawDisk::write(uint64_t offset, std::span<const uint8_t> data) {
  TRY(check_range(offset, data.size(), true));
  return file_.write_at(offset, data);
}

Status RawDisk::write_zeroes(uint64_t offset, uint64_t len, Unmap unmap) {
  TRY(check_range(offset, len, true));
  return file_.zero_range(offset, len, unmap);
}

Status RawDisk::discard(uint64_t offset, uint64_t len) {
  TRY(check_range(offset, len, true));
  return file_.punch_hole(offset, len);
}

Status RawDisk::flush() {
  if (read_only()) return {};
  return file_.sync();
}

Result<DiskInfo> RawDisk::info() {
  DiskInfo i;
  i.format = ImageFormat::kRaw;
  i.virtual_size = size_;
  TRY_ASSIGN(i.file_size, file_.size());
  TRY_ASSIGN(i.allocated_bytes, file_.allocated_bytes());
  i.used_bytes = i.allocated_bytes;
  return i;
}

}  // namespace pinata::disk
