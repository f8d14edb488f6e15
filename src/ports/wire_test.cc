#include "ports/wire.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/fd.h"

namespace pinata::ports {
namespace {

using namespace std::chrono_literals;

TEST(Header, FormatsAndParsesTcpAndUdp) {
  Destination tcp{Proto::kTcp, {0xac110002, 80}};
  Destination udp{Proto::kUdp, {0xac110002, 53}};

  EXPECT_EQ(format_header(tcp), "tcp:172.17.0.2:80\n");
  EXPECT_EQ(format_header(udp), "udp:172.17.0.2:53\n");
  EXPECT_EQ(parse_header("tcp:172.17.0.2:80").value(), tcp);
  EXPECT_EQ(parse_header("udp:172.17.0.2:53").value(), udp);
}

TEST(Header, RejectsMalformedLines) {
  const char* bad[] = {"", "tcp", "tcp:172.17.0.2", "tcp:172.17.0.2:0", "icmp:1.2.3.4:1",
                       "tcp:1.2.3:80", "tcp:1.2.3.4:80:5", "tcp:1.2.3.4:80 ", "tcp::80"};
  for (const char* line : bad) EXPECT_FALSE(parse_header(line).has_value()) << line;
  EXPECT_FALSE(parse_header(std::string(kMaxHeaderBytes, 'a')).has_value());
}

struct Pair {
  UniqueFd a, b;
  static Pair make() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    return Pair{UniqueFd(sv[0]), UniqueFd(sv[1])};
  }
};

TEST(Header, ReadHeaderLeavesTheStreamDataUnread) {
  auto p = Pair::make();
  std::string sent = "tcp:10.1.2.3:443\nGET / HTTP/1.0\r\n";
  ASSERT_EQ(::write(p.a.get(), sent.data(), sent.size()), static_cast<ssize_t>(sent.size()));

  auto d = read_header(p.b.get(), 1000ms);
  char rest[64];
  ssize_t n = ::read(p.b.get(), rest, sizeof rest);

  ASSERT_TRUE(d.has_value()) << d.error().message();
  EXPECT_EQ(d->endpoint, (Ipv4Endpoint{0x0a010203, 443}));
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(rest, static_cast<size_t>(n)), "GET / HTTP/1.0\r\n");
}

TEST(Header, ReadHeaderTimesOutOnASilentPeer) {
  auto p = Pair::make();
  ASSERT_EQ(::write(p.a.get(), "tcp:1.2", 7), 7);

  auto d = read_header(p.b.get(), 50ms);

  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().kind(), ErrorKind::kTimeout);
}

TEST(Header, ReadHeaderFailsOnEofAndOnAnOverlongLine) {
  auto eof = Pair::make();
  ASSERT_EQ(::write(eof.a.get(), "tcp:1.2", 7), 7);
  eof.a.reset();
  auto flood = Pair::make();
  std::string junk(200, 'x');
  ASSERT_EQ(::write(flood.a.get(), junk.data(), junk.size()), 200);

  auto at_eof = read_header(eof.b.get(), 1000ms);
  auto overlong = read_header(flood.b.get(), 1000ms);
  char rest[256];
  ssize_t left = ::read(flood.b.get(), rest, sizeof rest);

  EXPECT_FALSE(at_eof.has_value());
  ASSERT_FALSE(overlong.has_value());
  EXPECT_EQ(left, static_cast<ssize_t>(200 - kMaxHeaderBytes));  // read no more than 64 bytes
}

TEST(Frames, EncodeIsBigEndianLengthThenPayload) {
  std::string out;

  ASSERT_TRUE(append_frame(out, "hi"));
  ASSERT_TRUE(append_frame(out, ""));
  ASSERT_TRUE(append_frame(out, std::string(300, 'z')));

  EXPECT_EQ(out.substr(0, 4), std::string("\x00\x02hi", 4));
  EXPECT_EQ(out.substr(4, 2), std::string("\x00\x00", 2));
  EXPECT_EQ(out.substr(6, 2), std::string("\x01\x2c", 2));
  EXPECT_EQ(out.size(), 8u + 300u);
}

TEST(Frames, RefusesPayloadsOverU16) {
  std::string out;
  EXPECT_TRUE(append_frame(out, std::string(65535, 'a')));
  out.clear();
  EXPECT_FALSE(append_frame(out, std::string(65536, 'a')));
  EXPECT_TRUE(out.empty());
}

TEST(Frames, DecoderReassemblesFramesSplitAtEveryByte) {
  std::string stream;
  std::vector<std::string> sent = {"one", "", std::string(1000, 'x'), "last"};
  for (const auto& s : sent) ASSERT_TRUE(append_frame(stream, s));
  FrameDecoder decoder;
  std::vector<std::string> got;

  for (char c : stream) {
    decoder.feed(std::string_view(&c, 1));
    while (auto f = decoder.next()) got.emplace_back(*f);
  }

  EXPECT_EQ(got, sent);
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(Frames, DecoderHoldsAnIncompleteFrame) {
  FrameDecoder decoder;
  decoder.feed(std::string("\x00\x05hel", 5));

  EXPECT_FALSE(decoder.next().has_value());
  EXPECT_EQ(decoder.buffered(), 5u);
  decoder.feed("lo");
  auto f = decoder.next();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(*f, "hello");
}

}  // namespace
}  // namespace pinata::ports
