// Fuzzes the vhost-user-blk device (src/blk/): arbitrary bytes become one request chain
// (header + data/segments in the device-readable part, then a device-writable part whose last
// byte is the status) that the device runs against a 1 MiB in-memory disk. Oracles: ASan/UBSan
// (nothing outside the exactly-sized guest buffer), the disk traps on any access outside
// itself or any write to a read-only disk, and the completion must be well formed (used
// length within the writable part, a status of OK/IOERR/UNSUPP in the last byte).
//
// Input layout:
//   0    u8  flags: bit 0 read-only device; bit 1 DISCARD/WRITE_ZEROES not negotiated;
//            bit 2 indirect chain; bit 3 FLUSH not negotiated (writethrough);
//            bit 4 the guest set writeback = 0 through the config space
//   1    u8  device-readable descriptors: 1 + v % 8 (the readable bytes split evenly)
//   2    u16 device-writable bytes (LE)
//   4    u8  device-writable descriptors: 1 + v % 8
//   5..7 reserved
//   8..  device-readable bytes (at most 64 KiB used)
#include <fcntl.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/log.h"
#include "blk/device.h"
#include "disk/disk.h"
#include "vhost/guest_memory.h"
#include "vhost/message.h"
#include "vhost/mock_driver.h"
#include "vhost/virtqueue.h"

using namespace pinata;

namespace {

constexpr uint64_t kDiskBytes = 1 << 20;
constexpr uint64_t kGpa = 0;
constexpr uint64_t kVa = 0x7f0000000000;
constexpr size_t kMemBytes = 256 << 10;
constexpr uint64_t kDataGpa = 0x4000;  // rings and indirect tables below
constexpr size_t kMaxReadable = 64 << 10;
constexpr size_t kParams = 8;

[[noreturn]] void oracle(const char* what) {
  std::fprintf(stderr, "blk_request_fuzzer: %s\n", what);
  std::abort();
}

// A disk in memory that refuses (traps on) anything a correct device never asks for. The
// bytes are reused across runs (fresh large allocations make the fuzzer 20x slower).
class MemDisk final : public disk::Disk {
 public:
  MemDisk(std::vector<uint8_t>& bytes, bool read_only) : bytes_(bytes), read_only_(read_only) {}
  disk::ImageFormat format() const override { return disk::ImageFormat::kRaw; }
  uint64_t virtual_size() const override { return bytes_.size(); }
  bool read_only() const override { return read_only_; }
  Status read(uint64_t offset, std::span<uint8_t> buf) override {
    check(offset, buf.size(), false);
    std::memcpy(buf.data(), bytes_.data() + offset, buf.size());
    return {};
  }
  Status write(uint64_t offset, std::span<const uint8_t> data) override {
    check(offset, data.size(), true);
    std::memcpy(bytes_.data() + offset, data.data(), data.size());
    return {};
  }
  Status write_zeroes(uint64_t offset, uint64_t len, disk::Unmap) override {
    check(offset, len, true);
    std::memset(bytes_.data() + offset, 0, len);
    return {};
  }
  Status discard(uint64_t offset, uint64_t len) override {
    check(offset, len, true);
    return {};
  }
  Status flush() override { return {}; }
  Result<disk::DiskInfo> info() override { return disk::DiskInfo{}; }
  Status compact() override { return {}; }
  Status close() override { return {}; }

