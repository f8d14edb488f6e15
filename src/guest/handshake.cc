#include "guest/handshake.h"

namespace pinata::guest {

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Always walk the longer of the two so the time depends on lengths only.
  size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned diff = a.size() != b.size() ? 1u : 0u;
  for (size_t i = 0; i < n; i++) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

std::string strip_whitespace(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return std::string(s);
}

std::optional<ApiCommand> parse_handshake(std::string_view line, std::string_view expected_token) {
  if (expected_token.empty()) return std::nullopt;
  if (line.size() > kMaxHandshakeLine) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t space = line.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  std::string_view token = line.substr(0, space);
  std::string_view command = line.substr(space + 1);
  // Check the token before looking at the command, and always in constant time.
  if (!constant_time_equal(token, expected_token)) return std::nullopt;
  if (command == "docker") return ApiCommand::kDocker;
  if (command == "shutdown") return ApiCommand::kShutdown;
  if (command == "ping") return ApiCommand::kPing;
  return std::nullopt;
}

}  // namespace pinata::guest
