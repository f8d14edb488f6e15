#include "db/schema.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "db/json.h"

namespace pinata::db {
namespace {

constexpr size_t kMaxFileValue = 64 * 1024;  // daemon.json, sysctl.conf
constexpr size_t kMaxLineValue = 4096;       // everything else

KeyOption yes(std::string value, std::string description) {
  return KeyOption{std::move(value), std::move(description), true, ""};
}
KeyOption no(std::string value, std::string description, std::string refusal) {
  return KeyOption{std::move(value), std::move(description), false, std::move(refusal)};
}

std::vector<KeySpec> make_schema() {
  std::vector<KeySpec> keys;
  auto add = [&](KeySpec k) { keys.push_back(std::move(k)); };

  add({.name = "daemon",
       .path = "etc/docker/daemon.json",
       .aliases = {"daemon.json"},
       .type = KeyType::kJsonObject,
       .default_value = R"({"debug":false})",
       .description =
           "The Docker Engine's configuration, /etc/docker/daemon.json in the VM: a JSON "
           "object of dockerd options, e.g. {\"debug\":true,\"registry-mirrors\":"
           "[\"https://mirror.example\"]}. Set it from a file with 'pinata set daemon @FILE' "
           "or from standard input with 'pinata set daemon -'."});
  add({.name = "hostname",
       .path = "etc/hostname",
       .type = KeyType::kHostname,
       .default_value = "pinata",
       .description = "The VM's hostname: an RFC 1123 label (1 to 63 letters, digits and "
                      "hyphens, not starting or ending with a hyphen)."});
  add({.name = "sysctl",
       .path = "etc/sysctl.conf",
       .aliases = {"sysctl.conf"},
       .type = KeyType::kSysctl,
       .default_value = "# Kernel parameters set in the VM at boot: one \"key = value\" per line",
       .description = "Kernel parameters applied in the VM at boot, in sysctl.conf(5) format: "
                      "\"key = value\" lines (a leading '-' ignores a failure), '#' or ';' "
                      "comments, blank lines. Set it with 'pinata set sysctl @FILE'."});
  add({.name = "expose-docker-socket",
       .path = "expose-docker-socket",
       .type = KeyType::kBool,
       .default_value = "false",
       .description = "Whether the Docker API is also served at /var/run/docker.sock on the "
                      "host. On Linux it is always at $PINATA_HOME/docker.sock (point "
                      "DOCKER_HOST there); /var/run/docker.sock usually belongs to the host's "
                      "own Docker, so true is not yet supported.",
       .options = {no("true", "also serve the Docker API at /var/run/docker.sock",
                      "not yet supported on Linux: the Docker API is at "
                      "$PINATA_HOME/docker.sock"),
                   yes("false", "serve the Docker API at $PINATA_HOME/docker.sock only")}});
  add({.name = "filesystem",
       .path = "filesystem",
       .type = KeyType::kEnum,
       .default_value = "virtio-fs",
       .description = "How host folders are shared with containers (bind mounts of host "
                      "paths).",
       .options = {yes("virtio-fs",
                       "host folders appear in the VM at the same paths, served "
                       "by pinata-fs (a vhost-user virtio-fs backend)"),
                   yes("none", "no host folder is shared; bind mounts see the VM's own files")},
       .macos_values = {"osxfs"}});
  add({.name = "hypervisor",
       .path = "hypervisor",
       .type = KeyType::kEnum,
       .default_value = "qemu",
       .description = "The hypervisor that runs the Docker VM, with the VM's memory (GiB) and "
                      "ncpu (virtual CPUs) as parameters: 'pinata set hypervisor qemu memory=4 "
                      "ncpu=2'. Changes apply at the next 'pinata start'.",
       .params = {"memory", "ncpu"},
       .options = {no("native", "pinata's own KVM microVM", "not yet supported on Linux"),
                   yes("qemu",
                       "qemu-system-x86_64, with KVM when the host has usable "
                       "hardware virtualization and TCG emulation otherwise")},
       .macos_values = {"hyperkit", "xhyve"}});
  add({.name = "insecure-registry",
       .path = "insecure-registry",
       .type = KeyType::kRegistryList,
       .default_value = "",
       .description = "Registries the Docker Engine may use over plain HTTP or unverified "
                      "TLS (dockerd's insecure-registries): host[:port] items separated by "
                      "commas or newlines; empty for none."});
  add({.name = "memory",
       .path = "memory",
       .type = KeyType::kInteger,
       .default_value = "2",
       .description = "Memory of the VM in GiB (a parameter of hypervisor). More than the "
                      "host can spare makes the VM fail to start or swap.",
       .param_of = "hypervisor",
       .min = 1,
       .max = 64,
       .unit = "GiB"});
  add({.name = "native/boot-protocol",
       .path = "native/boot-protocol",
       .type = KeyType::kEnum,
       .default_value = "linux",
       .description = "Internal: how the native hypervisor boots the VM. No effect on Linux "
                      "until the native hypervisor is supported.",
       .visibility = Visibility::kInternal,
       .options = {
           yes("linux", "load the kernel and initrd directly"),
           no("uefi", "boot a disk image through UEFI firmware", "not yet supported on Linux")}});
  add({.name = "native/port-forwarding",
       .path = "native/port-forwarding",
       .type = KeyType::kBool,
       .default_value = "true",
       .description = "Internal: whether the native hypervisor forwards published container "
                      "ports to the host. No effect on Linux until the native hypervisor is "
                      "supported (with qemu, ports are forwarded by the network backend).",
       .visibility = Visibility::kInternal,
       .options = {yes("true", "forward published ports"), yes("false", "do not")}});
  add({.name = "native/uefi-boot-disk",
       .path = "native/uefi-boot-disk",
       .type = KeyType::kPath,
       .default_value = "",
       .description = "Internal: the disk image the native hypervisor boots with the uefi "
                      "boot protocol (an absolute path, or empty). No effect on Linux yet.",
       .visibility = Visibility::kInternal});
  add({.name = "network",
       .path = "network",
       .type = KeyType::kEnum,
       .default_value = "slirp",
       .description = "How containers reach the network and how published ports reach them, "
                      "with external-bind (true: published ports listen on every host "
                      "address; false: on 127.0.0.1 only) as a parameter.",
       .params = {"external-bind"},
       .options = {no("hostnet", "a tap device bridged to a host network",
                      "not yet supported on Linux"),
                   yes("slirp",
                       "user-mode networking (libslirp, like vpnkit): the VM uses the "
                       "host's connections and DNS, published ports are forwarded "
                       "from the host")},
       .macos_values = {"hybrid", "nat", "vmnet", "vpnkit"}});
  add({.name = "on-sleep",
       .path = "on-sleep",
       .type = KeyType::kEnum,
       .default_value = "none",
       .description = "What happens to the VM when the host goes to sleep. Kept for "
                      "compatibility with Docker for Mac: it has no effect on Linux, where the "
                      "VM is suspended with the host.",
       .options = {yes("freeze", "pause the VM while the host sleeps (no effect on Linux)"),
                   yes("none", "do nothing")}});
  add({.name = "proxy-verbose",
       .path = "proxy-verbose",
       .type = KeyType::kBool,
       .default_value = "false",
       .description = "Whether every connection to a published port is logged in pinatad's "
                      "log.",
       .options = {yes("true", "log each connection"), yes("false", "log errors only")}});
  add({.name = "ncpu",
       .path = "ncpu",
       .type = KeyType::kInteger,
       .default_value = "2",
       .description = "Virtual CPUs of the VM (a parameter of hypervisor).",
       .param_of = "hypervisor",
       .min = 1,
       .max = 64});
  add({.name = "schema-version",
       .path = "schema-version",
       .type = KeyType::kInteger,
       .default_value = "1",
       .description = "Internal: the version of this key schema, for migrations. Managed by "
                      "pinata.",
       .visibility = Visibility::kInternal,
       .access = Access::kReadOnly,
       .min = 1,
       .max = 1000000});
  add({.name = "external-bind",
       .path = "slirp/external-bind",
       .type = KeyType::kBool,
       .default_value = "false",
       .description = "Whether published ports listen on every host address (a parameter of "
                      "network).",
       .param_of = "network",
       .options = {yes("true", "listen on 0.0.0.0: other machines can connect"),
                   yes("false", "listen on 127.0.0.1 only")}});
  add({.name = "slirp/docker",
       .path = "slirp/docker",
       .type = KeyType::kIpv4,
       .default_value = "192.168.65.2",
       .description = "The VM's IPv4 address on the slirp network; it must be in the same /24 "
                      "as slirp/host. Change it if it clashes with a network the host uses."});
  add({.name = "slirp/host",
       .path = "slirp/host",
       .type = KeyType::kIpv4,
       .default_value = "192.168.65.1",
       .description = "The host's IPv4 address as the VM sees it on the slirp network (its "
                      "gateway); it must be in the same /24 as slirp/docker."});
  add({.name = "version",
       .path = "version",
       .type = KeyType::kText,
       .default_value = "1",
       .description = "Internal: the version of the driver's settings layout. Managed by "
                      "pinata.",
       .visibility = Visibility::kInternal,
       .access = Access::kReadOnly});
  add({.name = "vmnet-simulate-failure",
       .path = "vmnet-simulate-failure",
       .type = KeyType::kBool,
       .default_value = "false",
       .description = "Internal: a Docker for Mac test switch that made vmnet fail. vmnet is "
                      "macOS only: it has no effect on Linux.",
       .visibility = Visibility::kInternal,
       .options = {no("true", "simulate a vmnet failure",
                      "not supported on Linux: vmnet is "
                      "macOS only"),
                   yes("false", "normal operation")}});
  std::sort(keys.begin(), keys.end(),
            [](const KeySpec& a, const KeySpec& b) { return a.path < b.path; });
  return keys;
}

std::string quoted(std::string_view value) {
  constexpr size_t kShown = 60;
  if (value.size() <= kShown) return json_quote(value);
  return json_quote(value.substr(0, kShown)) + "...";
}

tl::unexpected<Error> refuse(const KeySpec& key, const std::string& what, std::string_view got) {
  return fail(ErrorKind::kInvalidInput, key.name + " must be " + what + ", got " + quoted(got));
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

bool printable_line(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += sep;
    out += i;
  }
  return out;
}

bool is_label(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// Dotted quad without leading zeros (which some parsers read as octal).
std::optional<std::array<int, 4>> parse_ipv4(std::string_view s) {
  std::array<int, 4> out{};
  size_t pos = 0;
  for (int i = 0; i < 4; i++) {
    size_t end = i < 3 ? s.find('.', pos) : s.size();
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view part = s.substr(pos, end - pos);
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return std::nullopt;
    int v = 0;
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (ec != std::errc() || p != part.data() + part.size() || v > 255) return std::nullopt;
    out[static_cast<size_t>(i)] = v;
    pos = end + 1;
  }
  return out;
}

bool is_dns_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find('.', pos);
    if (end == std::string_view::npos) end = s.size();
    if (!is_label(s.substr(pos, end - pos))) return false;
    pos = end + 1;
  }
  return true;
}

Result<std::string> normalize_registries(const KeySpec& key, std::string_view value) {
  std::vector<std::string> items;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t end = value.find_first_of(",\n", pos);
    if (end == std::string_view::npos) end = value.size();
    std::string item = trim(value.substr(pos, end - pos));
    pos = end + 1;
    if (item.empty()) continue;
    std::string_view host = item;
    size_t colon = item.rfind(':');
    if (colon != std::string::npos) {
      std::string_view port = std::string_view(item).substr(colon + 1);
      int p = 0;
      auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
      if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p < 1 ||
          p > 65535 || port[0] == '0') {
        return refuse(key, "host[:port] items (port 1 to 65535) separated by commas or newlines",
                      item);
      }
      host = host.substr(0, colon);
    }
    if (!parse_ipv4(host) && !is_dns_name(host)) {
      return refuse(
          key, "host[:port] items (a DNS name or an IPv4 address) separated by commas or newlines",
          item);
    }
    if (std::find(items.begin(), items.end(), item) == items.end()) items.push_back(item);
  }
  return join(items, ",");
}

