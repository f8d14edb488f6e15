// Pure parsing of the configuration database's files as the guest applies them
// (docs/protocols/config-db.md): sysctl.conf lines and the insecure-registry list.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pinata::guest {

struct SysctlSetting {
  std::string key;  // dotted, e.g. net.ipv4.ip_forward
  std::string value;
};

// Parses sysctl.conf(5) text: `key = value` (or `key=value`) lines; blank lines and lines
// starting with '#' or ';' are ignored; a leading '-' (ignore failures) is dropped. Lines that
// are not settings, or keys with characters other than [A-Za-z0-9_.-/*], are reported in
// `errors` ("line N: why") and skipped.
std::vector<SysctlSetting> parse_sysctl_conf(std::string_view text,
                                             std::vector<std::string>* errors = nullptr);

// Splits the insecure-registry value (registries separated by commas, spaces or newlines),
// dropping empty items.
std::vector<std::string> parse_registry_list(std::string_view text);

// Whether the JSON text of daemon.json mentions `key` as an object key ("key" followed by
// optional whitespace and ':'). Good enough to avoid passing a flag dockerd would reject as
// also set in its configuration file.
bool json_mentions_key(std::string_view json, std::string_view key);

}  // namespace pinata::guest
