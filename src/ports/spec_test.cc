#include "ports/spec.h"

#include <gtest/gtest.h>

namespace pinata::ports {
namespace {

TEST(Spec, ParsesTcpAndUdpSpecs) {
  auto tcp = parse_spec("tcp:127.0.0.1:8080:tcp:172.17.0.2:80");
  auto udp = parse_spec("udp:0.0.0.0:53:udp:10.0.0.255:5353");

  ASSERT_TRUE(tcp.has_value()) << tcp.error().message();
  EXPECT_EQ(tcp->proto, Proto::kTcp);
  EXPECT_EQ(tcp->host, (Ipv4Endpoint{0x7f000001, 8080}));
  EXPECT_EQ(tcp->container, (Ipv4Endpoint{0xac110002, 80}));
  ASSERT_TRUE(udp.has_value()) << udp.error().message();
  EXPECT_EQ(udp->proto, Proto::kUdp);
  EXPECT_EQ(udp->host, (Ipv4Endpoint{0, 53}));
  EXPECT_EQ(udp->container, (Ipv4Endpoint{0x0a0000ff, 5353}));
}

TEST(Spec, FormatIsTheCanonicalTextAndRoundTrips) {
  const char* texts[] = {"tcp:127.0.0.1:8080:tcp:172.17.0.2:80",
                         "udp:255.255.255.255:65535:udp:0.0.0.0:1"};
  for (const char* text : texts) {
    auto spec = parse_spec(text);
    ASSERT_TRUE(spec.has_value()) << text;
    EXPECT_EQ(format_spec(*spec), text);
    EXPECT_EQ(parse_spec(format_spec(*spec)).value(), *spec);
  }
}

TEST(Spec, RejectsEachKindOfMalformedSpec) {
  const char* bad[] = {
      "",                                           // empty
      "tcp:127.0.0.1:8080",                         // too few fields
      "tcp:127.0.0.1:8080:tcp:172.17.0.2:80:9",     // too many fields
      "sctp:127.0.0.1:8080:sctp:172.17.0.2:80",     // unknown proto
      "TCP:127.0.0.1:8080:TCP:172.17.0.2:80",       // protos are lower case
      "tcp:127.0.0.1:8080:udp:172.17.0.2:80",       // mixed protos
      "tcp:127.0.0.1:0:tcp:172.17.0.2:80",          // port 0
      "tcp:127.0.0.1:65536:tcp:172.17.0.2:80",      // port too big
      "tcp:127.0.0.1:080:tcp:172.17.0.2:80",        // leading zero in a port
      "tcp:127.0.0.1:+80:tcp:172.17.0.2:80",        // sign
      "tcp:127.0.0.1:8080:tcp:172.17.0.2:",         // empty port
      "tcp:256.0.0.1:8080:tcp:172.17.0.2:80",       // octet > 255
      "tcp:127.0.0:8080:tcp:172.17.0.2:80",         // three octets
      "tcp:127.0.0.1.1:8080:tcp:172.17.0.2:80",     // five octets
      "tcp:127.0.0.01:8080:tcp:172.17.0.2:80",      // leading zero in an octet
      "tcp:127..0.1:8080:tcp:172.17.0.2:80",        // empty octet
      "tcp: 127.0.0.1:8080:tcp:172.17.0.2:80",      // space
      "tcp:::1:8080:tcp:172.17.0.2:80",             // IPv6
      "tcp:localhost:8080:tcp:172.17.0.2:80",       // a name
      "tcp:127.0.0.1:8080:tcp:172.17.0.2:80\n",     // newline (the ctl strips it, mkdir not)
      "tcp:127.0.0.1:8080:tcp:172.17.0.2:80000000000000000000000000000000000",  // too long
  };
  for (const char* text : bad) {
    auto spec = parse_spec(text);
    EXPECT_FALSE(spec.has_value()) << "accepted \"" << text << "\"";
    if (!spec) {
      EXPECT_EQ(spec.error().kind(), ErrorKind::kInvalidInput) << text;
    }
  }
}

TEST(Spec, ErrorSaysWhichPartIsWrong) {
  auto port = parse_spec("tcp:127.0.0.1:99999:tcp:172.17.0.2:80");
  auto ip = parse_spec("tcp:127.0.0.1:8080:tcp:172.17.0.300:80");
  auto shape = parse_spec("nonsense");

  ASSERT_FALSE(port.has_value());
  EXPECT_NE(port.error().message().find("port \"99999\" is not a number 1-65535"),
            std::string::npos)
      << port.error().message();
  ASSERT_FALSE(ip.has_value());
  EXPECT_NE(ip.error().message().find("\"172.17.0.300\" is not an IPv4 address"),
            std::string::npos)
      << ip.error().message();
  ASSERT_FALSE(shape.has_value());
  EXPECT_NE(shape.error().message().find("expected proto:host_ip:host_port"), std::string::npos);
}

TEST(Spec, ErrorMessagesEscapeUnprintableBytes) {
  auto spec = parse_spec(std::string("tcp:1.2.3.4:8\x01:tcp:1.2.3.4:80", 29));

  ASSERT_FALSE(spec.has_value());
  EXPECT_NE(spec.error().message().find("\\x01"), std::string::npos) << spec.error().message();
}

}  // namespace
}  // namespace pinata::ports
