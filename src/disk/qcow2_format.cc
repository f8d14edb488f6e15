#include "disk/qcow2_format.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace pinata::disk::qcow2 {

namespace {

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

Error corrupt(const std::string& what) { return Error(ErrorKind::kCorrupt, "qcow2 header: " + what); }

uint64_t round_up(uint64_t v, uint64_t align) { return (v + align - 1) / align * align; }

struct Range {
  uint64_t start;
  uint64_t end;
  const char* what;
};

bool overlaps(const Range& a, const Range& b) { return a.start < b.end && b.start < a.end; }

const char* const kIncompatNames[] = {"dirty bit", "corrupt bit", "external data file",
                                      "compression type", "extended L2 entries"};

}  // namespace

uint64_t l1_entries_for(uint64_t size, uint32_t cluster_bits) {
  uint64_t bytes_per_l2 = (1ull << cluster_bits) * ((1ull << cluster_bits) / 8);
  return size / bytes_per_l2 + (size % bytes_per_l2 != 0 ? 1 : 0);
}

std::string describe_feature_bits(uint64_t bits, uint8_t type, const std::vector<FeatureName>& names) {
  std::string out;
  for (unsigned bit = 0; bit < 64; bit++) {
    if (!(bits & (1ull << bit))) continue;
    if (!out.empty()) out += ", ";
    out += "bit " + std::to_string(bit);
    std::string name;
    for (const auto& n : names)
      if (n.type == type && n.bit == bit) name = n.name;
    if (name.empty() && type == 0 && bit < 5) name = kIncompatNames[bit];
    if (!name.empty()) out += " (" + name + ")";
  }
  return out;
}

