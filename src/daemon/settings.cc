#include "daemon/settings.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <sstream>

#include "base/io.h"

namespace pinata {
namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

Result<int> parse_int(const std::string& key, const std::string& value, int lo, int hi) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() || v < lo ||
      v > hi) {
    return fail(ErrorKind::kInvalidInput, "invalid " + key + " '" + value +
                                              "': expected an integer from " + std::to_string(lo) +
                                              " to " + std::to_string(hi));
  }
  return v;
}

}  // namespace

Result<VmSettings> apply_setting(VmSettings s, const std::string& key, const std::string& value,
                                 int host_cpus, int host_memory_gib) {
  if (key == "memory") {
    TRY_ASSIGN(s.memory_gib, parse_int("memory (GiB)", value, 1, std::max(1, host_memory_gib)));
  } else if (key == "ncpu") {
    TRY_ASSIGN(s.ncpu, parse_int("ncpu", value, 1, std::max(1, host_cpus)));
  } else if (key == "guest_forwards") {
    std::vector<uint32_t> ports = {2376};
    size_t pos = 0;
    while (pos <= value.size()) {
      size_t end = value.find(';', pos);
      if (end == std::string::npos) end = value.size();
      std::string item = trim(value.substr(pos, end - pos));
      pos = end + 1;
      if (item.empty()) continue;
      TRY_ASSIGN(int port, parse_int("guest_forwards port", item, 1, 65535));
      if (std::find(ports.begin(), ports.end(), static_cast<uint32_t>(port)) == ports.end()) {
        ports.push_back(static_cast<uint32_t>(port));
      }
    }
    s.guest_forwards = ports;
  } else if (key == "trim") {
    if (value != "mount") TRY(parse_int("trim (seconds between fstrims, or 'mount')", value, 0, 9999999));
    s.trim = value;
  } else if (key == "disk_driver") {
    if (value == "pinata-blk") {
      s.disk_driver = VmSettings::DiskDriver::kPinataBlk;
    } else if (value == "qemu") {
      s.disk_driver = VmSettings::DiskDriver::kQemu;
    } else {
      return fail(ErrorKind::kInvalidInput,
                  "invalid disk_driver '" + value + "': expected pinata-blk or qemu");
    }
  } else if (key == "net_driver") {
    if (value == "pinata-net") {
      s.net_driver = VmSettings::NetDriver::kPinataNet;
    } else if (value == "qemu") {
      s.net_driver = VmSettings::NetDriver::kQemu;
    } else {
      return fail(ErrorKind::kInvalidInput,
                  "invalid net_driver '" + value + "': expected pinata-net or qemu");
    }
  } else {
    return fail(ErrorKind::kInvalidInput, "unknown setting '" + key +
                                              "': known settings are memory, ncpu, guest_forwards, "
                                              "trim, disk_driver, net_driver");
  }
  return s;
}

Result<VmSettings> parse_settings(const std::string& text, int host_cpus, int host_memory_gib) {
  VmSettings s;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    lineno++;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return fail(ErrorKind::kInvalidInput,
                  "line " + std::to_string(lineno) + ": expected key=value, got '" + line + "'");
    }
    auto next = apply_setting(s, trim(line.substr(0, eq)), trim(line.substr(eq + 1)), host_cpus,
                              host_memory_gib);
    if (!next) return fail(next.error().context("line " + std::to_string(lineno)));
    s = *next;
  }
  return s;
}

std::string format_settings(const VmSettings& s) {
  std::string forwards;
  for (uint32_t p : s.guest_forwards) {
    if (!forwards.empty()) forwards += ';';
    forwards += std::to_string(p);
  }
  std::string out = "memory=" + std::to_string(s.memory_gib) + "\nncpu=" + std::to_string(s.ncpu) +
                    "\nguest_forwards=" + forwards + "\n";
  if (!s.trim.empty()) out += "trim=" + s.trim + "\n";
  if (s.disk_driver == VmSettings::DiskDriver::kQemu) out += "disk_driver=qemu\n";
  if (s.net_driver == VmSettings::NetDriver::kQemu) out += "net_driver=qemu\n";
  return out;
}

Result<VmSettings> load_settings(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return VmSettings{};
    return fail_errno(path);
  }
  TRY_ASSIGN(auto text, read_file(path, 1 << 20));
  auto s = parse_settings(text, host_cpu_count(), host_memory_gib());
  if (!s) return fail(s.error().context(path));
  return s;
}

int host_cpu_count() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

int host_memory_gib() {
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 1;
  return static_cast<int>((static_cast<long long>(pages) * page) >> 30);
}

}  // namespace pinata
