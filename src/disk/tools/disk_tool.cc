// pinata-disk-tool: drives the disk library from the command line, for the interoperability and
// crash tests (tests/integration/qcow2_interop_test.sh) and the benchmark (bench/disk).
//
//   create IMG SIZE [--cluster-size N] [--compat 0.10|1.1] [--refcount-bits N]
//                   [--backing FILE] [--backing-format raw|qcow2] [--refcount-table-clusters N]
//   info IMG                       key=value lines
//   check IMG [--repair]           corruptions/leaks; exit 2 on corruption, 3 on leaks
//   export IMG OUT                 the whole disk as a raw file
//   random IMG REF --seed S [--ops N] [--max-len N]
//                                  the same seeded writes/discards/zero-writes/flushes on IMG
//                                  (through the library) and on the raw file REF (a model)
//   script IMG REF                 ops from stdin, one a line, on IMG and REF:
//                                  w OFF LEN SEED | z OFF LEN [unmap] | d OFF LEN | f | c
//   crash-writer IMG --seed S [--flush-every K]
//                                  endless seeded sector-aligned ops; "flushed seq N" after
//                                  each completed flush (N ops are then durable)
//   crash-verify IMG BASE --seed S --flushed N [--flush-every K]
//                                  the image holds BASE + the first N ops, except where one of
//                                  the next K ops (maybe done, maybe not) wrote
//   compact IMG
//   bench IMG --rw read|write --bs N --count N [--step N | --random]
//                                  prints "ops/s=.. MiB/s=.." (clock stops before the final
//                                  flush, as in qemu-img bench; flush_seconds=.. follows)
//
// Debugging `random`: DISK_TOOL_TRACE=1 prints each op to stderr; DISK_TOOL_VERIFY_EACH=1
// compares the whole disk with the model after every op.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "base/log.h"
#include "disk/disk.h"
#include "disk/host_file.h"
#include "disk/qcow2_disk.h"
#include "disk/raw_disk.h"

using namespace pinata;
using namespace pinata::disk;

namespace {

struct Args {
  std::vector<std::string> pos;
  std::map<std::string, std::string> opt;
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = opt.find(k);
    return it == opt.end() ? def : it->second;
  }
  uint64_t num(const std::string& k, uint64_t def) const {
    auto it = opt.find(k);
    return it == opt.end() ? def : std::strtoull(it->second.c_str(), nullptr, 0);
  }
  bool has(const std::string& k) const { return opt.count(k) != 0; }
};

Args parse(int argc, char** argv, int from) {
  Args a;
  for (int i = from; i < argc; i++) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      if (s == "--repair" || s == "--random" || s == "--unmap")
        a.opt[s] = "1";
      else if (i + 1 < argc)
        a.opt[s] = argv[++i];
    } else {
      a.pos.push_back(s);
    }
  }
  return a;
}

uint64_t parse_size(const std::string& s) {
  char* end = nullptr;
  uint64_t v = std::strtoull(s.c_str(), &end, 0);
  switch (end && *end ? *end : 0) {
    case 'k': case 'K': return v << 10;
    case 'm': case 'M': return v << 20;
    case 'g': case 'G': return v << 30;
    case 't': case 'T': return v << 40;
    default: return v;
  }
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "pinata-disk-tool: %s\n", msg.c_str());
  std::exit(1);
}

template <typename T>
T must(Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().message());
  return std::move(*r);
}
void must(Status s, const char* what) {
  if (!s) die(std::string(what) + ": " + s.error().message());
}

struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
};

// Deterministic contents for the bytes [off, off + len) written by op `seq` of run `seed`:
// every 8-byte word names (seed, seq, absolute word index), so any sector identifies its op.
void fill_pattern(uint8_t* buf, uint64_t off, size_t len, uint64_t seed, uint64_t seq) {
  uint64_t word_index = ~0ull, w = 0;
  for (size_t i = 0; i < len; i++) {
    uint64_t pos = off + i;
    if (pos / 8 != word_index) {
      word_index = pos / 8;
      Rng r{seed * 0x100000001b3ull ^ (seq << 32) ^ word_index};
      w = r.next();
    }
    buf[i] = static_cast<uint8_t>(w >> (8 * (pos % 8)));
  }
}

std::unique_ptr<Disk> open_rw(const std::string& path) {
  return must(open_disk(path, OpenOptions{}), ("open " + path).c_str());
}

enum class OpKind { kWrite, kZero, kDiscard, kFlush };
struct Op {
  OpKind kind;
  uint64_t off = 0, len = 0;
  bool unmap = false;
};