Result<Header> parse_header(std::span<const uint8_t> first, uint64_t file_size) {
  if (first.size() < kV2HeaderLength || file_size < kV2HeaderLength)
    return fail(corrupt("file too short (" + std::to_string(std::min<uint64_t>(first.size(), file_size)) +
                        " bytes) for a qcow2 header"));
  const uint8_t* p = first.data();
  if (load_be32(p) != kMagic) return fail(ErrorKind::kInvalidInput, "not a qcow2 image (bad magic)");
  Header h;
  h.version = load_be32(p + 4);
  if (h.version != 2 && h.version != 3)
    return fail(ErrorKind::kUnsupported,
                "qcow2 version " + std::to_string(h.version) + " is not supported (2 and 3 are)");
  h.cluster_bits = load_be32(p + 20);
  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits)
    return fail(corrupt("cluster_bits " + std::to_string(h.cluster_bits) + " out of range " +
                        std::to_string(kMinClusterBits) + ".." + std::to_string(kMaxClusterBits)));
  const uint64_t cs = h.cluster_size();
  // Everything this parser looks at lies in the first cluster; absent bytes read as zeros.
  std::vector<uint8_t> buf(cs, 0);
  std::memcpy(buf.data(), p, std::min<size_t>(first.size(), cs));
  p = buf.data();

  h.backing_file_offset = load_be64(p + 8);
  h.backing_file_size = load_be32(p + 16);
  h.size = load_be64(p + 24);
  h.crypt_method = load_be32(p + 32);
  h.l1_size = load_be32(p + 36);
  h.l1_table_offset = load_be64(p + 40);
  h.refcount_table_offset = load_be64(p + 48);
  h.refcount_table_clusters = load_be32(p + 56);
  h.nb_snapshots = load_be32(p + 60);
  h.snapshots_offset = load_be64(p + 64);
  if (h.version == 2) {
    h.header_length = kV2HeaderLength;
    h.refcount_order = 4;
  } else {
    h.incompatible_features = load_be64(p + 72);
    h.compatible_features = load_be64(p + 80);
    h.autoclear_features = load_be64(p + 88);
    h.refcount_order = load_be32(p + 96);
    h.header_length = load_be32(p + 100);
    if (h.header_length < kV3HeaderLength || h.header_length % 8 != 0 || h.header_length > cs)
      return fail(corrupt("header_length " + std::to_string(h.header_length) +
                          " (must be a multiple of 8 from 104 to the cluster size)"));
    if (h.refcount_order > 6)
      return fail(corrupt("refcount_order " + std::to_string(h.refcount_order) + " (at most 6)"));
    if (h.header_length > 104) h.compression_type = p[104];
  }

  // Header extensions, up to the end marker or the end of the first cluster.
  uint64_t off = h.header_length;
  while (off + 8 <= cs) {
    uint32_t type = load_be32(p + off);
    uint32_t len = load_be32(p + off + 4);
    if (type == kExtEnd) break;
    if (len > cs - off - 8)
      return fail(corrupt("header extension " + hex(type) + " of " + std::to_string(len) +
                          " bytes overruns the first cluster"));
    const uint8_t* data = p + off + 8;
    switch (type) {
      case kExtBackingFormat:
        if (len > kMaxBackingNameLength) return fail(corrupt("backing format name too long"));
        h.backing_format.assign(reinterpret_cast<const char*>(data), len);
        break;
      case kExtFeatureTable:
        for (uint32_t i = 0; i + 48 <= len; i += 48) {
          FeatureName f;
          f.type = data[i];
          f.bit = data[i + 1];
          const char* name = reinterpret_cast<const char*>(data + i + 2);
          f.name.assign(name, strnlen(name, 46));
          h.feature_names.push_back(std::move(f));
        }
        break;
      case kExtBitmaps:
        h.has_bitmaps_extension = true;
        break;
      case kExtEncryption:
      case kExtDataFile:
        break;  // refused below through crypt_method / the incompatible bit
      default:
        h.unknown_extensions.push_back(type);
        break;
    }
    off += 8 + round_up(len, 8);
  }

  const uint64_t known = kIncompatDirty | kIncompatCorrupt | kIncompatDataFile |
                         kIncompatCompressionType | kIncompatExtendedL2;
  if (uint64_t unknown = h.incompatible_features & ~known)
    return fail(ErrorKind::kUnsupported,
                "qcow2 image uses unknown incompatible features: " +
                    describe_feature_bits(unknown, 0, h.feature_names));
  if (uint64_t unsupported = h.incompatible_features & ~kIncompatSupported)
    return fail(ErrorKind::kUnsupported,
                "qcow2 image uses unsupported incompatible features: " +
                    describe_feature_bits(unsupported, 0, h.feature_names));
  if (h.compression_type != 0) return fail(corrupt("compression_type set without its feature bit"));
  if (h.crypt_method != 0)
    return fail(ErrorKind::kUnsupported,
                "encrypted qcow2 images are not supported (crypt_method " + std::to_string(h.crypt_method) + ")");

  if (h.backing_file_offset != 0 && h.backing_file_size != 0) {
    if (h.backing_file_size > kMaxBackingNameLength)
      return fail(corrupt("backing file name of " + std::to_string(h.backing_file_size) +
                          " bytes (at most 1023)"));
    if (h.backing_file_offset < h.header_length || h.backing_file_offset > cs ||
        h.backing_file_size > cs - h.backing_file_offset)
      return fail(corrupt("backing file name at " + std::to_string(h.backing_file_offset) +
                          " is not inside the first cluster after the header"));
    h.backing_file.assign(reinterpret_cast<const char*>(p + h.backing_file_offset), h.backing_file_size);
    if (h.backing_file.find('\0') != std::string::npos)
      return fail(corrupt("backing file name contains a NUL byte"));
  }

  if (h.size > kMaxVirtualSize)
    return fail(corrupt("virtual size " + std::to_string(h.size) + " too large (at most 2^61)"));
  if (uint64_t{h.l1_size} * 8 > kMaxL1Bytes)
    return fail(corrupt("L1 table of " + std::to_string(h.l1_size) + " entries is too large (at most " +
                        std::to_string(kMaxL1Bytes / 8) + ")"));
  if (h.l1_size < l1_entries_for(h.size, h.cluster_bits))
    return fail(corrupt("L1 table of " + std::to_string(h.l1_size) + " entries too small for virtual size " +
                        std::to_string(h.size)));

  const uint64_t file_end = round_up(file_size, cs);
  const Range header_range{0, cs, "the header cluster"};
  Range l1{h.l1_table_offset, h.l1_table_offset + uint64_t{h.l1_size} * 8, "the L1 table"};
  if (h.l1_size > 0) {
    if (h.l1_table_offset % cs != 0 || h.l1_table_offset > file_end || l1.end > file_end)
      return fail(corrupt("L1 table offset " + hex(h.l1_table_offset) + " is unaligned or beyond the file"));
    if (overlaps(l1, header_range)) return fail(corrupt("L1 table overlaps the header"));
  }
  if (h.refcount_table_clusters == 0)
    return fail(corrupt("refcount table of zero clusters"));
  if (uint64_t{h.refcount_table_clusters} * cs > kMaxRefcountTableBytes)
    return fail(corrupt("refcount table of " + std::to_string(h.refcount_table_clusters) +
                        " clusters is too large (at most 8 MiB)"));
  Range rt{h.refcount_table_offset, h.refcount_table_offset + uint64_t{h.refcount_table_clusters} * cs,
           "the refcount table"};
  if (h.refcount_table_offset % cs != 0 || h.refcount_table_offset > file_end || rt.end > file_end)
    return fail(corrupt("refcount table offset " + hex(h.refcount_table_offset) +
                        " is unaligned or beyond the file"));
  if (overlaps(rt, header_range)) return fail(corrupt("refcount table overlaps the header"));
  if (h.l1_size > 0 && overlaps(rt, l1)) return fail(corrupt("refcount table overlaps the L1 table"));
  if (h.nb_snapshots > 0 && (h.snapshots_offset % cs != 0 || h.snapshots_offset == 0 ||
                             h.snapshots_offset >= file_end))
    return fail(corrupt("snapshot table offset " + hex(h.snapshots_offset) + " is invalid"));
  return h;
}

