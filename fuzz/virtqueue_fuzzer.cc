// Fuzzes the split virtqueue: arbitrary bytes are the guest's memory (rings, descriptors,
// indirect tables, buffers) and the queue parameters. Every chain is walked with Reader and
// Writer and returned with add_used. ASan checks that nothing outside the two guest buffers
// is ever touched; the queue may end up broken, but nothing may crash.
//
// Input layout:
//   0      u8  size_log2 (queue size = 1 << (v % 9), so at most 256)
//   1      u8  flags: bit 0 EVENT_IDX, bit 1 NO_INTERRUPT in avail flags is left to the image
//   2      u16 base (next avail / used index)
//   4      u16 desc offset, 6 u16 avail offset, 8 u16 used offset (into region 0, frontend VA)
//   10..15 reserved
//   16..   region 0 image (64 KiB at GPA 0x10000, zero-padded), then region 1 (4 KiB at GPA
//          0x100000)
#include <fcntl.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "base/log.h"
#include "vhost/descriptor_chain.h"
#include "vhost/guest_memory.h"
#include "vhost/virtqueue.h"

using namespace pinata;
using namespace pinata::vhost;

namespace {
constexpr uint64_t kGpa0 = 0x10000, kSize0 = 0x10000, kVa0 = 0x7f0000000000;
constexpr uint64_t kGpa1 = 0x100000, kSize1 = 0x1000, kVa1 = 0x7f0000100000;
constexpr size_t kParams = 16;

uint16_t u16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    log::init("virtqueue_fuzzer", log::Level::kError);
    static int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    log::set_fd(devnull);
    return true;
  }();
  (void)quiet;
  if (size < kParams) return 0;
  uint32_t queue_size = 1u << (data[0] % 9);
  bool event_idx = data[1] & 1;
  uint16_t base = u16_at(data + 2);
  uint64_t desc = kVa0 + u16_at(data + 4);
  uint64_t avail = kVa0 + u16_at(data + 6);
  uint64_t used = kVa0 + u16_at(data + 8);

  // Exactly-sized heap buffers: any access outside them is an ASan report.
  std::vector<uint8_t> region0(kSize0, 0), region1(kSize1, 0);
  size_t image = size - kParams;
  std::memcpy(region0.data(), data + kParams, std::min<size_t>(image, kSize0));
  if (image > kSize0)
    std::memcpy(region1.data(), data + kParams + kSize0, std::min<size_t>(image - kSize0, kSize1));

  GuestMemory::BufferRegion regions[] = {{kGpa0, kVa0, region0.data(), region0.size()},
                                         {kGpa1, kVa1, region1.data(), region1.size()}};
  auto memory = GuestMemory::from_buffers(regions);
  if (!memory) return 0;

  Virtqueue queue(0);
  if (!queue.set_size(queue_size)) return 0;
  queue.set_addresses(desc, avail, used);
  queue.set_base(base);
  queue.set_event_idx(event_idx);
  if (!queue.activate(*memory)) return 0;

  std::vector<uint8_t> scratch(4096);
  for (uint32_t i = 0; i < 2 * queue_size + 2; i++) {
    auto chain = queue.pop();
    if (!chain) break;
    Reader reader(*chain);
    Writer writer(*chain);
    // Read the first bytes as an object, split, then drain the rest in pieces.
    (void)reader.read_obj<uint32_t>();
    Reader tail = reader.split_at(7);
    while (reader.available()) reader.read_some(scratch);
    while (tail.available()) tail.read_some(scratch);
    Writer body = writer.split_at(3);
    (void)writer.write_obj<uint16_t>(0xabcd);
    size_t to_write = std::min<size_t>(body.available(), 3 * scratch.size());
    while (to_write > 0) {
      size_t n = body.write_some(
          std::span<const uint8_t>(scratch).first(std::min(to_write, scratch.size())));
      if (n == 0) break;
      to_write -= n;
    }
    (void)queue.add_used(*chain,
                         static_cast<uint32_t>(writer.bytes_written() + body.bytes_written()));
    (void)queue.needs_notification();
  }
  return 0;
}
