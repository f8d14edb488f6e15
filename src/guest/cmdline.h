// Kernel command line parsing (pure).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pinata::guest {

inline constexpr std::string_view kHostnameParam = "pinata.hostname";
inline constexpr std::string_view kDefaultHostname = "pinata";

// Splits a kernel command line into words. Double quotes group whitespace ("a=\"x y\"" is
// one word, quotes removed), as the kernel's own parser does.
std::vector<std::string> split_cmdline(std::string_view cmdline);

// `s` without leading and trailing ASCII whitespace (sysfs files end in "\n").
std::string strip_whitespace(std::string_view s);

// The value of the last `key=value` word, or nullopt if `key` is absent. A bare `key` word
// (no '=') has the value "".
std::optional<std::string> cmdline_value(std::string_view cmdline, std::string_view key);

// RFC 1123 host name: 1-63 characters of [A-Za-z0-9-], not starting or ending with '-'.
bool is_valid_hostname(std::string_view name);

// `pinata.hostname=NAME` from the command line if it is a valid host name, else the default.
// `*invalid` (if given) receives a rejected value.
std::string hostname_from_cmdline(std::string_view cmdline, std::string* invalid = nullptr);

// How the data disk gives freed blocks back to the host image (docs/protocols/virtio-blk.md,
// "Trim"). By default both: ext4 -o discard (every delete is discarded at its journal commit,
// so space comes back at once) and FITRIM (fstrim) every kDefaultTrimSeconds as a safety net
// for what online discard misses: extents freed in pieces smaller than a qcow2 cluster, which
// the image cannot deallocate, and frees made while the disk had no discard (bench/disk-guest
// measured both ways in SPECIFICATION.md). `pinata.trim=mount`: -o discard only;
// `pinata.trim=SECONDS`: fstrim every SECONDS only (0: never trim).
inline constexpr std::string_view kTrimParam = "pinata.trim";
inline constexpr int kDefaultTrimSeconds = 300;
struct TrimPolicy {
  bool mount_discard = true;
  int fstrim_interval_seconds = kDefaultTrimSeconds;  // 0 = no periodic fstrim
  bool operator==(const TrimPolicy&) const = default;
};
// The policy from the command line; a malformed value gives the default and is reported in
// `*invalid` (if given).
TrimPolicy trim_policy_from_cmdline(std::string_view cmdline, std::string* invalid = nullptr);

// The contents of /etc/hosts for `hostname`.
std::string hosts_file(std::string_view hostname);

}  // namespace pinata::guest
