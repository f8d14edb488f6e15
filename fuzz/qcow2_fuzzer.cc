// Fuzzes the qcow2 reader and writer with the input as a whole image file (in a memfd): open
// it read-only and read a few ranges and check it; then open a copy for writing and write,
// zero, discard, flush, check and compact. Backing files are refused (an image must not make
// the fuzzer open paths). Nothing may crash, hang or touch memory it does not own.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "base/log.h"
#include "disk/qcow2_disk.h"

using namespace pinata;
using namespace pinata::disk;

namespace {

HostFile memfd_with(const uint8_t* data, size_t size, bool writable) {
  int fd = ::memfd_create("qcow2-fuzz", MFD_CLOEXEC);
  if (fd < 0) return HostFile();
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  return HostFile(UniqueFd(fd), "fuzz.qcow2", writable);
}

void read_some(Disk& d) {
  std::vector<uint8_t> buf(70000);
  const uint64_t size = d.virtual_size();
  for (uint64_t off : {uint64_t{0}, size / 3, size > buf.size() ? size - buf.size() : 0}) {
    uint64_t n = std::min<uint64_t>(buf.size(), size - std::min(size, off));
    (void)d.read(off, std::span<uint8_t>(buf.data(), n));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool init = [] {
    log::init("qcow2_fuzzer", log::Level::kError);
    return true;
  }();
  (void)init;
  if (size > (4 << 20)) return 0;
  OpenOptions o;
  o.backing = Backing::kRefuse;
  o.cache_bytes = 1 << 20;
  {
    o.access = Access::kReadOnly;
    HostFile f = memfd_with(data, size, false);
    if (f.fd() < 0) return 0;
    auto d = Qcow2Disk::open_file(std::move(f), o);
    if (d) {
      read_some(**d);
      (void)(*d)->info();
      (void)(*d)->check();
    }
  }
  {
    o.access = Access::kReadWrite;
    HostFile f = memfd_with(data, size, true);
    if (f.fd() < 0) return 0;
    auto d = Qcow2Disk::open_file(std::move(f), o);
    if (!d) return 0;
    Disk& disk = **d;
    const uint64_t vsize = disk.virtual_size();
    std::vector<uint8_t> buf(5000, 0x5a);
    auto clamp = [&](uint64_t off, uint64_t n) { return std::min<uint64_t>(n, vsize - std::min(vsize, off)); };
    uint64_t mid = vsize / 2;
    (void)disk.write(0, std::span<const uint8_t>(buf.data(), clamp(0, buf.size())));
    (void)disk.write(mid, std::span<const uint8_t>(buf.data(), clamp(mid, buf.size())));
    (void)disk.write_zeroes(mid / 2, clamp(mid / 2, 300000), Unmap::kAllowed);
    (void)disk.discard(0, clamp(0, 1 << 20));
    (void)disk.flush();
    read_some(disk);
    (void)(*d)->check();
    if (size < (1 << 20)) (void)disk.compact();
    read_some(disk);
    (void)disk.close();
  }
  return 0;
}