 private:
  void check(uint64_t offset, uint64_t len, bool write) const {
    if (offset > bytes_.size() || len > bytes_.size() - offset) oracle("disk access out of range");
    if (write && read_only_) oracle("write to a read-only disk");
  }
  std::vector<uint8_t>& bytes_;
  bool read_only_;
};

// Splits [gpa, gpa + len) into `pieces` descriptors (empty ones dropped).
void split(uint64_t gpa, size_t len, unsigned pieces, bool writable,
           std::vector<vhost::testing::Buf>& out) {
  size_t per = (len + pieces - 1) / pieces;
  for (size_t off = 0; off < len; off += per) {
    size_t n = std::min(per, len - off);
    out.push_back({gpa + off, static_cast<uint32_t>(n), writable});
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    log::init("blk_request_fuzzer", log::Level::kError);
    static int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    log::set_fd(devnull);
    return true;
  }();
  (void)quiet;
  if (size < kParams) return 0;
  const uint8_t flags = data[0];
  const unsigned readable_descs = 1 + data[1] % 8;
  const size_t writable = data[2] | size_t{data[3]} << 8;
  const unsigned writable_descs = 1 + data[4] % 8;
  const size_t readable = std::min(size - kParams, kMaxReadable);
  if (readable == 0 && writable == 0) return 0;

  // Exactly-sized heap buffer as guest memory: any stray access is an ASan report.
  static std::vector<uint8_t> ram(kMemBytes);
  static std::vector<uint8_t> disk_bytes(kDiskBytes);
  std::memset(ram.data(), 0, ram.size());
  std::memset(disk_bytes.data(), 0, disk_bytes.size());
  vhost::GuestMemory::BufferRegion region{kGpa, kVa, ram.data(), ram.size()};
  auto memory = vhost::GuestMemory::from_buffers({&region, 1});
  if (!memory) oracle("guest memory");
  vhost::MemoryRegionDesc desc{kGpa, kMemBytes, kVa, 0};
  vhost::testing::MockDriver driver(*memory, desc, 16, kGpa, 0x3000);

  const uint64_t in_gpa = kDataGpa;
  const uint64_t out_gpa = kDataGpa + kMaxReadable;
  std::memcpy(ram.data() + in_gpa, data + kParams, readable);
  std::memset(ram.data() + out_gpa, 0xee, writable);
  std::vector<vhost::testing::Buf> bufs;
  split(in_gpa, readable, readable_descs, false, bufs);
  split(out_gpa, writable, writable_descs, true, bufs);

  MemDisk disk(disk_bytes, flags & 1);
  blk::DeviceOptions options;
  options.read_only = flags & 1;
  options.serial = "pinata-fuzz";
  options.max_discard_seg = 8;
  options.max_write_zeroes_seg = 8;
  options.max_discard_sectors = 1024;
  options.max_write_zeroes_sectors = 1024;
  blk::Device device(disk, options);
  uint64_t acked = device.features();
  if (flags & 2)
    acked &= ~(vhost::bit(blk::VIRTIO_BLK_F_DISCARD) | vhost::bit(blk::VIRTIO_BLK_F_WRITE_ZEROES));
  if (flags & 8) acked &= ~vhost::bit(blk::VIRTIO_BLK_F_FLUSH);
  device.set_features(acked);
  if (flags & 16) {
    const uint8_t zero = 0;
    (void)device.write_config(blk::kConfigWritebackOffset, {&zero, 1});
  }

  vhost::Virtqueue queue(0);
  driver.configure(queue);
  queue.set_event_idx(true);
  if (!queue.activate(*memory)) oracle("queue activation");
  if (flags & 4) {
    driver.add_indirect_chain({}, bufs);
  } else {
    driver.add_chain(bufs);
  }
  device.queue_ready(0, queue, -1);
  device.handle_kick(0, queue);

  if (driver.used_idx() != 1) oracle("request not completed");
  auto used = driver.used_elem(0);
  if (writable == 0) {
    if (used.len != 0) oracle("used length without a writable byte");
    return 0;
  }
  if (used.len < 1 || used.len > writable) oracle("used length outside the writable part");
  uint8_t status = ram[out_gpa + writable - 1];
  if (status > blk::VIRTIO_BLK_S_UNSUPP) oracle("bad status byte");
  // Bytes the device reports as written are the data prefix; past it, only the status.
  for (size_t i = used.len - 1; i + 1 < writable; i++) {
    if (ram[out_gpa + i] != 0xee) oracle("data written beyond the used length");
  }
  return 0;
}
