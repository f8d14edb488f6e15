#include "guest/handshake.h"

#include <gtest/gtest.h>

namespace pinata::guest {
namespace {

constexpr std::string_view kToken = "3f9c0a1b2c";

TEST(Handshake, AcceptsKnownCommands) {
  EXPECT_EQ(parse_handshake("3f9c0a1b2c docker", kToken), ApiCommand::kDocker);
  EXPECT_EQ(parse_handshake("3f9c0a1b2c shutdown", kToken), ApiCommand::kShutdown);
  EXPECT_EQ(parse_handshake("3f9c0a1b2c ping\r", kToken), ApiCommand::kPing);
}

TEST(Handshake, RejectsWrongToken) {
  EXPECT_EQ(parse_handshake("3f9c0a1b2d docker", kToken), std::nullopt);
  EXPECT_EQ(parse_handshake("3f9c0a1b2 docker", kToken), std::nullopt);
  EXPECT_EQ(parse_handshake("3f9c0a1b2c0 docker", kToken), std::nullopt);
  EXPECT_EQ(parse_handshake(" docker", kToken), std::nullopt);
}

TEST(Handshake, RejectsEverythingWithoutAConfiguredToken) {
  EXPECT_EQ(parse_handshake(" docker", ""), std::nullopt);
  EXPECT_EQ(parse_handshake("x docker", ""), std::nullopt);
}

TEST(Handshake, RejectsGarbageAndUnknownCommands) {
  EXPECT_EQ(parse_handshake("", kToken), std::nullopt);
  EXPECT_EQ(parse_handshake("3f9c0a1b2c", kToken), std::nullopt);
  EXPECT_EQ(parse_handshake("3f9c0a1b2c  docker", kToken), std::nullopt);
  EXPECT_EQ(parse_handshake("3f9c0a1b2c docker ", kToken), std::nullopt);
  EXPECT_EQ(parse_handshake("3f9c0a1b2c reboot", kToken), std::nullopt);
  EXPECT_EQ(parse_handshake("GET / HTTP/1.1", kToken), std::nullopt);
  EXPECT_EQ(parse_handshake(std::string("3f9c0a1b2c\0docker", 17), kToken), std::nullopt);
}

TEST(Handshake, RejectsOverlongLine) {
  std::string line = std::string(kToken) + " docker" + std::string(kMaxHandshakeLine, ' ');
  EXPECT_EQ(parse_handshake(line, kToken), std::nullopt);
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "ab"));
  EXPECT_FALSE(constant_time_equal("", "a"));
  EXPECT_FALSE(constant_time_equal(std::string_view("a\0", 2), "a"));
}

TEST(StripWhitespace, TrimsBothEnds) {
  EXPECT_EQ(strip_whitespace("  tok\n"), "tok");
  EXPECT_EQ(strip_whitespace("\t\r\n"), "");
  EXPECT_EQ(strip_whitespace("a b"), "a b");
}

}  // namespace
}  // namespace pinata::guest
