#include "db/json.h"

#include <cstdint>
#include <set>

namespace pinata::db {
namespace {

// Decodes one UTF-8 sequence at text[pos]; returns its length (0 when invalid: overlong,
// surrogate, beyond U+10FFFF, truncated or a stray continuation byte).
size_t utf8_length(std::string_view text, size_t pos, uint32_t* cp_out) {
  auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) {
    *cp_out = b0;
    return 1;
  }
  size_t len;
  uint32_t cp;
  uint32_t min;
  if ((b0 & 0xe0) == 0xc0) {
    len = 2, cp = b0 & 0x1f, min = 0x80;
  } else if ((b0 & 0xf0) == 0xe0) {
    len = 3, cp = b0 & 0x0f, min = 0x800;
  } else if ((b0 & 0xf8) == 0xf0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (pos + len > text.size()) return 0;
  for (size_t i = 1; i < len; i++) {
    auto b = static_cast<unsigned char>(text[pos + i]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  *cp_out = cp;
  return len;
}

void append_utf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

class Validator {
 public:
  Validator(std::string_view text, JsonLimits limits) : text_(text), limits_(limits) {}

  Status run() {
    if (text_.substr(0, 3) == "\xef\xbb\xbf") return error("a byte order mark is not allowed");
    skip_space();
    if (at_end()) return error("empty document: expected a JSON value");
    if (limits_.top == JsonTop::kObject && peek() != '{') {
      return error("expected a JSON object ('{')");
    }
    TRY(value(0));
    skip_space();
    if (!at_end()) return error("unexpected text after the JSON value");
    return {};
  }

 private:
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }

  void advance() {
    if (text_[pos_] == '\n') {
      line_++;
      line_start_ = pos_ + 1;
    }
    pos_++;
  }

  void skip_space() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
      advance();
    }
  }

  tl::unexpected<Error> error(const std::string& what) const {
    return fail(ErrorKind::kInvalidInput, "line " + std::to_string(line_) + ", column " +
                                              std::to_string(pos_ - line_start_ + 1) + ": " + what);
  }

  Status value(size_t depth) {
    if (at_end()) return error("unexpected end: expected a value");
    switch (peek()) {
      case '{':
        return object(depth + 1);
      case '[':
        return array(depth + 1);
      case '"': {
        std::string ignored;
        return string(&ignored);
      }
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return number();
        return error(describe_unexpected("a value"));
    }
  }

  std::string describe_unexpected(const std::string& wanted) const {
    char c = peek();
    if (c >= 0x20 && c < 0x7f) return "expected " + wanted + ", got '" + std::string(1, c) + "'";
    return "expected " + wanted;
  }

