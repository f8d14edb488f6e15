#include "db/json.h"

#include <gtest/gtest.h>

namespace pinata::db {
namespace {

bool valid(std::string_view text, JsonLimits limits = {}) {
  return validate_json(text, limits).has_value();
}

std::string error_of(std::string_view text, JsonLimits limits = {}) {
  auto r = validate_json(text, limits);
  return r ? "" : r.error().message();
}

TEST(Json, AcceptsEveryKindOfValue) {
  EXPECT_TRUE(valid(R"({"debug":true,"n":null,"f":false,"list":[1,-2,3.5,1e9,2E-3,0.0,-0],)"
                    R"("o":{"nested":{"deeper":[[],{}]}},"s":"a\"b\\c\/d\b\f\n\r\t\u00e9"})"));
  EXPECT_TRUE(valid(" \t\r\n[ ] \n"));
  EXPECT_TRUE(valid("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3\""));
  EXPECT_TRUE(valid(R"("\ud83d\udc33")"));
  EXPECT_TRUE(valid("0"));
  EXPECT_TRUE(valid("-12.5e+10"));
}

TEST(Json, RejectsMalformedStructure) {
  EXPECT_FALSE(valid(""));
  EXPECT_FALSE(valid("   "));
  EXPECT_FALSE(valid("{"));
  EXPECT_FALSE(valid("{\"a\":1,}"));
  EXPECT_FALSE(valid("[1,]"));
  EXPECT_FALSE(valid("[1 2]"));
  EXPECT_FALSE(valid("{\"a\" 1}"));
  EXPECT_FALSE(valid("{a:1}"));
  EXPECT_FALSE(valid("{'a':1}"));
  EXPECT_FALSE(valid("{} {}"));
  EXPECT_FALSE(valid("{}x"));
  EXPECT_FALSE(valid("// comment\n{}"));
}

TEST(Json, RejectsBadLiteralsAndNumbers) {
  EXPECT_FALSE(valid("tru"));
  EXPECT_FALSE(valid("True"));
  EXPECT_FALSE(valid("nul"));
  EXPECT_FALSE(valid("01"));
  EXPECT_FALSE(valid("-"));
  EXPECT_FALSE(valid("1."));
  EXPECT_FALSE(valid(".5"));
  EXPECT_FALSE(valid("1e"));
  EXPECT_FALSE(valid("1e+"));
  EXPECT_FALSE(valid("+1"));
  EXPECT_FALSE(valid("NaN"));
  EXPECT_FALSE(valid("Infinity"));
  EXPECT_FALSE(valid("0x10"));
}

TEST(Json, RejectsBadStrings) {
  EXPECT_FALSE(valid("\"unterminated"));
  EXPECT_FALSE(valid("\"raw\nnewline\""));
  EXPECT_FALSE(valid("\"tab\there\""));
  EXPECT_FALSE(valid(R"("\x41")"));
  EXPECT_FALSE(valid(R"("\u12")"));
  EXPECT_FALSE(valid(R"("\u12g4")"));
  EXPECT_FALSE(valid(R"("\ud83d")"));           // lone high surrogate
  EXPECT_FALSE(valid(R"("\ud83d\u0041")"));     // high surrogate + non-surrogate
  EXPECT_FALSE(valid(R"("\udc33")"));           // lone low surrogate
  EXPECT_FALSE(valid("\"\xff\""));              // invalid UTF-8 byte
  EXPECT_FALSE(valid("\"\xc0\xaf\""));          // overlong encoding
  EXPECT_FALSE(valid("\"\xed\xa0\x80\""));      // UTF-8 encoded surrogate
  EXPECT_FALSE(valid("\"\xe2\x82\""));          // truncated sequence
  EXPECT_FALSE(valid("\"\xf4\x90\x80\x80\""));  // beyond U+10FFFF
}

TEST(Json, RejectsByteOrderMarkAndDuplicateNames) {
  EXPECT_FALSE(valid("\xef\xbb\xbf{}"));
  EXPECT_NE(error_of(R"({"debug":true,"debug":false})").find("duplicate member name \"debug\""),
            std::string::npos);
  // Duplicates are found after decoding escapes.
  EXPECT_FALSE(valid(R"({"a":1,"\u0061":2})"));
  // The same name in different objects is fine.
  EXPECT_TRUE(valid(R"({"a":{"a":1},"b":{"a":2}})"));
}

TEST(Json, EnforcesTheDepthLimit) {
  std::string ok(64, '[');
  ok += std::string(64, ']');
  EXPECT_TRUE(valid(ok));
  std::string deep(65, '[');
  deep += std::string(65, ']');
  EXPECT_NE(error_of(deep).find("nested deeper than 64 levels"), std::string::npos);
  // Far deeper input fails cleanly rather than exhausting the stack.
  std::string huge(1 << 20, '[');
  EXPECT_FALSE(valid(huge));
  EXPECT_FALSE(valid(std::string(3, '{'), JsonLimits{.max_depth = 2}));
}

TEST(Json, RequiresAnObjectWhenAsked) {
  JsonLimits object{.max_depth = 64, .top = JsonTop::kObject};
  EXPECT_TRUE(valid("{}", object));
  EXPECT_TRUE(valid("  {\"a\":[1]}\n", object));
  EXPECT_NE(error_of("[1]", object).find("expected a JSON object"), std::string::npos);
  EXPECT_FALSE(valid("\"s\"", object));
  EXPECT_FALSE(valid("null", object));
}

TEST(Json, ErrorsSayWhere) {
  EXPECT_EQ(error_of("{\n  \"a\": 1,\n  \"b\" 2\n}"),
            "line 3, column 7: expected ':' after an object member name");
  EXPECT_EQ(error_of("[1,2"), "line 1, column 5: unterminated array: expected ',' or ']'");
}

TEST(Json, QuotesStringsAsValidJson) {
  EXPECT_EQ(json_quote("plain"), "\"plain\"");
  EXPECT_EQ(json_quote("a\"b\\c\nd\te\x01"), R"("a\"b\\c\nd\te\u0001")");
  EXPECT_EQ(json_quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(json_quote("bad\xff"), "\"bad\xef\xbf\xbd\"");
  for (std::string s : {"", "x\"y", "\x7f\x1f", "\xc3", "\xf0\x9f\x90\xb3"}) {
    EXPECT_TRUE(valid(json_quote(s))) << s;
  }
}

}  // namespace
}  // namespace pinata::db