// The model of a discard: whole clusters inside the range read as zeros.
void model_discard(std::vector<uint8_t>* mem, HostFile* ref, uint64_t size, uint64_t cs, uint64_t off,
                   uint64_t len) {
  uint64_t a = (off + cs - 1) / cs * cs;
  uint64_t end = off + len == size ? (size + cs - 1) / cs * cs : off + len;
  uint64_t b = end / cs * cs;
  if (b <= a) return;
  b = std::min(b, size);
  if (mem) std::memset(mem->data() + a, 0, b - a);
  if (ref) {
    std::vector<uint8_t> z(b - a, 0);
    must(ref->write_at(a, z), "model discard");
  }
}

Op random_op(Rng& r, uint64_t size, uint64_t cs, uint64_t max_len, bool sector_aligned) {
  Op op;
  uint64_t roll = r.below(100);
  op.kind = roll < 55 ? OpKind::kWrite : roll < 70 ? OpKind::kDiscard : roll < 88 ? OpKind::kZero : OpKind::kFlush;
  if (op.kind == OpKind::kFlush) return op;
  uint64_t len;
  switch (r.below(4)) {
    case 0: len = 1 + r.below(std::min<uint64_t>(max_len, 4096)); break;          // small
    case 1: len = cs * (1 + r.below(std::max<uint64_t>(1, max_len / cs))); break;  // whole clusters
    default: len = 1 + r.below(max_len); break;
  }
  len = std::min(len, size);
  uint64_t off = r.below(size - len + 1);
  if (r.below(3) == 0) off = off / cs * cs;  // often cluster aligned
  if (sector_aligned) {
    off = off / 512 * 512;
    len = std::max<uint64_t>(512, len / 512 * 512);
    if (off + len > size) off = size - len;
  }
  op.off = off;
  op.len = len;
  op.unmap = r.below(2) == 0;
  return op;
}

int cmd_create(const Args& a) {
  if (a.pos.size() != 2) die("usage: create IMG SIZE [options]");
  Qcow2CreateOptions o;
  o.virtual_size = parse_size(a.pos[1]);
  o.cluster_size = static_cast<uint32_t>(parse_size(a.get("--cluster-size", "65536")));
  std::string compat = a.get("--compat", "1.1");
  if (compat != "0.10" && compat != "1.1") die("--compat: expected 0.10 or 1.1");
  o.version = compat == "0.10" ? 2 : 3;
  uint64_t bits = a.num("--refcount-bits", 16);
  o.refcount_order = static_cast<uint32_t>(__builtin_ctzll(bits));
  o.backing_file = a.get("--backing");
  o.backing_format = a.get("--backing-format");
  o.refcount_table_clusters = static_cast<uint32_t>(a.num("--refcount-table-clusters", 0));
  must(Qcow2Disk::create(a.pos[0], o), "create");
  return 0;
}

int cmd_info(const Args& a) {
  if (a.pos.size() != 1) die("usage: info IMG");
  OpenOptions o;
  o.access = Access::kReadOnly;
  auto d = must(open_disk(a.pos[0], o), "open");
  DiskInfo i = must(d->info(), "info");
  std::printf("format=%s\nvirtual_size=%" PRIu64 "\nfile_size=%" PRIu64 "\nallocated_bytes=%" PRIu64
              "\nused_bytes=%" PRIu64 "\nreclaimable_bytes=%" PRIu64 "\ncluster_size=%u\nversion=%u\n",
              image_format_name(i.format), i.virtual_size, i.file_size, i.allocated_bytes, i.used_bytes,
              i.reclaimable_bytes, i.cluster_size, i.version);
  if (!i.backing_file.empty()) std::printf("backing_file=%s\n", i.backing_file.c_str());
  return 0;
}

int cmd_check(const Args& a) {
  if (a.pos.size() != 1) die("usage: check IMG [--repair]");
  OpenOptions o;
  o.access = a.has("--repair") ? Access::kReadWrite : Access::kReadOnly;
  o.format = ImageFormat::kQcow2;
  auto d = must(Qcow2Disk::open(a.pos[0], o), "open");
  CheckReport r = must(d->check(a.has("--repair") ? Repair::kYes : Repair::kNo), "check");
  for (const auto& m : r.messages) std::printf("  %s\n", m.c_str());
  std::printf("corruptions=%" PRIu64 " leaks=%" PRIu64 " fixed=%" PRIu64 "\n", r.corruptions, r.leaks, r.fixed);
  if (a.has("--repair")) return 0;
  return r.corruptions ? 2 : r.leaks ? 3 : 0;
}

