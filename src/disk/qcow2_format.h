// qcow2 on-disk format (QEMU docs/interop/qcow2.txt): header, header extensions, table-entry
// layouts and their validation. Pure functions over bytes: no I/O, safe on hostile input.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace pinata::disk::qcow2 {

constexpr uint32_t kMagic = 0x514649fb;  // "QFI\xfb"
constexpr uint32_t kMinClusterBits = 9;   // what the spec allows when opening
constexpr uint32_t kMaxClusterBits = 21;  // 2 MiB, QEMU's limit too
constexpr uint32_t kMinCreateClusterBits = 9;   // we create 512 B .. 2 MiB too
constexpr uint32_t kV2HeaderLength = 72;
constexpr uint32_t kV3HeaderLength = 104;
constexpr uint64_t kMaxL1Bytes = 32 << 20;        // QEMU's limit
constexpr uint64_t kMaxRefcountTableBytes = 8 << 20;  // QEMU's limit
constexpr uint64_t kMaxVirtualSize = 1ull << 61;
constexpr uint64_t kMaxBackingNameLength = 1023;

// incompatible_features
constexpr uint64_t kIncompatDirty = 1ull << 0;
constexpr uint64_t kIncompatCorrupt = 1ull << 1;
constexpr uint64_t kIncompatDataFile = 1ull << 2;
constexpr uint64_t kIncompatCompressionType = 1ull << 3;
constexpr uint64_t kIncompatExtendedL2 = 1ull << 4;
constexpr uint64_t kIncompatSupported = kIncompatDirty | kIncompatCorrupt;
// compatible_features
constexpr uint64_t kCompatLazyRefcounts = 1ull << 0;
// autoclear_features
constexpr uint64_t kAutoclearBitmaps = 1ull << 0;
constexpr uint64_t kAutoclearDataFileRaw = 1ull << 1;

// Header byte offsets of the fields this library rewrites in place.
constexpr uint64_t kOffL1TableOffset = 40;
constexpr uint64_t kOffRefcountTable = 48;  // offset (8) + clusters (4)
constexpr uint64_t kOffIncompatible = 72;
constexpr uint64_t kOffAutoclear = 88;

// Header extension types.
constexpr uint32_t kExtEnd = 0;
constexpr uint32_t kExtBackingFormat = 0xe2792aca;
constexpr uint32_t kExtFeatureTable = 0x6803f857;
constexpr uint32_t kExtBitmaps = 0x23852875;
constexpr uint32_t kExtEncryption = 0x0537be77;
constexpr uint32_t kExtDataFile = 0x44415441;

// L1 / L2 entries.
constexpr uint64_t kOflagCopied = 1ull << 63;      // refcount is exactly one
constexpr uint64_t kOflagCompressed = 1ull << 62;
constexpr uint64_t kOflagZero = 1ull << 0;         // v3 standard cluster reads as zeros
constexpr uint64_t kOffsetMask = 0x00fffffffffffe00ull;  // bits 9-55
constexpr uint64_t kL1ReservedMask = 0x7f000000000001ffull;
constexpr uint64_t kL2StandardReservedMask = 0x3f000000000001feull;
constexpr uint64_t kRefTableReservedMask = 0x1ffull;

inline uint64_t load_be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}
inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline uint16_t load_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline void store_be64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
  for (int i = 3; i >= 0; i--, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

struct FeatureName {
  uint8_t type = 0;  // 0 incompatible, 1 compatible, 2 autoclear
  uint8_t bit = 0;
  std::string name;
};

struct Header {
  uint32_t version = 3;
  uint64_t backing_file_offset = 0;
  uint32_t backing_file_size = 0;
  uint32_t cluster_bits = 16;
  uint64_t size = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = kV3HeaderLength;
  uint8_t compression_type = 0;

  // From the header extensions and the backing-file name.
  std::string backing_file;
  std::string backing_format;
  std::vector<FeatureName> feature_names;
  bool has_bitmaps_extension = false;
  std::vector<uint32_t> unknown_extensions;  // types, kept on disk untouched

  uint64_t cluster_size() const { return 1ull << cluster_bits; }
  uint64_t l2_entries() const { return cluster_size() / 8; }
  uint64_t refcount_bits() const { return 1ull << refcount_order; }
  uint64_t refblock_entries() const { return (cluster_size() * 8) >> refcount_order; }
  uint64_t max_refcount() const {
    return refcount_order == 6 ? ~0ull : (1ull << refcount_bits()) - 1;
  }
};

// How many L1 entries a disk of `size` bytes needs.
uint64_t l1_entries_for(uint64_t size, uint32_t cluster_bits);

// Parses and validates the header from the first cluster of an image (`first` holds
// min(cluster size, file size) bytes, or more; missing bytes count as zeros). `file_size` bounds
// every table. Refuses unknown incompatible features by name, unsupported encodings, and any
// offset that is unaligned, overlaps the header or lies beyond the file.
Result<Header> parse_header(std::span<const uint8_t> first, uint64_t file_size);

// Names the set bits of `bits` (of feature `type`) using the image's feature table:
// "bit 5 (foo), bit 9".
std::string describe_feature_bits(uint64_t bits, uint8_t type, const std::vector<FeatureName>& names);

// Serialises a header (and the backing-format and feature-name extensions, and the backing-file
// name) into one cluster. Fields are taken as given (the caller lays out the tables).
std::vector<uint8_t> serialize_header(const Header& h);

// The host byte range [start, start + length) of a compressed cluster descriptor.
struct CompressedExtent {
  uint64_t offset = 0;
  uint64_t length = 0;
};
CompressedExtent decode_compressed(uint64_t l2_entry, uint32_t cluster_bits);

}  // namespace pinata::disk::qcow2
