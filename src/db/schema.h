// The schema of the configuration database: every key under com.docker.driver.amd64-linux/,
// its type, default, validation, description and whether users see it.
//
// Values are stored one file per key, as the value followed by one newline (the seed's
// format); reading strips trailing newlines. A key missing from the repository reads as its
// default; a stored value that fails validation also reads as its default, with a warning.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "db/store.h"

namespace pinata::db {

inline constexpr char kDriverDir[] = "com.docker.driver.amd64-linux";

enum class KeyType {
  kEnum,          // one of `options`
  kBool,          // true | false (options describe each)
  kInteger,       // decimal in [min, max]
  kHostname,      // an RFC 1123 label
  kIpv4,          // a unicast dotted-quad address
  kJsonObject,    // strict JSON whose top level is an object
  kSysctl,        // sysctl.conf(5) lines
  kRegistryList,  // host[:port] items separated by commas or newlines
  kPath,          // empty or an absolute path
  kText,          // one printable line
};

enum class Visibility { kUser, kInternal };
enum class Access { kReadWrite, kReadOnly };

struct KeyOption {
  std::string value;
  std::string description;
  bool supported = true;
  std::string refusal;  // when !supported: "not yet supported on Linux"
};

struct KeySpec {
  std::string name;                  // short name used by the CLI: "memory", "daemon"
  std::string path;                  // under kDriverDir: "etc/docker/daemon.json"
  std::vector<std::string> aliases;  // other accepted names: "daemon.json"
  KeyType type = KeyType::kText;
  std::string default_value;  // normalized, without the trailing newline
  std::string description;
  Visibility visibility = Visibility::kUser;
  Access access = Access::kReadWrite;
  std::vector<std::string> params;        // names of keys shown (and settable) as parameters
  std::string param_of;                   // set for keys that are another key's parameter
  std::vector<KeyOption> options;         // kEnum, kBool
  std::vector<std::string> macos_values;  // Docker for Mac values refused on Linux
  int64_t min = 0;                        // kInteger
  int64_t max = 0;
  std::string unit;  // kInteger: "GiB"

  std::string full_path() const { return std::string(kDriverDir) + "/" + path; }
};

// Every key, ordered by path (the order of `pinata list`).
const std::vector<KeySpec>& schema();

// A key by short name, alias, path under kDriverDir, or full repository path.
const KeySpec* find_key(std::string_view name);
// "unknown setting "x"; known settings: daemon, hostname, ..." (user-facing keys).
std::string unknown_key_message(std::string_view name);

// Validates `value` for `key` and returns its normalized form (what is stored, without the
// newline). The error is one line: `ncpu must be an integer from 1 to 64, got "0"`.
Result<std::string> normalize(const KeySpec& key, std::string_view value);
// A write by a user: like normalize, but read-only keys are refused too.
Result<std::string> normalize_for_set(const KeySpec& key, std::string_view value);

// File content <-> value.
std::string encode_value(std::string_view value);
std::string decode_value(std::string_view stored);

// The effective value of every key (name -> value) given the repository's files.
struct Values {
  std::map<std::string, std::string> by_name;
  std::set<std::string> stored;       // names present (and valid) in the repository
  std::vector<std::string> warnings;  // invalid stored values that were replaced by defaults
  const std::string& operator[](const std::string& name) const { return by_name.at(name); }
};
Values resolve_values(const Files& files);

// Rules between keys, on a complete set of effective values (slirp/host and slirp/docker are
// different addresses in one /24).
Status check_consistency(const Values& values);

// Every key at its default: the initial commit.
Files seed_files();

// Whether a repository path is one of the schema's keys.
bool is_schema_path(const std::string& path);

}  // namespace pinata::db
