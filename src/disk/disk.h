// Disk: a virtual block device backed by an image file (raw or qcow2), with no knowledge of
// how it is exposed to a guest (src/blk/ puts a vhost-user-blk device on top).
//
// Thread-safety: every method of a Disk may be called from any thread, concurrently. RawDisk
// needs no lock (positional I/O only); Qcow2Disk serialises each call with one mutex per image
// (metadata, caches and allocation state are shared). compact() holds that mutex for the whole
// operation, so I/O waits while it runs. A Disk must outlive all in-flight calls.
//
// Errors: a failed call returns an Error whose kind is stable (kIo: the host file failed,
// errno in code(); kInvalidInput: a request outside the disk; kCorrupt: the image's metadata
// is inconsistent; kUnsupported: a feature this library does not implement) and whose message
// says what and where.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/result.h"

namespace pinata::disk {

enum class ImageFormat { kRaw, kQcow2 };
const char* image_format_name(ImageFormat format);

enum class Access { kReadOnly, kReadWrite };
// For write_zeroes: may the range be deallocated in the image (hole) instead of written.
enum class Unmap { kNo, kAllowed };
// Whether opening an image may follow its backing-file reference.
enum class Backing { kFollow, kRefuse };

struct DiskInfo {
  ImageFormat format = ImageFormat::kRaw;
  uint64_t virtual_size = 0;
  uint64_t file_size = 0;          // the host file's length (st_size)
  uint64_t allocated_bytes = 0;    // bytes the host file system really holds (st_blocks)
  uint64_t used_bytes = 0;         // clusters in use (data + metadata) × cluster size
  uint64_t reclaimable_bytes = 0;  // what compact() could give back: file size − used bytes
  uint32_t cluster_size = 0;       // 0 for raw
  uint32_t version = 0;            // qcow2 version (2 or 3), 0 for raw
  std::string backing_file;        // as written in the image, "" if none
};

struct OpenOptions {
  Access access = Access::kReadWrite;
  std::optional<ImageFormat> format;  // nullopt: probe the file's first bytes
  Backing backing = Backing::kFollow;
  size_t cache_bytes = 32 << 20;      // qcow2: L2 + refcount-block cache budget
  int max_backing_depth = 16;         // longer chains are refused (loops are always refused)
};

class Disk {
 public:
  virtual ~Disk() = default;

  virtual ImageFormat format() const = 0;
  virtual uint64_t virtual_size() const = 0;
  virtual bool read_only() const = 0;

  // Reads buf.size() bytes at `offset`. [offset, offset + size) must lie inside the disk.
  virtual Status read(uint64_t offset, std::span<uint8_t> buf) = 0;
  virtual Status write(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Makes [offset, offset + len) read as zeros.
  virtual Status write_zeroes(uint64_t offset, uint64_t len, Unmap unmap) = 0;
  // Tells the image the range is unused. Whole clusters inside the range are deallocated and
  // read as zeros afterwards (qcow2 with a v2 backing chain: they read from the backing file);
  // partial clusters are left unchanged. The host file shrinks (holes) once the change is
  // durable, at the next flush.
  virtual Status discard(uint64_t offset, uint64_t len) = 0;
  // Makes every completed write durable (caches written back, then fdatasync).
  virtual Status flush() = 0;
  virtual Result<DiskInfo> info() = 0;
  // Moves data away from the end of the file into free space and truncates the file.
  virtual Status compact() = 0;
  // Flushes and marks the image clean. Destruction without close() does the same, best effort.
  virtual Status close() = 0;
};

// Opens `path`, probing its format unless options.format says it.
Result<std::unique_ptr<Disk>> open_disk(const std::string& path, const OpenOptions& options = {});

// Reads the first bytes of `path` and says which format it is (anything not qcow2 is raw).
Result<ImageFormat> probe_format(const std::string& path);

}  // namespace pinata::disk
