#include "guest/cmdline.h"

namespace pinata::guest {

std::vector<std::string> split_cmdline(std::string_view cmdline) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  bool quoted = false;
  for (char c : cmdline) {
    if (c == '"') {
      quoted = !quoted;
      in_word = true;
      continue;
    }
    if (!quoted && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
      continue;
    }
    cur.push_back(c);
    in_word = true;
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

std::optional<std::string> cmdline_value(std::string_view cmdline, std::string_view key) {
  std::optional<std::string> value;
  for (const std::string& word : split_cmdline(cmdline)) {
    if (word == "--") break;  // the rest belongs to init's argv
    std::string_view w(word);
    if (w == key) {
      value = "";
    } else if (w.size() > key.size() && w.substr(0, key.size()) == key && w[key.size()] == '=') {
      value = std::string(w.substr(key.size() + 1));
    }
  }
  return value;
}

bool is_valid_hostname(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (name.front() == '-' || name.back() == '-') return false;
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string hostname_from_cmdline(std::string_view cmdline, std::string* invalid) {
  auto value = cmdline_value(cmdline, kHostnameParam);
  if (!value) return std::string(kDefaultHostname);
  if (!is_valid_hostname(*value)) {
    if (invalid) *invalid = *value;
    return std::string(kDefaultHostname);
  }
  return *value;
}

TrimPolicy trim_policy_from_cmdline(std::string_view cmdline, std::string* invalid) {
  TrimPolicy policy;
  auto value = cmdline_value(cmdline, kTrimParam);
  if (!value) return policy;
  if (*value == "mount") {
    policy.fstrim_interval_seconds = 0;
    return policy;
  }
  // Seconds: 1-7 digits (at most ~115 days), no sign, no suffix.
  bool digits = !value->empty() && value->size() <= 7;
  int seconds = 0;
  for (char c : *value) {
    if (c < '0' || c > '9') {
      digits = false;
      break;
    }
    seconds = seconds * 10 + (c - '0');
  }
  if (!digits) {
    if (invalid) *invalid = *value;
    return policy;
  }
  policy.mount_discard = false;
  policy.fstrim_interval_seconds = seconds;
  return policy;
}

std::string hosts_file(std::string_view hostname) {
  std::string h(hostname);
  return "127.0.0.1\tlocalhost\n"
         "127.0.1.1\t" +
         h +
         "\n"
         "::1\tlocalhost ip6-localhost ip6-loopback\n"
         "ff02::1\tip6-allnodes\n"
         "ff02::2\tip6-allrouters\n";
}

std::string strip_whitespace(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace pinata::guest
