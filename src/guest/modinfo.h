// Kernel module metadata (pure): the .modinfo section of a .ko file, and the split of the
// module list into what the boot needs first and what can load in the background.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace pinata::guest {

struct ModInfo {
  std::string name;                  // "name=" (falls back to the file name)
  std::vector<std::string> depends;  // "depends=a,b"
};

// Kernel module names treat '-' and '_' alike; this returns the '_' spelling.
std::string normalize_module_name(std::string_view name);
// "/lib/modules/6.1/kernel/fs/ext4/ext4.ko" -> "ext4"; also strips .ko.xz/.ko.zst/.ko.gz.
std::string module_name_from_path(std::string_view path);

// Reads name= and depends= from the .modinfo section of an ELF64 little-endian module.
// Every offset is bounds-checked; a file that isn't such an ELF is an error.
Result<ModInfo> parse_modinfo(std::span<const uint8_t> elf);

// Which modules of a list (in load order) belong to the first, boot-critical group: the
// modules named in `first` and everything they depend on, transitively (depends= names found
// in the list). If any module's metadata is unknown (`known[i]` false) every module is in the
// first group, so nothing whose dependencies can't be seen is ever deferred.
std::vector<bool> first_group(const std::vector<ModInfo>& mods, const std::vector<bool>& known,
                              const std::vector<std::string>& first);

}  // namespace pinata::guest
