// blk-tool: test peer for the real-guest check (tools/qemu_check.sh). Runs in the guest on
// /dev/vda (O_DIRECT for block devices, so the device really sees the I/O) and on the host on
// an image converted to raw. Data is a pattern derived from (seed, byte offset), so any range
// can be checked on its own.
//
//   blk-tool write  PATH OFFSET LEN SEED   pattern, 1 MiB writes, then fdatasync; MiB/s
//   blk-tool verify PATH OFFSET LEN SEED   checks the pattern; MiB/s
//   blk-tool zeros  PATH OFFSET LEN        checks that the range reads as zeros
//   blk-tool discard PATH OFFSET LEN       BLKDISCARD
//   blk-tool zeroout PATH OFFSET LEN       BLKZEROOUT (REQ_OP_WRITE_ZEROES when offered)
//   blk-tool fsync  PATH
//   blk-tool randread|randwrite PATH OFFSET LEN COUNT   COUNT 4 KiB requests at random
//                                          4 KiB-aligned offsets in the range; IOPS
// OFFSET and LEN take K, M and G suffixes. Every command prints one "RESULT ..." line and exits
// 0 on success, 1 on failure.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr size_t kBlock = 1 << 20;

uint64_t parse_size(const char* s) {
  char* end = nullptr;
  uint64_t v = std::strtoull(s, &end, 0);
  switch (*end) {
    case 'K':
    case 'k':
      return v << 10;
    case 'M':
    case 'm':
      return v << 20;
    case 'G':
    case 'g':
      return v << 30;
    default:
      return v;
  }
}

uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The pattern for [offset, offset + len), offset and len multiples of 8.
void fill(uint8_t* buf, uint64_t offset, size_t len, uint64_t seed) {
  for (size_t i = 0; i < len; i += 8) {
    uint64_t w = mix(seed * 0x100000001b3ull ^ ((offset + i) >> 3));
    std::memcpy(buf + i, &w, 8);
  }
}

int open_path(const char* path, int flags) {
  struct stat st;
  if (::stat(path, &st) == 0 && S_ISBLK(st.st_mode)) flags |= O_DIRECT;
  int fd = ::open(path, flags | O_CLOEXEC);
  if (fd < 0) {
    std::printf("RESULT open %s FAILED: %s\n", path, std::strerror(errno));
    std::exit(1);
  }
  return fd;
}

uint8_t* aligned(size_t n) {
  void* p = nullptr;
  if (::posix_memalign(&p, 4096, n) != 0) std::abort();
  return static_cast<uint8_t*>(p);
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int usage() {
  std::fprintf(stderr,
               "usage: blk-tool write|verify PATH OFFSET LEN SEED\n"
               "       blk-tool zeros|discard|zeroout PATH OFFSET LEN\n"
               "       blk-tool fsync PATH\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  std::string cmd = argv[1];
  const char* path = argv[2];
  if (cmd == "fsync") {
    int fd = open_path(path, O_RDONLY);
    bool ok = ::fsync(fd) == 0;
    std::printf("RESULT fsync %s\n", ok ? "ok" : std::strerror(errno));
    return ok ? 0 : 1;
  }
  if (argc < 5) return usage();
  uint64_t offset = parse_size(argv[3]);
  uint64_t len = parse_size(argv[4]);
  uint64_t seed = argc > 5 ? parse_size(argv[5]) : 0;
  if (offset % 512 || len % 512) {
    std::fprintf(stderr, "OFFSET and LEN must be multiples of 512\n");
    return 2;
  }

  if (cmd == "randread" || cmd == "randwrite") {
    bool w = cmd == "randwrite";
    int fd = open_path(path, w ? O_WRONLY : O_RDONLY);
    uint8_t* buf = aligned(4096);
    fill(buf, 0, 4096, 42);
    uint64_t blocks = len / 4096, x = 12345;
    if (blocks == 0) return usage();
    auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < seed; i++) {  // seed is COUNT here
      x = mix(x);
      off_t at = static_cast<off_t>(offset + (x % blocks) * 4096);
      ssize_t n = w ? ::pwrite(fd, buf, 4096, at) : ::pread(fd, buf, 4096, at);
      if (n != 4096) {
        std::printf("RESULT %s FAILED: %s\n", cmd.c_str(), n < 0 ? std::strerror(errno) : "short");
        return 1;
      }
    }
    double t = since(t0);
    std::printf("RESULT %s %llu x 4 KiB ok in %.3f s (%.0f IOPS)\n", cmd.c_str(),
                static_cast<unsigned long long>(seed), t, static_cast<double>(seed) / t);
    return 0;
  }

  if (cmd == "discard" || cmd == "zeroout") {
    int fd = open_path(path, O_RDWR);
    uint64_t range[2] = {offset, len};
    auto t0 = std::chrono::steady_clock::now();
    int r = ::ioctl(fd, cmd == "discard" ? BLKDISCARD : BLKZEROOUT, range);
    if (r != 0) {
      std::printf("RESULT %s FAILED: %s\n", cmd.c_str(), std::strerror(errno));
      return 1;
    }
    std::printf("RESULT %s %llu bytes ok in %.3f s\n", cmd.c_str(),
                static_cast<unsigned long long>(len), since(t0));
    return 0;
  }

  bool writing = cmd == "write";
  if (!writing && cmd != "verify" && cmd != "zeros") return usage();
  if (writing && argc < 6) return usage();
  int fd = open_path(path, writing ? O_WRONLY : O_RDONLY);
  uint8_t* buf = aligned(kBlock);
  uint8_t* want = aligned(kBlock);
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t done = 0; done < len;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kBlock, len - done));
    uint64_t at = offset + done;
    if (cmd == "zeros") {
      std::memset(want, 0, n);
    } else {
      fill(want, at, n, seed);
    }
    ssize_t got;
    if (writing) {
      got = ::pwrite(fd, want, n, static_cast<off_t>(at));
    } else {
      got = ::pread(fd, buf, n, static_cast<off_t>(at));
    }
    if (got != static_cast<ssize_t>(n)) {
      std::printf("RESULT %s FAILED at offset %llu: %s\n", cmd.c_str(),
                  static_cast<unsigned long long>(at),
                  got < 0 ? std::strerror(errno) : "short transfer");
      return 1;
    }
    if (!writing && std::memcmp(buf, want, n) != 0) {
      size_t i = 0;
      while (buf[i] == want[i]) i++;
      std::printf("RESULT %s FAILED: mismatch at offset %llu\n", cmd.c_str(),
                  static_cast<unsigned long long>(at + i));
      return 1;
    }
    done += n;
  }
  if (writing && ::fdatasync(fd) != 0) {
    std::printf("RESULT write FAILED: fdatasync: %s\n", std::strerror(errno));
    return 1;
  }
  double t = since(t0);
  std::printf("RESULT %s %llu bytes at %llu ok in %.3f s (%.1f MiB/s)\n", cmd.c_str(),
              static_cast<unsigned long long>(len), static_cast<unsigned long long>(offset), t,
              static_cast<double>(len) / (1 << 20) / (t > 0 ? t : 1e-9));
  return 0;
}
