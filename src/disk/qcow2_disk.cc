#include "disk/qcow2_disk.h"

#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "disk/raw_disk.h"

namespace pinata::disk {

using namespace qcow2;

namespace {

uint64_t div_up(uint64_t a, uint64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

// Discards and copy-on-writes queue their freed clusters; past this many, flush early so the
// space is reused sooner and the list stays small.
constexpr size_t kMaxPendingFrees = 16384;

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Error corrupt(const std::string& name, const std::string& what) {
  return Error(ErrorKind::kCorrupt, name + ": " + what);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Create

Status Qcow2Disk::create(const std::string& path, const Qcow2CreateOptions& o) {
  const uint64_t cs = o.cluster_size;
  if (cs < (1u << kMinCreateClusterBits) || cs > (1u << kMaxClusterBits) || (cs & (cs - 1)) != 0)
    return fail(ErrorKind::kInvalidInput, "cluster size " + std::to_string(cs) +
                                              " (expected a power of two from 512 to 2097152)");
  if (o.version != 2 && o.version != 3)
    return fail(ErrorKind::kInvalidInput, "qcow2 version " + std::to_string(o.version) + " (expected 2 or 3)");
  if (o.refcount_order > 6 || (o.version == 2 && o.refcount_order != 4))
    return fail(ErrorKind::kInvalidInput, "refcount order " + std::to_string(o.refcount_order) +
                                              " (expected 0..6; version 2 needs 4)");
  if (o.backing_file.size() > kMaxBackingNameLength || o.backing_format.size() > 16)
    return fail(ErrorKind::kInvalidInput, "backing file name or format too long");
  Header h;
  h.version = o.version;
  h.cluster_bits = static_cast<uint32_t>(__builtin_ctzll(cs));
  h.refcount_order = o.refcount_order;
  h.header_length = o.version == 2 ? kV2HeaderLength : kV3HeaderLength;
  h.size = o.virtual_size;
  h.backing_file = o.backing_file;
  h.backing_format = o.backing_format;
  if (!o.backing_file.empty() && h.size == 0) {
    std::string bpath = o.backing_file[0] == '/' ? o.backing_file : dir_of(path) + "/" + o.backing_file;
    OpenOptions bo;
    bo.access = Access::kReadOnly;
    TRY_ASSIGN(auto backing, open_disk(bpath, bo));
    h.size = backing->virtual_size();
  }
  if (h.size > kMaxVirtualSize)
    return fail(ErrorKind::kInvalidInput, "virtual size " + std::to_string(h.size) + " is too large");
  const uint64_t l1_entries = l1_entries_for(h.size, h.cluster_bits);
  if (l1_entries * 8 > kMaxL1Bytes)
    return fail(ErrorKind::kInvalidInput, "virtual size " + std::to_string(h.size) +
                                              " needs an L1 table over 32 MiB: use a larger cluster size");
  h.l1_size = static_cast<uint32_t>(l1_entries);
  const uint64_t l1_clusters = std::max<uint64_t>(1, div_up(l1_entries * 8, cs));
  const uint64_t rb_entries = h.refblock_entries();
  // Size the refcount table for the fully allocated image, so it rarely has to grow.
  const uint64_t full = div_up(h.size, cs) + l1_entries + l1_clusters + 64;
  uint64_t rt_clusters = div_up(div_up(full, rb_entries) * 8, cs);
  rt_clusters = std::clamp<uint64_t>(rt_clusters, 1, std::min<uint64_t>(256, kMaxRefcountTableBytes / cs));
  if (o.refcount_table_clusters != 0) rt_clusters = std::min<uint64_t>(o.refcount_table_clusters, rt_clusters);
  uint64_t nb = 1;
  for (;;) {
    uint64_t meta = 1 + rt_clusters + nb + l1_clusters;
    uint64_t need = div_up(meta, rb_entries);
    if (need <= nb) break;
    nb = need;
  }
  const uint64_t meta = 1 + rt_clusters + nb + l1_clusters;
  h.refcount_table_offset = cs;
  h.refcount_table_clusters = static_cast<uint32_t>(rt_clusters);
  h.l1_table_offset = (1 + rt_clusters + nb) * cs;

  TRY_ASSIGN(HostFile file, HostFile::open(path, Access::kReadWrite, Create::kExclusive));
  auto write_all = [&]() -> Status {
    TRY(file.truncate(meta * cs));
    TRY(file.write_at(0, serialize_header(h)));
    std::vector<uint8_t> rt(rt_clusters * cs, 0);
    for (uint64_t b = 0; b < nb; b++) store_be64(rt.data() + b * 8, (1 + rt_clusters + b) * cs);
    TRY(file.write_at(cs, rt));
    // Refcount 1 for every metadata cluster, written in refcount blocks through a temporary
    // table object that knows the entry width.
    std::vector<uint8_t> blocks(nb * cs, 0);
    const uint64_t bits = h.refcount_bits();
    for (uint64_t c = 0; c < meta; c++) {
      uint64_t bit = c * bits;
      if (bits >= 8)
        blocks[bit / 8 + bits / 8 - 1] = 1;  // big-endian value 1
      else
        blocks[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    }
    TRY(file.write_at((1 + rt_clusters) * cs, blocks));
    return file.sync();
  };
  if (auto st = write_all(); !st) {
    ::unlink(path.c_str());
    return st;
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Open / close

Qcow2Disk::Qcow2Disk(HostFile file, Header header, const OpenOptions& options)
    : file_(std::move(file)),
      h_(std::move(header)),
      cs_(h_.cluster_size()),
      cb_(h_.cluster_bits),
      read_only_(options.access == Access::kReadOnly || !file_.writable()),
      l2_cache_(std::max<size_t>(4, options.cache_bytes * 3 / 4 / h_.cluster_size())),
      rb_cache_(std::max<size_t>(4, options.cache_bytes / 4 / h_.cluster_size())),
      zero_cluster_(h_.cluster_size(), 0) {}

Result<std::unique_ptr<Qcow2Disk>> Qcow2Disk::open(const std::string& path, const OpenOptions& options) {
  TRY_ASSIGN(HostFile file, HostFile::open(path, options.access));
  return open_file(std::move(file), options, {});
}

Result<std::unique_ptr<Qcow2Disk>> Qcow2Disk::open_file(HostFile file, const OpenOptions& options,
                                                        std::vector<std::string> chain) {
  TRY_ASSIGN(uint64_t size, file.size());
  std::vector<uint8_t> first(std::min<uint64_t>(size, 1u << kMaxClusterBits));
  TRY(file.read_at(0, first));
  auto header = parse_header(first, size);
  if (!header) return fail(header.error().context(file.name()));
  std::unique_ptr<Qcow2Disk> d(new Qcow2Disk(std::move(file), std::move(*header), options));
  if (auto st = d->load(options, std::move(chain)); !st) {
    d->closed_ = true;  // nothing to flush: the image was not changed
    return tl::unexpected(st.error());
  }
  return d;
}

Status Qcow2Disk::load(const OpenOptions& options, std::vector<std::string> chain) {
  const std::string& name = file_.name();
  if (!read_only_) {
    if (h_.incompatible_features & kIncompatCorrupt)
      return fail(corrupt(name, "the image is marked corrupt; open it read-only, or repair it with "
                                "`qemu-img check -r all`"));
    if (h_.nb_snapshots > 0)
      return fail(ErrorKind::kUnsupported,
                  name + ": images with internal snapshots can only be opened read-only");
    if (h_.has_bitmaps_extension)
      return fail(ErrorKind::kUnsupported,
                  name + ": images with persistent bitmaps can only be opened read-only");
  }
  TRY_ASSIGN(uint64_t file_size, file_.size());
  end_cluster_ = div_up(file_size, cs_);

  l1_.resize(h_.l1_size);
  if (h_.l1_size > 0) {
    std::vector<uint8_t> raw(uint64_t{h_.l1_size} * 8);
    TRY(file_.read_at(h_.l1_table_offset, raw));
    for (uint64_t i = 0; i < h_.l1_size; i++) l1_[i] = load_be64(raw.data() + i * 8);
  }
  l1_dirty_.assign(div_up(uint64_t{h_.l1_size} * 8, cs_), false);

  const uint64_t rt_entries = uint64_t{h_.refcount_table_clusters} * cs_ / 8;
  {
    std::vector<uint8_t> raw(rt_entries * 8);
    TRY(file_.read_at(h_.refcount_table_offset, raw));
    reftable_.resize(rt_entries);
    for (uint64_t i = 0; i < rt_entries; i++) reftable_[i] = load_be64(raw.data() + i * 8);
  }
  reftable_dirty_.assign(h_.refcount_table_clusters, false);
  for (uint64_t i = 0; i < rt_entries; i++) {
    uint64_t e = reftable_[i];
    if (e == 0) continue;
    if ((e & kRefTableReservedMask) || e % cs_ != 0)
      return fail(corrupt(name, "refcount table entry " + std::to_string(i) + " (" + hex(e) +
                                    ") is not cluster aligned"));
    uint64_t c = e / cs_;
    if (c >= end_cluster_)
      return fail(corrupt(name, "refcount block " + std::to_string(i) + " at " + hex(e) +
                                    " is beyond the end of the file"));
    if (is_fixed_metadata(c))
      return fail(corrupt(name, "refcount block " + std::to_string(i) + " at " + hex(e) +
                                    " overlaps the header, L1 table or refcount table"));
    if (!rb_clusters_.insert(c).second)
      return fail(corrupt(name, "refcount block at " + hex(e) + " is used twice"));
  }
  for (uint64_t i = 0; i < l1_.size(); i++) {
    TRY_ASSIGN(uint64_t off, l2_offset_at(i));
    if (off == 0) continue;
    uint64_t c = off / cs_;
    if (rb_clusters_.count(c))
      return fail(corrupt(name, "L2 table " + std::to_string(i) + " at " + hex(off) +
                                    " overlaps a refcount block"));
    if (!l2_clusters_.insert(c).second)
      return fail(corrupt(name, "L2 table at " + hex(off) + " is used twice"));
  }

  if (!h_.backing_file.empty()) {
    if (options.backing == Backing::kRefuse)
      return fail(ErrorKind::kUnsupported,
                  name + ": has a backing file (" + h_.backing_file + ") and backing files are not allowed here");
    std::string self = name;
    if (char* rp = ::realpath(name.c_str(), nullptr)) {
      self = rp;
      ::free(rp);
    }
    chain.push_back(self);
    std::string bpath = h_.backing_file[0] == '/' ? h_.backing_file : dir_of(name) + "/" + h_.backing_file;
    char* rp = ::realpath(bpath.c_str(), nullptr);
    if (!rp) return fail_errno(name + ": backing file " + bpath);
    std::string real = rp;
    ::free(rp);
    if (std::find(chain.begin(), chain.end(), real) != chain.end()) {
      std::string loop;
      for (const auto& c : chain) loop += c + " -> ";
      return fail(ErrorKind::kInvalidInput, name + ": backing file loop: " + loop + real);
    }
    if (static_cast<int>(chain.size()) > options.max_backing_depth)
      return fail(ErrorKind::kInvalidInput, name + ": backing chain longer than " +
                                                std::to_string(options.max_backing_depth) + " images");
    std::optional<ImageFormat> fmt;
    if (h_.backing_format == "qcow2")
      fmt = ImageFormat::kQcow2;
    else if (h_.backing_format == "raw" || h_.backing_format == "file")
      fmt = ImageFormat::kRaw;
    else if (!h_.backing_format.empty())
      return fail(ErrorKind::kUnsupported, name + ": backing format '" + h_.backing_format +
                                               "' is not supported (raw and qcow2 are)");
    if (!fmt) {
      TRY_ASSIGN(fmt, probe_format(real));
    }
    OpenOptions bo = options;
    bo.access = Access::kReadOnly;
    bo.cache_bytes = std::max<size_t>(options.cache_bytes / 4, 1 << 20);
    if (*fmt == ImageFormat::kQcow2) {
      TRY_ASSIGN(HostFile bf, HostFile::open(real, Access::kReadOnly));
      TRY_ASSIGN(backing_, open_file(std::move(bf), bo, chain));
    } else {
      TRY_ASSIGN(backing_, RawDisk::open(real, Access::kReadOnly));
    }
    backing_size_ = backing_->virtual_size();
  }

  dirty_on_disk_ = (h_.incompatible_features & kIncompatDirty) != 0;
  h_.incompatible_features &= ~kIncompatDirty;
  if (read_only_) {
    if (dirty_on_disk_)
      log::warn("%s: dirty bit set (not closed cleanly); opened read-only, refcounts not repaired",
                name.c_str());
    return {};
  }
  if (h_.autoclear_features != 0) {
    log::info("%s: clearing autoclear features %s", name.c_str(), hex(h_.autoclear_features).c_str());
    h_.autoclear_features = 0;
    uint8_t zero[8] = {};
    TRY(write_header_field(kOffAutoclear, zero));
    TRY(file_.sync());
  }
  if (dirty_on_disk_) {
    log::info("%s: dirty bit set (not closed cleanly): rebuilding refcounts", name.c_str());
    TRY_ASSIGN(CheckReport report, check_locked(Repair::kYes));
    log::info("%s: repair done: %llu leaked clusters, %llu other errors, %llu refcounts rewritten",
              name.c_str(), static_cast<unsigned long long>(report.leaks),
              static_cast<unsigned long long>(report.corruptions), static_cast<unsigned long long>(report.fixed));
    TRY(flush_locked());
  }
  return {};
}

Qcow2Disk::~Qcow2Disk() {
  std::lock_guard lock(mu_);
  if (auto st = close_locked(); !st) log::warn("%s: close: %s", file_.name().c_str(), st.error().message().c_str());
}

Status Qcow2Disk::close() {
  std::lock_guard lock(mu_);
  return close_locked();
}

Status Qcow2Disk::close_locked() {
  if (closed_) return {};
  if (!read_only_) {
    TRY(flush_locked());
    TRY(mark_clean());
    TRY(sync_if_needed());
  }
  closed_ = true;
  return {};
}

// ---------------------------------------------------------------------------------------------
// Mapping

bool Qcow2Disk::is_fixed_metadata(uint64_t c) const {
  if (c == 0) return true;
  if (h_.l1_size > 0) {
    uint64_t first = h_.l1_table_offset / cs_;
    uint64_t last = div_up(h_.l1_table_offset + uint64_t{h_.l1_size} * 8, cs_);
    if (c >= first && c < last) return true;
  }
  uint64_t rt = h_.refcount_table_offset / cs_;
  return c >= rt && c < rt + h_.refcount_table_clusters;
}

bool Qcow2Disk::is_metadata(uint64_t c) const {
  return is_fixed_metadata(c) || l2_clusters_.count(c) || rb_clusters_.count(c);
}

Status Qcow2Disk::check_request(uint64_t offset, uint64_t len, bool write) const {
  if (closed_) return fail(ErrorKind::kInvalidInput, file_.name() + ": image is closed");
  if (write && read_only_) return fail(ErrorKind::kInvalidInput, file_.name() + ": opened read-only");
  if (offset > h_.size || len > h_.size - offset)
    return fail(ErrorKind::kInvalidInput, file_.name() + ": request [" + std::to_string(offset) + ", +" +
                                              std::to_string(len) + ") beyond the disk size " +
                                              std::to_string(h_.size));
  return {};
}

Result<uint64_t> Qcow2Disk::l2_offset_at(uint64_t i) const {
  uint64_t e = l1_[i];
  if (e & kL1ReservedMask)
    return fail(corrupt(file_.name(), "L1 entry " + std::to_string(i) + " (" + hex(e) + ") has reserved bits set"));
  uint64_t off = e & kOffsetMask;
  if (off == 0) return uint64_t{0};
  if (off % cs_ != 0)
    return fail(corrupt(file_.name(), "L2 table offset " + hex(off) + " is not cluster aligned"));
  uint64_t c = off / cs_;
  if (c >= end_cluster_)
    return fail(corrupt(file_.name(), "L2 table at " + hex(off) + " is beyond the end of the file"));
  if (is_fixed_metadata(c))
    return fail(corrupt(file_.name(), "L2 table at " + hex(off) + " overlaps the header, L1 or refcount table"));
  return off;
}

Result<CachedTable*> Qcow2Disk::load_l2(uint64_t off) {
  if (CachedTable* t = l2_cache_.lookup(off)) return t;
  if (l2_cache_.full()) {
    CachedTable* victim = l2_cache_.lru();
    if (victim->dirty) TRY(write_back_l2());
    l2_cache_.erase(victim->offset);
  }
  std::vector<uint8_t> data(cs_);
  TRY(file_.read_at(off, data));
  return l2_cache_.insert(off, std::move(data), false);
}

Result<CachedTable*> Qcow2Disk::l2_for_write(uint64_t i) {
  TRY_ASSIGN(uint64_t off, l2_offset_at(i));
  if (off != 0) return load_l2(off);
  TRY_ASSIGN(uint64_t c, alloc_clusters(1));
  if (l2_cache_.full()) {
    CachedTable* victim = l2_cache_.lru();
    if (victim->dirty) TRY(write_back_l2());
    l2_cache_.erase(victim->offset);
  }
  l2_clusters_.insert(c);
  l1_[i] = (c * cs_) | kOflagCopied;
  l1_dirty_[i * 8 / cs_] = true;
  return l2_cache_.insert(c * cs_, std::vector<uint8_t>(cs_, 0), true);
}

Result<Qcow2Disk::Mapping> Qcow2Disk::decode(uint64_t e) const {
  Mapping m;
  m.raw = e;
  if (e & kOflagCompressed) {
    m.kind = Kind::kCompressed;
    return m;
  }
  if (e & kL2StandardReservedMask)
    return fail(corrupt(file_.name(), "L2 entry " + hex(e) + " has reserved bits set"));
  bool zero = (e & kOflagZero) != 0;
  if (zero && h_.version < 3)
    return fail(corrupt(file_.name(), "L2 entry " + hex(e) + " has the zero flag in a version 2 image"));
  uint64_t host = e & kOffsetMask;
  if (host % cs_ != 0)
    return fail(corrupt(file_.name(), "data cluster offset " + hex(host) + " is not cluster aligned"));
  if (host != 0 && host / cs_ >= end_cluster_)
    return fail(corrupt(file_.name(), "data cluster at " + hex(host) + " is beyond the end of the file"));
  if (host != 0 && host / cs_ == 0)
    return fail(corrupt(file_.name(), "data cluster at " + hex(host) + " overlaps the header"));
  m.host = host;
  m.kind = zero ? (host ? Kind::kZeroAllocated : Kind::kZero) : (host ? Kind::kNormal : Kind::kUnallocated);
  return m;
}

Result<Qcow2Disk::Mapping> Qcow2Disk::lookup(uint64_t gc) {
  const uint64_t l2e = h_.l2_entries();
  TRY_ASSIGN(uint64_t off, l2_offset_at(gc / l2e));
  if (off == 0) return Mapping{};
  TRY_ASSIGN(CachedTable * t, load_l2(off));
  return decode(load_be64(t->data.data() + (gc % l2e) * 8));
}

Status Qcow2Disk::read_backing(uint64_t offset, std::span<uint8_t> buf) {
  uint64_t n = 0;
  if (backing_ && offset < backing_size_) n = std::min<uint64_t>(buf.size(), backing_size_ - offset);
  if (n > 0) TRY(backing_->read(offset, buf.first(n)));
  std::fill(buf.begin() + n, buf.end(), 0);
  return {};
}

Status Qcow2Disk::decompress(const Mapping& m, std::span<uint8_t> out) {
  CompressedExtent ext = decode_compressed(m.raw, cb_);
  if (ext.offset < cs_ || ext.offset >= end_cluster_ * cs_)
    return fail(corrupt(file_.name(), "compressed cluster at " + hex(ext.offset) + " is outside the data area"));
  std::vector<uint8_t> in(ext.length);
  TRY(file_.read_at(ext.offset, in));
  z_stream z{};
  if (inflateInit2(&z, -15) != Z_OK) return fail(ErrorKind::kInternal, "zlib: inflateInit2 failed");
  z.next_in = in.data();
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&z, Z_FINISH);
  bool full = z.avail_out == 0;
  inflateEnd(&z);
  if (!full || (rc != Z_STREAM_END && rc != Z_OK && rc != Z_BUF_ERROR))
    return fail(corrupt(file_.name(), "compressed cluster at " + hex(ext.offset) +
                                          " does not decompress to a whole cluster"));
  return {};
}

Result<std::vector<uint8_t>> Qcow2Disk::cluster_contents(uint64_t gc, const Mapping& m) {
  std::vector<uint8_t> buf(cs_, 0);
  switch (m.kind) {
    case Kind::kNormal:
      TRY(file_.read_at(m.host, buf));
      break;
    case Kind::kCompressed:
      TRY(decompress(m, buf));
      break;
    case Kind::kUnallocated:
      TRY(read_backing(gc * cs_, buf));
      break;
    case Kind::kZero:
    case Kind::kZeroAllocated:
      break;
  }
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Read / write

Status Qcow2Disk::read(uint64_t offset, std::span<uint8_t> buf) {
  std::lock_guard lock(mu_);
  TRY(check_request(offset, buf.size(), false));
  std::vector<Segment> segs;
  uint64_t pos = offset;
  uint8_t* ptr = buf.data();
  uint64_t left = buf.size();
  while (left > 0) {
    uint64_t gc = pos >> cb_;
    uint64_t in = pos & (cs_ - 1);
    size_t n = static_cast<size_t>(std::min<uint64_t>(cs_ - in, left));
    TRY_ASSIGN(Mapping m, lookup(gc));
    switch (m.kind) {
      case Kind::kNormal: {
        uint64_t host = m.host + in;
        if (!segs.empty() && segs.back().host + segs.back().len == host && segs.back().ptr + segs.back().len == ptr)
          segs.back().len += n;
        else
          segs.push_back(Segment{host, ptr, n});
        break;
      }
      case Kind::kUnallocated:
        TRY(read_backing(pos, std::span<uint8_t>(ptr, n)));
        break;
      case Kind::kZero:
      case Kind::kZeroAllocated:
        std::memset(ptr, 0, n);
        break;
      case Kind::kCompressed: {
        std::vector<uint8_t> tmp(cs_);
        TRY(decompress(m, tmp));
        std::memcpy(ptr, tmp.data() + in, n);
        break;
      }
    }
    pos += n;
    ptr += n;
    left -= n;
  }
  for (const Segment& s : segs) TRY(file_.read_at(s.host, std::span<uint8_t>(s.ptr, s.len)));
  return {};
}

Status Qcow2Disk::submit_writes(std::vector<Segment>& segs) {
  size_t i = 0;
  while (i < segs.size()) {
    std::vector<struct iovec> iov;
    uint64_t start = segs[i].host;
    uint64_t end = start;
    while (i < segs.size() && segs[i].host == end) {
      iov.push_back({segs[i].ptr, segs[i].len});
      end += segs[i].len;
      i++;
    }
    TRY(file_.writev_at(start, iov));
    unsynced_ = true;
  }
  segs.clear();
  return {};
}

Status Qcow2Disk::release_reference(const Mapping& m) {
  switch (m.kind) {
    case Kind::kNormal:
    case Kind::kZeroAllocated:
      pending_free_.push_back(m.host / cs_);
      break;
    case Kind::kCompressed: {
      CompressedExtent ext = decode_compressed(m.raw, cb_);
      uint64_t first = ext.offset / cs_;
      uint64_t last = (ext.offset + ext.length - 1) / cs_;
      for (uint64_t c = first; c <= last && c < end_cluster_; c++) pending_free_.push_back(c);
      break;
    }
    case Kind::kUnallocated:
    case Kind::kZero:
      break;
  }
  return {};
}

Status Qcow2Disk::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  TRY(check_request(offset, data.size(), true));
  TRY(write_locked(offset, data));
  if (pending_free_.size() > kMaxPendingFrees) TRY(flush_locked());
  return {};
}

// Data reaches the file before the L2 entry that points at it: entries change only in the
// cached table, and cached tables are written back (write_back_l2) only after the queued data
// segments are submitted and synced.
Status Qcow2Disk::write_locked(uint64_t offset, std::span<const uint8_t> data) {
  const uint64_t l2e = h_.l2_entries();
  std::vector<Segment> segs;
  std::vector<std::vector<uint8_t>> owned;  // whole-cluster buffers for partial writes
  owned.reserve(data.size() / cs_ + 2);
  uint64_t cur_l1 = ~0ull;
  CachedTable* t = nullptr;
  uint64_t pos = offset;
  const uint8_t* ptr = data.data();
  uint64_t left = data.size();
  while (left > 0) {
    uint64_t gc = pos >> cb_;
    uint64_t in = pos & (cs_ - 1);
    size_t n = static_cast<size_t>(std::min<uint64_t>(cs_ - in, left));
    uint64_t l1i = gc / l2e;
    if (l1i != cur_l1) {
      TRY(submit_writes(segs));  // before an L2 miss can write back tables
      owned.clear();
      TRY_ASSIGN(t, l2_for_write(l1i));
      cur_l1 = l1i;
    }
    uint8_t* ep = t->data.data() + (gc % l2e) * 8;
    TRY_ASSIGN(Mapping m, decode(load_be64(ep)));
    bool in_place = false;
    bool reuse = false;
    if (m.kind == Kind::kNormal || m.kind == Kind::kZeroAllocated) {
      uint64_t hc = m.host / cs_;
      if (is_metadata(hc))
        return fail(corrupt(file_.name(), "data cluster at " + hex(m.host) + " overlaps metadata"));
      TRY_ASSIGN(uint64_t rc, refcount(hc));
      if (rc == 0)
        return fail(corrupt(file_.name(), "data cluster at " + hex(m.host) + " is in use with refcount 0"));
      if (rc == 1) (m.kind == Kind::kNormal ? in_place : reuse) = true;
    }
    if (in_place) {
      uint64_t host = m.host + in;
      if (!segs.empty() && segs.back().host + segs.back().len == host &&
          segs.back().ptr + segs.back().len == ptr)
        segs.back().len += n;
      else
        segs.push_back(Segment{host, const_cast<uint8_t*>(ptr), n});
    } else {
      uint64_t host;
      if (reuse) {
        host = m.host;
      } else {
        TRY_ASSIGN(uint64_t c, alloc_clusters(1));
        host = c * cs_;
        // alloc_clusters never evicts L2 tables, so `t` and `ep` stay valid.
      }
      const bool zero_base = m.kind == Kind::kZero || m.kind == Kind::kZeroAllocated ||
                             (m.kind == Kind::kUnallocated && !backing_);
      if (n == cs_) {
        segs.push_back(Segment{host, const_cast<uint8_t*>(ptr), n});
      } else if (zero_base && !reuse && host >= file_.known_size()) {
        // A new cluster past the end of the file already reads as zeros: write the data only.
        segs.push_back(Segment{host + in, const_cast<uint8_t*>(ptr), n});
      } else {
        TRY_ASSIGN(auto base, cluster_contents(gc, m.kind == Kind::kZeroAllocated ? Mapping{Kind::kZero} : m));
        std::memcpy(base.data() + in, ptr, n);
        owned.push_back(std::move(base));
        segs.push_back(Segment{host, owned.back().data(), cs_});
      }
      store_be64(ep, host | kOflagCopied);
      t->dirty = true;
      if (!reuse) TRY(release_reference(m));
    }
    pos += n;
    ptr += n;
    left -= n;
  }
  return submit_writes(segs);
}

// Sets the L2 entries of the whole clusters in [offset, offset + len) to "unallocated" (zero
// false: discard) or "reads as zeros" (zero true), releasing the host clusters unless a
// zero-write may keep them (unmap kNo).
Status Qcow2Disk::set_l2_entries(uint64_t offset, uint64_t len, bool zero, Unmap unmap) {
  const uint64_t l2e = h_.l2_entries();
  std::set<uint64_t> touched;
  for (uint64_t gc = offset >> cb_; gc < (offset + len) >> cb_; gc++) {
    uint64_t l1i = gc / l2e;
    TRY_ASSIGN(uint64_t off, l2_offset_at(l1i));
    if (off == 0 && !zero) {  // a whole L2 table's worth of unallocated clusters
      gc = (l1i + 1) * l2e - 1;
      continue;
    }
    if (off == 0 && !backing_) {  // already reads as zeros
      gc = (l1i + 1) * l2e - 1;
      continue;
    }
    TRY_ASSIGN(CachedTable * t, l2_for_write(l1i));
    uint8_t* ep = t->data.data() + (gc % l2e) * 8;
    uint64_t old = load_be64(ep);
    TRY_ASSIGN(Mapping m, decode(old));
    uint64_t next = zero ? kOflagZero : 0;
    bool keep = false;
    if (zero && unmap == Unmap::kNo && (m.kind == Kind::kNormal || m.kind == Kind::kZeroAllocated)) {
      uint64_t hc = m.host / cs_;
      TRY_ASSIGN(uint64_t rc, refcount(hc));
      if (rc == 1 && !is_metadata(hc)) {
        keep = true;
        next = m.host | kOflagZero | kOflagCopied;
      }
    }
    if (zero && !keep && !backing_ && m.kind == Kind::kUnallocated) continue;  // reads as zeros
    if (next == old) continue;
    store_be64(ep, next);
    t->dirty = true;
    if (!keep) TRY(release_reference(m));
    if (next == 0) touched.insert(l1i);
  }
  return free_empty_l2_tables(touched);
}

// An L2 table left with no entries is dropped: its L1 entry is cleared and the table's cluster
// freed (after the L1 change is durable, like any other freed cluster).
Status Qcow2Disk::free_empty_l2_tables(const std::set<uint64_t>& l1_indices) {
  for (uint64_t i : l1_indices) {
    TRY_ASSIGN(uint64_t off, l2_offset_at(i));
    if (off == 0) continue;
    TRY_ASSIGN(CachedTable * t, load_l2(off));
    if (std::any_of(t->data.begin(), t->data.end(), [](uint8_t b) { return b != 0; })) continue;
    l2_cache_.erase(off);
    l1_[i] = 0;
    l1_dirty_[i * 8 / cs_] = true;
    pending_free_.push_back(off / cs_);
  }
  return {};
}

Status Qcow2Disk::write_zeroes(uint64_t offset, uint64_t len, Unmap unmap) {
  std::lock_guard lock(mu_);
  TRY(check_request(offset, len, true));
  uint64_t a = std::min((offset + cs_ - 1) & ~(cs_ - 1), offset + len);
  uint64_t b = std::max((offset + len) & ~(cs_ - 1), a);
  // The last cluster of a disk whose size is not a multiple of the cluster size is whole too.
  if (offset + len == h_.size) b = std::max(a, div_up(h_.size, cs_) * cs_);
  auto zero_bytes = [&](uint64_t at, uint64_t n) -> Status {
    while (n > 0) {
      uint64_t k = std::min<uint64_t>(n, cs_);
      TRY(write_locked(at, std::span<const uint8_t>(zero_cluster_.data(), k)));
      at += k;
      n -= k;
    }
    return {};
  };
  TRY(zero_bytes(offset, a - offset));
  if (b > a) {
    if (h_.version >= 3) {
      TRY(set_l2_entries(a, b - a, true, unmap));
    } else if (!backing_) {
      TRY(set_l2_entries(a, b - a, false, unmap));  // unallocated reads as zeros
    } else {
      TRY(zero_bytes(a, std::min(b, h_.size) - a));
    }
  }
  if (offset + len > std::max(a, b) && b < offset + len) TRY(zero_bytes(b, offset + len - b));
  if (pending_free_.size() > kMaxPendingFrees) TRY(flush_locked());
  return {};
}

Status Qcow2Disk::discard(uint64_t offset, uint64_t len) {
  std::lock_guard lock(mu_);
  TRY(check_request(offset, len, true));
  uint64_t a = (offset + cs_ - 1) & ~(cs_ - 1);
  uint64_t end = offset + len == h_.size ? div_up(h_.size, cs_) * cs_ : offset + len;
  uint64_t b = end & ~(cs_ - 1);
  if (b <= a) return {};
  // With a backing file, v3 marks discarded clusters as zero so they do not show the backing
  // data again; v2 has no zero flag and falls back to the backing file.
  TRY(set_l2_entries(a, b - a, backing_ && h_.version >= 3, Unmap::kAllowed));
  if (pending_free_.size() > kMaxPendingFrees) TRY(flush_locked());
  return {};
}

// ---------------------------------------------------------------------------------------------
// Write-back and durability

Status Qcow2Disk::sync_if_needed() {
  if (!unsynced_) return {};
  TRY(file_.sync());
  unsynced_ = false;
  return {};
}

Status Qcow2Disk::write_header_field(uint64_t offset, std::span<const uint8_t> bytes) {
  TRY(file_.write_at(offset, bytes));
  unsynced_ = true;
  return {};
}

// The dirty bit goes to disk (and is synced) before the first metadata write after a clean
// point, so an image whose metadata may be behind says so.
Status Qcow2Disk::ensure_dirty_bit() {
  if (h_.version < 3 || dirty_on_disk_) return {};
  uint8_t v[8];
  store_be64(v, h_.incompatible_features | kIncompatDirty);
  TRY(write_header_field(kOffIncompatible, v));
  TRY(file_.sync());
  unsynced_ = false;
  dirty_on_disk_ = true;
  return {};
}

Status Qcow2Disk::mark_clean() {
  if (h_.version < 3 || !dirty_on_disk_ || read_only_) return {};
  if (!pending_free_.empty() || l2_cache_.any_dirty() || rb_cache_.any_dirty()) return {};
  if (std::find(l1_dirty_.begin(), l1_dirty_.end(), true) != l1_dirty_.end()) return {};
  if (std::find(reftable_dirty_.begin(), reftable_dirty_.end(), true) != reftable_dirty_.end()) return {};
  TRY(sync_if_needed());  // everything the clean header vouches for is durable first
  uint8_t v[8];
  store_be64(v, h_.incompatible_features);
  TRY(write_header_field(kOffIncompatible, v));
  dirty_on_disk_ = false;
  return {};
}

// Dirty L2 tables reach the disk only after the refcounts of everything they point at (and
// the data) are durable.
Status Qcow2Disk::write_back_l2() {
  TRY(persist_refcounts());
  if (!l2_cache_.any_dirty()) return {};
  TRY(sync_if_needed());
  TRY(ensure_dirty_bit());
  for (CachedTable* t : l2_cache_.dirty_tables()) {
    TRY(file_.write_at(t->offset, t->data));
    t->dirty = false;
    unsynced_ = true;
  }
  return {};
}

// The L1 table is written after the L2 tables it points at are durable.
Status Qcow2Disk::write_back_l1() {
  if (std::find(l1_dirty_.begin(), l1_dirty_.end(), true) == l1_dirty_.end()) return {};
  TRY(write_back_l2());
  TRY(sync_if_needed());
  TRY(ensure_dirty_bit());
  const uint64_t per = cs_ / 8;
  for (uint64_t k = 0; k < l1_dirty_.size(); k++) {
    if (!l1_dirty_[k]) continue;
    uint64_t first = k * per;
    uint64_t last = std::min<uint64_t>(first + per, l1_.size());
    std::vector<uint8_t> raw((last - first) * 8);
    for (uint64_t i = first; i < last; i++) store_be64(raw.data() + (i - first) * 8, l1_[i]);
    TRY(file_.write_at(h_.l1_table_offset + first * 8, raw));
    l1_dirty_[k] = false;
    unsynced_ = true;
  }
  return {};
}

// Flush: refcounts → sync → L2 tables → sync → L1 → sync; then the clusters whose references
// are now durably gone get their refcounts dropped (and holes punched), and those refcounts are
// written and synced too, so a clean header can follow.
Status Qcow2Disk::flush_locked() {
  if (read_only_ || closed_) return {};
  TRY(write_back_l1());
  TRY(write_back_l2());
  TRY(sync_if_needed());
  if (!pending_free_.empty()) {
    TRY(process_pending_frees());
    TRY(persist_refcounts());
  }
  TRY(sync_if_needed());
  return mark_clean();
}

Status Qcow2Disk::flush() {
  std::lock_guard lock(mu_);
  if (closed_) return fail(ErrorKind::kInvalidInput, file_.name() + ": image is closed");
  TRY(flush_locked());
  return sync_if_needed();
}

Result<DiskInfo> Qcow2Disk::info() {
  std::lock_guard lock(mu_);
  DiskInfo i;
  i.format = ImageFormat::kQcow2;
  i.virtual_size = h_.size;
  i.cluster_size = static_cast<uint32_t>(cs_);
  i.version = h_.version;
  i.backing_file = h_.backing_file;
  TRY_ASSIGN(i.file_size, file_.size());
  TRY_ASSIGN(i.allocated_bytes, file_.allocated_bytes());
  uint64_t used = 0;
  for (uint64_t c = 0; c < end_cluster_; c++) {
    TRY_ASSIGN(uint64_t rc, refcount(c));
    if (rc > 0) used++;
  }
  i.used_bytes = used * cs_;
  i.reclaimable_bytes = i.file_size > i.used_bytes ? i.file_size - i.used_bytes : 0;
  return i;
}

Status Qcow2Disk::compact() {
  std::lock_guard lock(mu_);
  if (closed_ || read_only_) return fail(ErrorKind::kInvalidInput, file_.name() + ": not open for writing");
  return compact_locked();
}

Result<CheckReport> Qcow2Disk::check(Repair repair) {
  std::lock_guard lock(mu_);
  if (repair == Repair::kYes && read_only_)
    return fail(ErrorKind::kInvalidInput, file_.name() + ": repair needs a writable image");
  TRY_ASSIGN(CheckReport r, check_locked(repair));
  if (repair == Repair::kYes) TRY(flush_locked());
  return r;
}

// ---------------------------------------------------------------------------------------------

const char* image_format_name(ImageFormat format) {
  return format == ImageFormat::kQcow2 ? "qcow2" : "raw";
}

Result<ImageFormat> probe_format(const std::string& path) {
  TRY_ASSIGN(HostFile f, HostFile::open(path, Access::kReadOnly));
  uint8_t magic[4] = {};
  TRY(f.read_at(0, magic));
  return load_be32(magic) == kMagic ? ImageFormat::kQcow2 : ImageFormat::kRaw;
}

Result<std::unique_ptr<Disk>> open_disk(const std::string& path, const OpenOptions& options) {
  ImageFormat fmt;
  if (options.format) {
    fmt = *options.format;
  } else {
    TRY_ASSIGN(fmt, probe_format(path));
  }
  if (fmt == ImageFormat::kQcow2) {
    TRY_ASSIGN(auto d, Qcow2Disk::open(path, options));
    return std::unique_ptr<Disk>(std::move(d));
  }
  TRY_ASSIGN(auto d, RawDisk::open(path, options.access));
  return std::unique_ptr<Disk>(std::move(d));
}

}  // namespace pinata::disk
