#include "guest/db_config.h"

#include <cctype>

namespace pinata::guest {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool valid_sysctl_key(std::string_view key) {
  if (key.empty() || key.size() > 255 || key.front() == '.' || key.front() == '/') return false;
  if (key.find("..") != std::string_view::npos) return false;
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-' &&
        c != '/' && c != '*')
      return false;
  }
  return true;
}

}  // namespace

std::vector<SysctlSetting> parse_sysctl_conf(std::string_view text,
                                             std::vector<std::string>* errors) {
  std::vector<SysctlSetting> out;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    line_no++;
    line = trim(line);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '-') line = trim(line.substr(1));
    size_t eq = line.find('=');
    auto bad = [&](const char* why) {
      if (errors) errors->push_back("line " + std::to_string(line_no) + ": " + why);
    };
    if (eq == std::string_view::npos) {
      bad("not `key = value`");
      continue;
    }
    std::string_view key = trim(line.substr(0, eq));
    std::string_view value = trim(line.substr(eq + 1));
    if (!valid_sysctl_key(key)) {
      bad("invalid key");
      continue;
    }
    out.push_back({std::string(key), std::string(value)});
  }
  return out;
}

std::vector<std::string> parse_registry_list(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

bool json_mentions_key(std::string_view json, std::string_view key) {
  std::string quoted = "\"" + std::string(key) + "\"";
  for (size_t pos = json.find(quoted); pos != std::string_view::npos;
       pos = json.find(quoted, pos + 1)) {
    size_t i = pos + quoted.size();
    while (i < json.size() && std::isspace(static_cast<unsigned char>(json[i]))) i++;
    if (i < json.size() && json[i] == ':') return true;
  }
  return false;
}

}  // namespace pinata::guest
