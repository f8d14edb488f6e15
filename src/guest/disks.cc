#include "guest/disks.h"

#include <algorithm>

namespace pinata::guest {

std::optional<Ext4Superblock> parse_ext4_superblock(std::span<const uint8_t> sb) {
  if (sb.size() < kLabelOffset + kLabelSize) return std::nullopt;
  uint16_t magic = static_cast<uint16_t>(sb[kMagicOffset] | (sb[kMagicOffset + 1] << 8));
  if (magic != kExt4Magic) return std::nullopt;
  Ext4Superblock out;
  for (size_t i = 0; i < kLabelSize; i++) {
    uint8_t c = sb[kLabelOffset + i];
    if (c == 0) break;
    out.label.push_back(static_cast<char>(c));
  }
  return out;
}

DiskLayout classify_disks(std::vector<DiskProbe> disks) {
  std::sort(disks.begin(), disks.end(),
            [](const DiskProbe& a, const DiskProbe& b) { return a.name < b.name; });
  DiskLayout out;
  for (const DiskProbe& d : disks) {
    if (d.ext4 && d.ext4->label == kRootLabel) {
      if (!out.root) {
        out.root = d.name;
      } else {
        out.warnings.push_back("more than one disk labelled " + std::string(kRootLabel) +
                               ": using " + *out.root + ", ignoring " + d.name);
      }
    }
  }
  std::vector<const DiskProbe*> others;
  for (const DiskProbe& d : disks) {
    if (out.root && d.name == *out.root) continue;
    if (d.ext4 && d.ext4->label == kRootLabel) continue;  // a duplicate root is never data
    others.push_back(&d);
  }
  if (others.empty()) return out;
  const DiskProbe* chosen = others.front();
  for (const DiskProbe* d : others) {
    if (d->ext4 && d->ext4->label == kDataLabel) {
      chosen = d;
      break;
    }
  }
  out.data = chosen->name;
  if (others.size() > 1) {
    std::string names;
    for (const DiskProbe* d : others) names += (names.empty() ? "" : ", ") + d->name;
    out.warnings.push_back("expected one data disk, found " + std::to_string(others.size()) + " (" +
                           names + "): using " + chosen->name);
  }
  return out;
}

}  // namespace pinata::guest