bool is_sysctl_key(std::string_view k) {
  if (k.empty() || k.size() > 255) return false;
  // Segments separated by '.' or '/' are non-empty and made of [A-Za-z0-9_*:-]: no way to
  // name ".." or an absolute path under /proc/sys.
  size_t seg = 0;
  for (char c : k) {
    if (c == '.' || c == '/') {
      if (seg == 0) return false;
      seg = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '*' || c == ':';
    if (!ok) return false;
    seg++;
  }
  return seg > 0;
}

Result<std::string> normalize_sysctl(const KeySpec& key, std::string_view value) {
  std::string text(value);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  size_t pos = 0;
  int lineno = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view raw = std::string_view(text).substr(pos, end - pos);
    pos = end + 1;
    lineno++;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') {
      if (!printable_line(raw)) {
        return fail(ErrorKind::kInvalidInput,
                    key.name + " line " + std::to_string(lineno) + " has a control character");
      }
      continue;
    }
    size_t eq = line.find('=');
    std::string k = eq == std::string::npos ? "" : trim(std::string_view(line).substr(0, eq));
    std::string v = eq == std::string::npos ? "" : trim(std::string_view(line).substr(eq + 1));
    if (!k.empty() && k[0] == '-') k.erase(0, 1);
    if (!is_sysctl_key(k) || v.empty() || !printable_line(v)) {
      return fail(ErrorKind::kInvalidInput,
                  key.name + " line " + std::to_string(lineno) +
                      " must be \"key = value\" (key like net.ipv4.ip_forward) or a # comment, "
                      "got " +
                      quoted(line));
    }
  }
  return text;
}

}  // namespace

