// Finding the guest's disks by content (pure): ext4 superblock parsing and root/data choice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pinata::guest {

inline constexpr size_t kSuperblockOffset = 1024;  // byte offset of the superblock on the disk
inline constexpr size_t kSuperblockSize = 1024;
inline constexpr uint16_t kExt4Magic = 0xEF53;  // s_magic, little endian, at byte 56
inline constexpr size_t kMagicOffset = 56;
inline constexpr size_t kLabelOffset = 120;  // s_volume_name[16]
inline constexpr size_t kLabelSize = 16;

inline constexpr std::string_view kRootLabel = "pinata-root";
inline constexpr std::string_view kDataLabel = "pinata-data";

struct Ext4Superblock {
  std::string label;  // s_volume_name up to the first NUL
};

// Parses the superblock bytes (read from disk offset kSuperblockOffset). nullopt if the bytes
// are too short or carry no ext2/3/4 magic.
std::optional<Ext4Superblock> parse_ext4_superblock(std::span<const uint8_t> sb);

// What a scan found on one block device.
struct DiskProbe {
  std::string name;                    // "vda"
  std::optional<Ext4Superblock> ext4;  // nullopt: no ext magic (blank or another format)
};

struct DiskLayout {
  std::optional<std::string> root;  // device name carrying kRootLabel
  std::optional<std::string> data;  // the other disk
  std::vector<std::string> warnings;
};

// Root = the disk labelled kRootLabel. Data = the other disk; when there are several others
// (not expected), one labelled kDataLabel is preferred, then the first by name.
DiskLayout classify_disks(std::vector<DiskProbe> disks);

}  // namespace pinata::guest