int cmd_export(const Args& a) {
  if (a.pos.size() != 2) die("usage: export IMG OUT");
  OpenOptions o;
  o.access = Access::kReadOnly;
  auto d = must(open_disk(a.pos[0], o), "open");
  int fd = ::open(a.pos[1].c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open " + a.pos[1] + ": " + std::strerror(errno));
  HostFile out(UniqueFd(fd), a.pos[1], true);
  std::vector<uint8_t> buf(1 << 20);
  uint64_t size = d->virtual_size();
  for (uint64_t off = 0; off < size; off += buf.size()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
    must(d->read(off, std::span<uint8_t>(buf.data(), n)), "read");
    if (std::all_of(buf.begin(), buf.begin() + n, [](uint8_t b) { return b == 0; })) continue;
    must(out.write_at(off, std::span<const uint8_t>(buf.data(), n)), "write");
  }
  must(out.truncate(size), "truncate");
  return 0;
}

// Applies one op to the image and to the reference file.
void apply(Disk& d, HostFile& ref, const Op& op, uint64_t cs, uint64_t seed, uint64_t seq) {
  switch (op.kind) {
    case OpKind::kWrite: {
      std::vector<uint8_t> buf(op.len);
      fill_pattern(buf.data(), op.off, buf.size(), seed, seq);
      must(d.write(op.off, buf), "write");
      must(ref.write_at(op.off, buf), "ref write");
      break;
    }
    case OpKind::kZero: {
      must(d.write_zeroes(op.off, op.len, op.unmap ? Unmap::kAllowed : Unmap::kNo), "write_zeroes");
      std::vector<uint8_t> z(op.len, 0);
      must(ref.write_at(op.off, z), "ref zero");
      break;
    }
    case OpKind::kDiscard:
      must(d.discard(op.off, op.len), "discard");
      model_discard(nullptr, &ref, d.virtual_size(), cs, op.off, op.len);
      break;
    case OpKind::kFlush:
      must(d.flush(), "flush");
      break;
  }
}

HostFile open_ref(const std::string& path, uint64_t size) {
  auto f = must(HostFile::open(path, Access::kReadWrite), ("open " + path).c_str());
  auto cur = must(f.size(), "size");
  if (cur != size) die(path + ": reference is " + std::to_string(cur) + " bytes, the disk " + std::to_string(size));
  return f;
}

uint64_t cluster_size_of(Disk& d) {
  DiskInfo i = must(d.info(), "info");
  return i.cluster_size ? i.cluster_size : 512;
}

int cmd_random(const Args& a) {
  if (a.pos.size() != 2) die("usage: random IMG REF --seed S [--ops N] [--max-len N]");
  auto d = open_rw(a.pos[0]);
  HostFile ref = open_ref(a.pos[1], d->virtual_size());
  uint64_t cs = cluster_size_of(*d);
  uint64_t seed = a.num("--seed", 1);
  uint64_t ops = a.num("--ops", 500);
  uint64_t max_len = parse_size(a.get("--max-len", std::to_string(4 * cs)));
  Rng r{seed};
  std::vector<uint8_t> x, y;
  for (uint64_t i = 0; i < ops; i++) {
    Op op = random_op(r, d->virtual_size(), cs, max_len, false);
    if (std::getenv("DISK_TOOL_TRACE"))
      std::fprintf(stderr, "op %" PRIu64 ": kind=%d off=%" PRIu64 " len=%" PRIu64 " unmap=%d\n", i,
                   static_cast<int>(op.kind), op.off, op.len, op.unmap);
    apply(*d, ref, op, cs, seed, i);
    if (std::getenv("DISK_TOOL_VERIFY_EACH")) {
      x.resize(d->virtual_size());
      y.resize(d->virtual_size());
      must(d->read(0, x), "read");
      must(ref.read_at(0, y), "ref read");
      if (x != y) die("after op " + std::to_string(i) + ": the disk differs from the model");
    }
    if (r.below(8) == 0) {  // read back a random range and compare at once
      uint64_t len = 1 + r.below(std::min<uint64_t>(max_len, d->virtual_size()));
      uint64_t off = r.below(d->virtual_size() - len + 1);
      x.resize(len);
      y.resize(len);
      must(d->read(off, x), "read");
      must(ref.read_at(off, y), "ref read");
      if (x != y) die("op " + std::to_string(i) + ": read of [" + std::to_string(off) + ", +" + std::to_string(len) +
                      ") differs from the model");
    }
  }
  if (a.has("--compact")) must(d->compact(), "compact");
  must(d->close(), "close");
  return 0;
}

int cmd_script(const Args& a) {
  if (a.pos.size() != 2) die("usage: script IMG REF < ops");
  auto d = open_rw(a.pos[0]);
  HostFile ref = open_ref(a.pos[1], d->virtual_size());
  uint64_t cs = cluster_size_of(*d);
  char line[256];
  uint64_t seq = 0;
  while (std::fgets(line, sizeof line, stdin)) {
    char c = 0;
    char w[4][64] = {};
    int n = std::sscanf(line, " %c %63s %63s %63s", &c, w[0], w[1], w[2]);
    if (n <= 0) continue;
    Op op;
    if (c == 'c') {
      must(d->compact(), "compact");
      continue;
    }
    if (c == 'f') {
      op.kind = OpKind::kFlush;
    } else {
      if (n < 3) die(std::string("bad op line: ") + line);
      op.off = parse_size(w[0]);
      op.len = parse_size(w[1]);
      op.kind = c == 'w' ? OpKind::kWrite : c == 'z' ? OpKind::kZero : c == 'd' ? OpKind::kDiscard : OpKind::kFlush;
      if (c == 'z') op.unmap = n >= 4 && std::string(w[2]) == "unmap";
    }
    uint64_t seed = (c == 'w' && n >= 4) ? parse_size(w[2]) : 1;
    apply(*d, ref, op, cs, seed, seq++);
  }
  must(d->close(), "close");
  return 0;
}

int cmd_crash_writer(const Args& a) {
  if (a.pos.size() != 1) die("usage: crash-writer IMG --seed S [--flush-every K]");
  auto d = open_rw(a.pos[0]);
  uint64_t cs = cluster_size_of(*d);
  uint64_t seed = a.num("--seed", 1);
  uint64_t k = a.num("--flush-every", 8);
  uint64_t max_ops = a.num("--ops", 1000000);
  uint64_t max_len = 4 * cs;
  Rng r{seed};
  std::vector<uint8_t> buf;
  for (uint64_t i = 0; i < max_ops; i++) {
    Op op = random_op(r, d->virtual_size(), cs, max_len, true);
    if (op.kind == OpKind::kFlush) op.kind = OpKind::kWrite;
    switch (op.kind) {
      case OpKind::kWrite:
        buf.resize(op.len);
        fill_pattern(buf.data(), op.off, buf.size(), seed, i);
        must(d->write(op.off, buf), "write");
        break;
      case OpKind::kZero:
        must(d->write_zeroes(op.off, op.len, op.unmap ? Unmap::kAllowed : Unmap::kNo), "write_zeroes");
        break;
      case OpKind::kDiscard:
        must(d->discard(op.off, op.len), "discard");
        break;
      case OpKind::kFlush:
        break;
    }
    if ((i + 1) % k == 0) {
      must(d->flush(), "flush");
      char line[64];
      int n = std::snprintf(line, sizeof line, "flushed seq %" PRIu64 "\n", i + 1);
      if (::write(1, line, static_cast<size_t>(n)) != n) return 1;
    }
  }
  must(d->close(), "close");
  return 0;
}

int cmd_crash_verify(const Args& a) {
  if (a.pos.size() != 2) die("usage: crash-verify IMG BASE --seed S --flushed N [--flush-every K]");
  auto d = open_rw(a.pos[0]);  // writable: a dirty image gets its refcounts repaired
  uint64_t size = d->virtual_size();
  uint64_t cs = cluster_size_of(*d);
  uint64_t seed = a.num("--seed", 1);
  uint64_t flushed = a.num("--flushed", 0);
  uint64_t k = a.num("--flush-every", 8);
  auto base = must(HostFile::open(a.pos[1], Access::kReadOnly), "open base");
  std::vector<uint8_t> model(size);
  must(base.read_at(0, model), "read base");
  const uint64_t sectors = (size + 511) / 512;
  // Alternatives per sector: op index that may have written it (UINT64_MAX: zeros).
  std::vector<std::vector<uint64_t>> alt(sectors);
  Rng r{seed};
  std::vector<uint8_t> buf;
  for (uint64_t i = 0; i < flushed + k; i++) {
    Op op = random_op(r, size, cs, 4 * cs, true);
    if (op.kind == OpKind::kFlush) op.kind = OpKind::kWrite;
    if (i < flushed) {
      if (op.kind == OpKind::kWrite) {
        fill_pattern(model.data() + op.off, op.off, op.len, seed, i);
      } else if (op.kind == OpKind::kZero) {
        std::memset(model.data() + op.off, 0, op.len);
      } else {
        model_discard(&model, nullptr, size, cs, op.off, op.len);
      }
      continue;
    }
    uint64_t from = op.off, to = op.off + op.len;
    if (op.kind == OpKind::kDiscard) {
      from = (op.off + cs - 1) / cs * cs;
      uint64_t end = op.off + op.len == size ? (size + cs - 1) / cs * cs : op.off + op.len;
      to = std::min(end / cs * cs, size);
    }
    for (uint64_t s = from / 512; s * 512 < to; s++) alt[s].push_back(op.kind == OpKind::kWrite ? i : UINT64_MAX);
  }
  std::vector<uint8_t> actual(size);
  must(d->read(0, actual), "read");
  uint64_t bad = 0;
  std::vector<uint8_t> sec(512);
  for (uint64_t s = 0; s < sectors; s++) {
    uint64_t off = s * 512;
    size_t n = static_cast<size_t>(std::min<uint64_t>(512, size - off));
    if (std::memcmp(actual.data() + off, model.data() + off, n) == 0) continue;
    bool ok = false;
    for (uint64_t j : alt[s]) {
      if (j == UINT64_MAX)
        std::fill(sec.begin(), sec.end(), 0);
      else
        fill_pattern(sec.data(), off, n, seed, j);
      if (std::memcmp(actual.data() + off, sec.data(), n) == 0) ok = true;
    }
    if (!ok && bad++ < 5)
      std::fprintf(stderr, "sector %" PRIu64 " (offset %" PRIu64 ") holds neither the flushed data nor a later op's\n", s, off);
  }
  must(d->close(), "close");
  if (bad) {
    std::fprintf(stderr, "%" PRIu64 " sectors lost data acknowledged by flush %" PRIu64 "\n", bad, flushed);
    return 1;
  }
  return 0;
}

int cmd_compact(const Args& a) {
  if (a.pos.size() != 1) die("usage: compact IMG");
  auto d = open_rw(a.pos[0]);
  must(d->compact(), "compact");
  must(d->close(), "close");
  return 0;
}

double now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Same access pattern as `qemu-img bench`: request i at (i * step) mod disk size.
int cmd_bench(const Args& a) {
  if (a.pos.size() != 1) die("usage: bench IMG --rw read|write --bs N --count N [--step N | --random]");
  bool write = a.get("--rw", "read") == "write";
  OpenOptions o;
  o.access = write ? Access::kReadWrite : Access::kReadOnly;
  auto d = must(open_disk(a.pos[0], o), "open");
  uint64_t bs = parse_size(a.get("--bs", "4096"));
  uint64_t count = a.num("--count", 10000);
  uint64_t step = parse_size(a.get("--step", std::to_string(bs)));
  uint64_t size = d->virtual_size();
  std::vector<uint8_t> buf(bs);
  fill_pattern(buf.data(), 0, bs, 7, 7);
  Rng r{42};
  uint64_t off = 0;
  double t0 = now();
  for (uint64_t i = 0; i < count; i++) {
    if (a.has("--random")) off = r.below(size / bs) * bs;
    if (off + bs > size) off = 0;
    if (write)
      must(d->write(off, buf), "write");
    else
      must(d->read(off, buf), "read");
    off = (off + step) % size;
  }
  // Like `qemu-img bench`, the clock stops when the last request completes; the flush that
  // follows (at close, for both) is reported on its own.
  double dt = now() - t0;
  double t1 = now();
  if (write) must(d->flush(), "flush");
  must(d->close(), "close");
  double flush = now() - t1;
  std::printf("ops/s=%.0f MiB/s=%.1f seconds=%.3f flush_seconds=%.3f\n", static_cast<double>(count) / dt,
              static_cast<double>(count * bs) / dt / (1 << 20), dt, flush);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  log::init("pinata-disk-tool", log::Level::kWarn);
  if (argc < 2) die("usage: pinata-disk-tool COMMAND ... (see the source header for commands)");
  std::string cmd = argv[1];
  Args a = parse(argc, argv, 2);
  if (cmd == "create") return cmd_create(a);
  if (cmd == "info") return cmd_info(a);
  if (cmd == "check") return cmd_check(a);
  if (cmd == "export") return cmd_export(a);
  if (cmd == "random") return cmd_random(a);
  if (cmd == "script") return cmd_script(a);
  if (cmd == "crash-writer") return cmd_crash_writer(a);
  if (cmd == "crash-verify") return cmd_crash_verify(a);
  if (cmd == "compact") return cmd_compact(a);
  if (cmd == "bench") return cmd_bench(a);
  die("unknown command '" + cmd + "'");
}