  Status literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) {
      return error("invalid literal: expected " + std::string(word));
    }
    for (size_t i = 0; i < word.size(); i++) advance();
    return {};
  }

  bool digit() const { return !at_end() && peek() >= '0' && peek() <= '9'; }

  Status number() {
    if (peek() == '-') advance();
    if (!digit()) return error("invalid number: expected a digit");
    if (peek() == '0') {
      advance();
      if (digit()) return error("invalid number: leading zeros are not allowed");
    } else {
      while (digit()) advance();
    }
    if (!at_end() && peek() == '.') {
      advance();
      if (!digit()) return error("invalid number: expected a digit after '.'");
      while (digit()) advance();
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      advance();
      if (!at_end() && (peek() == '+' || peek() == '-')) advance();
      if (!digit()) return error("invalid number: expected a digit in the exponent");
      while (digit()) advance();
    }
    return {};
  }

  Result<uint32_t> hex4() {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
      if (at_end()) return error("unterminated \\u escape");
      char c = peek();
      uint32_t d;
      if (c >= '0' && c <= '9') {
        d = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return error("invalid \\u escape: expected 4 hex digits");
      }
      v = (v << 4) | d;
      advance();
    }
    return v;
  }

  // A string; its decoded value goes to *out (used to detect duplicate member names).
  Status string(std::string* out) {
    advance();  // the opening quote
    while (true) {
      if (at_end()) return error("unterminated string");
      auto c = static_cast<unsigned char>(peek());
      if (c == '"') {
        advance();
        return {};
      }
      if (c < 0x20) return error("control character in a string (escape it, e.g. \\n)");
      if (c == '\\') {
        advance();
        if (at_end()) return error("unterminated string");
        char e = peek();
        switch (e) {
          case '"':
          case '\\':
          case '/':
            out->push_back(e);
            advance();
            continue;
          case 'b':
            out->push_back('\b');
            advance();
            continue;
          case 'f':
            out->push_back('\f');
            advance();
            continue;
          case 'n':
            out->push_back('\n');
            advance();
            continue;
          case 'r':
            out->push_back('\r');
            advance();
            continue;
          case 't':
            out->push_back('\t');
            advance();
            continue;
          case 'u':
            break;
          default:
            return error("invalid escape '\\" + std::string(1, e) + "'");
        }
        advance();
        TRY_ASSIGN(uint32_t cp, hex4());
        if (cp >= 0xdc00 && cp <= 0xdfff) return error("unpaired UTF-16 low surrogate escape");
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (text_.substr(pos_, 2) != "\\u") {
            return error("UTF-16 high surrogate escape not followed by a low surrogate");
          }
          advance();
          advance();
          TRY_ASSIGN(uint32_t lo, hex4());
          if (lo < 0xdc00 || lo > 0xdfff) {
            return error("UTF-16 high surrogate escape not followed by a low surrogate");
          }
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        append_utf8(out, cp);
        continue;
      }
      uint32_t cp;
      size_t len = utf8_length(text_, pos_, &cp);
      if (len == 0) return error("invalid UTF-8 in a string");
      out->append(text_.substr(pos_, len));
      for (size_t i = 0; i < len; i++) advance();
    }
  }

  Status check_depth(size_t depth) {
    if (depth > limits_.max_depth) {
      return error("nested deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    return {};
  }

  Status object(size_t depth) {
    TRY(check_depth(depth));
    advance();  // '{'
    std::set<std::string> names;
    skip_space();
    if (!at_end() && peek() == '}') {
      advance();
      return {};
    }
    while (true) {
      skip_space();
      if (at_end()) return error("unterminated object: expected a member name");
      if (peek() != '"') return error(describe_unexpected("a member name in double quotes"));
      std::string name;
      TRY(string(&name));
      if (!names.insert(name).second) return error("duplicate member name " + json_quote(name));
      skip_space();
      if (at_end() || peek() != ':') return error("expected ':' after an object member name");
      advance();
      skip_space();
      TRY(value(depth));
      skip_space();
      if (at_end()) return error("unterminated object: expected ',' or '}'");
      if (peek() == '}') {
        advance();
        return {};
      }
      if (peek() != ',') return error(describe_unexpected("',' or '}' after an object member"));
      advance();
    }
  }

  Status array(size_t depth) {
    TRY(check_depth(depth));
    advance();  // '['
    skip_space();
    if (!at_end() && peek() == ']') {
      advance();
      return {};
    }
    while (true) {
      skip_space();
      TRY(value(depth));
      skip_space();
      if (at_end()) return error("unterminated array: expected ',' or ']'");
      if (peek() == ']') {
        advance();
        return {};
      }
      if (peek() != ',') return error(describe_unexpected("',' or ']' after an array element"));
      advance();
    }
  }

  std::string_view text_;
  JsonLimits limits_;
  size_t pos_ = 0;
  size_t line_ = 1;
  size_t line_start_ = 0;
};

}  // namespace

Status validate_json(std::string_view text, JsonLimits limits) {
  return Validator(text, limits).run();
}

std::string json_quote(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  size_t pos = 0;
  while (pos < s.size()) {
    auto c = static_cast<unsigned char>(s[pos]);
    switch (c) {
      case '"':
        out += "\\\"";
        pos++;
        continue;
      case '\\':
        out += "\\\\";
        pos++;
        continue;
      case '\n':
        out += "\\n";
        pos++;
        continue;
      case '\r':
        out += "\\r";
        pos++;
        continue;
      case '\t':
        out += "\\t";
        pos++;
        continue;
      case '\b':
        out += "\\b";
        pos++;
        continue;
      case '\f':
        out += "\\f";
        pos++;
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      out += "\\u00";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
      pos++;
      continue;
    }
    uint32_t cp;
    size_t len = utf8_length(s, pos, &cp);
    if (len == 0) {
      out += "\xef\xbf\xbd";  // U+FFFD
      pos++;
      continue;
    }
    out.append(s.substr(pos, len));
    pos += len;
  }
  out += "\"";
  return out;
}

}  // namespace pinata::db
