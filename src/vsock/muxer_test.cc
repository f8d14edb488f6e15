// The DIR/connect handshake parser and the socket names (the muxer's pure parts). The muxer's
// socket handling is exercised end to end in device_test.cc.
#include "vsock/muxer.h"

#include <gtest/gtest.h>

namespace pinata::vsock {
namespace {

TEST(Handshake, AcceptsTheCanonicalRequest) {
  auto port = parse_connect_request("00000003.00000948\n", 3);
  ASSERT_TRUE(port.has_value());
  EXPECT_EQ(*port, 0x948u);
}

TEST(Handshake, AcceptsUppercaseHexLikeScanf) {
  auto port = parse_connect_request("00000003.0000ABcd\n", 3);
  ASSERT_TRUE(port.has_value());
  EXPECT_EQ(*port, 0xabcdu);
}

TEST(Handshake, RejectsShortRequests) {
  EXPECT_FALSE(parse_connect_request("00000003.948\n", 3));
  EXPECT_FALSE(parse_connect_request("", 3));
  EXPECT_FALSE(parse_connect_request("00000003.0000094\n", 3));
}

TEST(Handshake, RejectsAMissingNewline) {
  EXPECT_FALSE(parse_connect_request("00000003.00000948x", 3));
  EXPECT_FALSE(parse_connect_request("00000003.00000948\r", 3));
}

TEST(Handshake, RejectsTheWrongCid) {
  auto r = parse_connect_request("00000002.00000948\n", 3);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("CID 2"), std::string::npos);
  EXPECT_FALSE(parse_connect_request("00000004.00000948\n", 3));
}

TEST(Handshake, RejectsGarbage) {
  EXPECT_FALSE(parse_connect_request("GET / HTTP/1.1\r\n\r\n", 3));
  EXPECT_FALSE(parse_connect_request("00000003:00000948\n", 3));
  EXPECT_FALSE(parse_connect_request("0x000003.00000948\n", 3));
  EXPECT_FALSE(parse_connect_request("00000003.-0000948\n", 3));
  EXPECT_FALSE(parse_connect_request(" 0000003.00000948\n", 3));
  EXPECT_FALSE(parse_connect_request(std::string("00000003.0000\0948\n", 18), 3));
}

TEST(Handshake, RejectsTrailingBytes) {
  EXPECT_FALSE(parse_connect_request("00000003.00000948\nGET", 3));
}

TEST(Handshake, FormatRoundTrips) {
  std::string s = format_connect_request(3, 0xdeadbeef);
  EXPECT_EQ(s, "00000003.deadbeef\n");
  EXPECT_EQ(*parse_connect_request(s, 3), 0xdeadbeefu);
}

TEST(SocketNames, AreCidDotPortInHex) {
  EXPECT_EQ(port_socket_name(2, 0x948), "00000002.00000948");
  EXPECT_EQ(port_socket_name(3, 2376), "00000003.00000948");
}

}  // namespace
}  // namespace pinata::vsock
