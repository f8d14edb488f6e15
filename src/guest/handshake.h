// The Docker API service handshake (pure): "<token> <command>\n" from the host.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pinata::guest {

inline constexpr size_t kMaxHandshakeLine = 4096;

enum class ApiCommand { kDocker, kShutdown, kPing };

// Compares in time that depends only on the lengths, not on where the bytes differ.
bool constant_time_equal(std::string_view a, std::string_view b);

// Removes leading/trailing ASCII whitespace (the token file from fw_cfg may end in "\n").
std::string strip_whitespace(std::string_view s);

// Parses one handshake line (without its "\n"; a trailing "\r" is tolerated). nullopt if the
// token is wrong, `expected_token` is empty (no token configured: refuse everything), or the
// line is malformed or names an unknown command.
std::optional<ApiCommand> parse_handshake(std::string_view line, std::string_view expected_token);

}  // namespace pinata::guest