const std::vector<KeySpec>& schema() {
  static const std::vector<KeySpec> keys = make_schema();
  return keys;
}

const KeySpec* find_key(std::string_view name) {
  std::string prefix = std::string(kDriverDir) + "/";
  std::string_view n = name;
  if (n.substr(0, prefix.size()) == prefix) n.remove_prefix(prefix.size());
  for (const auto& k : schema()) {
    if (k.name == n || k.path == n) return &k;
    for (const auto& a : k.aliases) {
      if (a == n) return &k;
    }
  }
  return nullptr;
}

std::string unknown_key_message(std::string_view name) {
  std::vector<std::string> names;
  for (const auto& k : schema()) {
    if (k.visibility == Visibility::kUser) names.push_back(k.name);
  }
  std::sort(names.begin(), names.end());
  return "unknown setting " + quoted(name) + "; known settings: " + join(names, ", ");
}

Result<std::string> normalize(const KeySpec& key, std::string_view value) {
  bool file_like = key.type == KeyType::kJsonObject || key.type == KeyType::kSysctl;
  size_t cap = file_like ? kMaxFileValue : kMaxLineValue;
  if (value.size() > cap) {
    return fail(ErrorKind::kInvalidInput, key.name + " must be at most " + std::to_string(cap) +
                                              " bytes, got " + std::to_string(value.size()));
  }
  std::string v =
      (file_like || key.type == KeyType::kRegistryList) ? std::string(value) : trim(value);
  switch (key.type) {
    case KeyType::kEnum:
    case KeyType::kBool: {
      std::string lower = v;
      if (key.type == KeyType::kBool) {
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      std::vector<std::string> accepted;
      for (const auto& o : key.options) {
        if (o.supported) accepted.push_back(o.value);
      }
      std::string accepted_text =
          accepted.size() == 1 ? accepted[0] : "one of " + join(accepted, ", ");
      for (const auto& o : key.options) {
        if (o.value != lower) continue;
        if (!o.supported) {
          return fail(ErrorKind::kUnsupported, key.name + " " + quoted(o.value) + " is " +
                                                   o.refusal +
                                                   "; accepted: " + join(accepted, ", "));
        }
        return lower;
      }
      for (const auto& m : key.macos_values) {
        if (m == lower) {
          return fail(ErrorKind::kUnsupported, key.name + " " + quoted(m) +
                                                   " is a Docker for Mac value (macOS only); "
                                                   "accepted on Linux: " +
                                                   join(accepted, ", "));
        }
      }
      return refuse(key, accepted_text, value);
    }
    case KeyType::kInteger: {
      std::string what =
          "an integer from " + std::to_string(key.min) + " to " + std::to_string(key.max);
      int64_t n = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (v.empty() || ec != std::errc() || p != v.data() + v.size() || n < key.min ||
          n > key.max) {
        return refuse(key, what, value);
      }
      return std::to_string(n);
    }
    case KeyType::kHostname:
      if (!is_label(v)) {
        return refuse(key,
                      "an RFC 1123 label (1 to 63 letters, digits and hyphens, not "
                      "starting or ending with a hyphen)",
                      value);
      }
      return v;
    case KeyType::kIpv4: {
      auto ip = parse_ipv4(v);
      if (!ip) return refuse(key, "an IPv4 address like " + key.default_value, value);
      int a = (*ip)[0];
      int d = (*ip)[3];
      if (a == 0 || a == 127 || a >= 224 || d == 0 || d == 255) {
        return refuse(key,
                      "a unicast IPv4 host address (not 0.x, 127.x, multicast, or ending "
                      "in .0 or .255)",
                      value);
      }
      return v;
    }
    case KeyType::kJsonObject: {
      while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
      auto ok = validate_json(v, JsonLimits{.max_depth = 64, .top = JsonTop::kObject});
      if (!ok) {
        return fail(ErrorKind::kInvalidInput,
                    key.name + " must be a JSON object: " + ok.error().message());
      }
      return v;
    }
    case KeyType::kSysctl:
      return normalize_sysctl(key, v);
    case KeyType::kRegistryList:
      return normalize_registries(key, v);
    case KeyType::kPath:
      if (!v.empty() && (v[0] != '/' || !printable_line(v))) {
        return refuse(key, "empty or an absolute path", value);
      }
      return v;
    case KeyType::kText:
      if (!printable_line(v)) return refuse(key, "one line of printable text", value);
      return v;
  }
  return fail(ErrorKind::kInternal, "unhandled key type");
}

Result<std::string> normalize_for_set(const KeySpec& key, std::string_view value) {
  if (key.access == Access::kReadOnly) {
    return fail(ErrorKind::kInvalidInput, key.name + " is managed by pinata and cannot be set");
  }
  return normalize(key, value);
}

std::string encode_value(std::string_view value) { return std::string(value) + "\n"; }

std::string decode_value(std::string_view stored) {
  while (!stored.empty() && (stored.back() == '\n' || stored.back() == '\r')) {
    stored.remove_suffix(1);
  }
  return std::string(stored);
}

Values resolve_values(const Files& files) {
  Values out;
  for (const auto& k : schema()) {
    out.by_name[k.name] = k.default_value;
    auto it = files.find(k.full_path());
    if (it == files.end()) continue;
    auto v = normalize(k, decode_value(it->second));
    if (!v) {
      out.warnings.push_back(k.full_path() + " is invalid (" + v.error().message() +
                             "); using the default " + quoted(k.default_value));
      continue;
    }
    out.by_name[k.name] = *v;
    out.stored.insert(k.name);
  }
  return out;
}

Status check_consistency(const Values& values) {
  const std::string& docker = values["slirp/docker"];
  const std::string& host = values["slirp/host"];
  auto d = parse_ipv4(docker);
  auto h = parse_ipv4(host);
  if (d && h && ((*d)[0] != (*h)[0] || (*d)[1] != (*h)[1] || (*d)[2] != (*h)[2] || *d == *h)) {
    return fail(ErrorKind::kInvalidInput,
                "slirp/host (" + host + ") and slirp/docker (" + docker +
                    ") must be different addresses in the same /24; set both at once, e.g. "
                    "'pinata set slirp/docker 10.0.75.2 slirp/host=10.0.75.1'");
  }
  return {};
}

Files seed_files() {
  Files f;
  for (const auto& k : schema()) f[k.full_path()] = encode_value(k.default_value);
  return f;
}

bool is_schema_path(const std::string& path) {
  std::string prefix = std::string(kDriverDir) + "/";
  if (path.compare(0, prefix.size(), prefix) != 0) return false;
  std::string rest = path.substr(prefix.size());
  return std::any_of(schema().begin(), schema().end(),
                     [&](const KeySpec& k) { return k.path == rest; });
}

}  // namespace pinata::db