std::vector<uint8_t> serialize_header(const Header& h) {
  const uint64_t cs = h.cluster_size();
  std::vector<uint8_t> buf(cs, 0);
  uint8_t* p = buf.data();
  store_be32(p, kMagic);
  store_be32(p + 4, h.version);
  store_be32(p + 20, h.cluster_bits);
  store_be64(p + 24, h.size);
  store_be32(p + 32, h.crypt_method);
  store_be32(p + 36, h.l1_size);
  store_be64(p + 40, h.l1_table_offset);
  store_be64(p + 48, h.refcount_table_offset);
  store_be32(p + 56, h.refcount_table_clusters);
  store_be32(p + 60, h.nb_snapshots);
  store_be64(p + 64, h.snapshots_offset);
  uint64_t off = kV2HeaderLength;
  if (h.version >= 3) {
    store_be64(p + 72, h.incompatible_features);
    store_be64(p + 80, h.compatible_features);
    store_be64(p + 88, h.autoclear_features);
    store_be32(p + 96, h.refcount_order);
    store_be32(p + 100, h.header_length);
    off = h.header_length;
  }
  auto add_ext = [&](uint32_t type, const std::vector<uint8_t>& data) {
    store_be32(p + off, type);
    store_be32(p + off + 4, static_cast<uint32_t>(data.size()));
    std::memcpy(p + off + 8, data.data(), data.size());
    off += 8 + round_up(data.size(), 8);
  };
  if (!h.backing_format.empty())
    add_ext(kExtBackingFormat, std::vector<uint8_t>(h.backing_format.begin(), h.backing_format.end()));
  if (h.version >= 3) {
    std::vector<uint8_t> table;
    auto entry = [&](uint8_t type, uint8_t bit, const char* name) {
      uint8_t e[48] = {};
      e[0] = type;
      e[1] = bit;
      std::memcpy(e + 2, name, std::min<size_t>(std::strlen(name), 46));
      table.insert(table.end(), e, e + 48);
    };
    for (uint8_t bit = 0; bit < 5; bit++) entry(0, bit, kIncompatNames[bit]);
    entry(1, 0, "lazy refcounts");
    entry(2, 0, "bitmaps");
    entry(2, 1, "raw external data");
    add_ext(kExtFeatureTable, table);
  }
  off += 8;  // end marker (zeros)
  if (!h.backing_file.empty()) {
    store_be64(p + 8, off);
    store_be32(p + 16, static_cast<uint32_t>(h.backing_file.size()));
    std::memcpy(p + off, h.backing_file.data(), h.backing_file.size());
  }
  return buf;
}

CompressedExtent decode_compressed(uint64_t l2_entry, uint32_t cluster_bits) {
  const uint32_t x = 62 - (cluster_bits - 8);
  CompressedExtent e;
  e.offset = l2_entry & ((1ull << x) - 1);
  uint64_t sectors = ((l2_entry >> x) & ((1ull << (cluster_bits - 8)) - 1)) + 1;
  e.length = sectors * 512 - (e.offset & 511);
  return e;
}

}  // namespace pinata::disk::qcow2
