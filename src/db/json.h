// A strict JSON (RFC 8259) validator and a string quoter: enough for daemon.json and for
// `pinata list --json`, without a JSON library.
//
// validate_json accepts exactly RFC 8259 text: objects, arrays, strings (valid UTF-8, no raw
// control characters, only the standard escapes, \u surrogates paired), numbers
// (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?), true/false/null, with JSON whitespace
// between tokens. It also refuses what would make a configuration file ambiguous: a byte
// order mark, duplicate member names in one object, and nesting deeper than `max_depth`.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.h"

namespace pinata::db {

enum class JsonTop {
  kAnyValue,
  kObject,  // the top-level value must be an object (daemon.json)
};

struct JsonLimits {
  size_t max_depth = 64;
  JsonTop top = JsonTop::kAnyValue;
};

// An error (kInvalidInput) says where and what: "line 2, column 7: expected ':' after an
// object member name".
Status validate_json(std::string_view text, JsonLimits limits = {});

// `s` as a JSON string literal, quotes included. Invalid UTF-8 bytes become U+FFFD.
std::string json_quote(std::string_view s);

}  // namespace pinata::db
