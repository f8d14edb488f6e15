#include "guest/modinfo.h"

#include <cstring>
#include <map>

namespace pinata::guest {
namespace {

template <typename T>
bool read_le(std::span<const uint8_t> b, uint64_t off, T* out) {
  if (off > b.size() || b.size() - off < sizeof(T)) return false;
  T v = 0;
  for (size_t i = 0; i < sizeof(T); i++) v |= static_cast<T>(T{b[off + i]} << (8 * i));
  *out = v;
  return true;
}

}  // namespace

std::string normalize_module_name(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c == '-') c = '_';
  }
  return out;
}

std::string module_name_from_path(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash != std::string_view::npos) path.remove_prefix(slash + 1);
  for (std::string_view suffix : {".ko.xz", ".ko.zst", ".ko.gz", ".ko"}) {
    if (path.size() > suffix.size() && path.substr(path.size() - suffix.size()) == suffix) {
      path.remove_suffix(suffix.size());
      break;
    }
  }
  return normalize_module_name(path);
}

Result<ModInfo> parse_modinfo(std::span<const uint8_t> elf) {
  auto bad = [](const std::string& why) { return fail(ErrorKind::kInvalidInput, why); };
  if (elf.size() < 64 || std::memcmp(elf.data(),
                                     "\x7f"
                                     "ELF",
                                     4) != 0)
    return bad("not an ELF file");
  if (elf[4] != 2 || elf[5] != 1) return bad("not a 64-bit little-endian ELF");
  uint64_t shoff;
  uint16_t shentsize, shnum, shstrndx;
  if (!read_le(elf, 0x28, &shoff) || !read_le(elf, 0x3a, &shentsize) ||
      !read_le(elf, 0x3c, &shnum) || !read_le(elf, 0x3e, &shstrndx)) {
    return bad("truncated ELF header");
  }
  if (shentsize < 64 || shstrndx >= shnum) return bad("bad section header table");
  auto section = [&](uint16_t i, uint32_t* name, uint64_t* off, uint64_t* size) {
    uint64_t at = shoff + uint64_t{i} * shentsize;
    if (at < shoff || at > elf.size() || elf.size() - at < shentsize) return false;
    return read_le(elf, at, name) && read_le(elf, at + 0x18, off) &&
           read_le(elf, at + 0x20, size) && *off <= elf.size() && *size <= elf.size() - *off;
  };
  uint32_t unused;
  uint64_t stroff, strsize;
  if (!section(shstrndx, &unused, &stroff, &strsize)) return bad("bad section name table");
  for (uint16_t i = 0; i < shnum; i++) {
    uint32_t name;
    uint64_t off, size;
    if (!section(i, &name, &off, &size)) return bad("bad section header " + std::to_string(i));
    static constexpr std::string_view kWanted(".modinfo\0", 9);
    if (name >= strsize || strsize - name < kWanted.size()) continue;
    if (std::memcmp(elf.data() + stroff + name, kWanted.data(), kWanted.size()) != 0) continue;
    ModInfo info;
    std::string_view data(reinterpret_cast<const char*>(elf.data() + off), size);
    while (!data.empty()) {
      size_t end = data.find('\0');
      std::string_view entry = data.substr(0, end);
      data.remove_prefix(end == std::string_view::npos ? data.size() : end + 1);
      if (entry.starts_with("name=")) {
        info.name = normalize_module_name(entry.substr(5));
      } else if (entry.starts_with("depends=")) {
        std::string_view deps = entry.substr(8);
        while (!deps.empty()) {
          size_t comma = deps.find(',');
          std::string_view dep = deps.substr(0, comma);
          if (!dep.empty()) info.depends.push_back(normalize_module_name(dep));
          deps.remove_prefix(comma == std::string_view::npos ? deps.size() : comma + 1);
        }
      }
    }
    return info;
  }
  return bad("no .modinfo section");
}

std::vector<bool> first_group(const std::vector<ModInfo>& mods, const std::vector<bool>& known,
                              const std::vector<std::string>& first) {
  std::vector<bool> in_first(mods.size(), false);
  for (size_t i = 0; i < mods.size(); i++) {
    if (i >= known.size() || !known[i]) return std::vector<bool>(mods.size(), true);
  }
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < mods.size(); i++) index.emplace(mods[i].name, i);
  std::vector<std::string> todo;
  for (const std::string& name : first) todo.push_back(normalize_module_name(name));
  while (!todo.empty()) {
    std::string name = std::move(todo.back());
    todo.pop_back();
    auto it = index.find(name);
    if (it == index.end() || in_first[it->second]) continue;
    in_first[it->second] = true;
    for (const std::string& dep : mods[it->second].depends) todo.push_back(dep);
  }
  return in_first;
}

}  // namespace pinata::guest
