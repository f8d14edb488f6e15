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
// "Trim"): `pinata.trim=mount` mounts it with -o discard (every delete discards at once);
// `pinata.trim=SECONDS` runs FITRIM (fstrim) on it every SECONDS (0: never). The default,
// periodic every kDefaultTrimSeconds, frees whole qcow2 clusters that per-delete discards of
// small extents cannot (see the measurement in SPECIFICATION.md).
inline constexpr std::string_view kTrimParam = "pinata.trim";
inline constexpr int kDefaultTrimSeconds = 300;
struct TrimPolicy {
  enum class Mode { kPeriodic, kMountDiscard };
  Mode mode = Mode::kPeriodic;
  int interval_seconds = kDefaultTrimSeconds;  // kPeriodic only; 0 = never
  bool operator==(const TrimPolicy&) const = default;
};
// The policy from the command line; a malformed value gives the default and is reported in
// `*invalid` (if given).
TrimPolicy trim_policy_from_cmdline(std::string_view cmdline, std::string* invalid = nullptr);

// The contents of /etc/hosts for `hostname`.
std::string hosts_file(std::string_view hostname);

}  // namespace pinata::guest
