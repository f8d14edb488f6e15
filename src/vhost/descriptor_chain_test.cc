#include "vhost/descriptor_chain.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

namespace pinata::vhost {
namespace {

// Chains over plain buffers: Reader/Writer only see host segments.
struct Fixture {
  std::string a = "0123", b = "456789";
  std::vector<uint8_t> w1 = std::vector<uint8_t>(3), w2 = std::vector<uint8_t>(5);
  DescriptorChain chain{
      7,
      nullptr,
      {{reinterpret_cast<uint8_t*>(a.data()), 4}, {reinterpret_cast<uint8_t*>(b.data()), 6}},
      {{w1.data(), 3}, {w2.data(), 5}}};
};

std::string take(Reader& r) {
  std::string s(r.available(), '\0');
  EXPECT_TRUE(r.read(s.data(), s.size()));
  return s;
}

TEST(Reader, ReadsAcrossSegmentsAndCountsBytes) {
  Fixture f;
  Reader r(f.chain);

  char buf[7];
  size_t n = r.read_some({reinterpret_cast<uint8_t*>(buf), sizeof buf});

  EXPECT_EQ(n, 7u);
  EXPECT_EQ(std::string(buf, 7), "0123456");
  EXPECT_EQ(r.bytes_read(), 7u);
  EXPECT_EQ(r.available(), 3u);
}

TEST(Reader, ShortReadFailsWithoutConsuming) {
  Fixture f;
  Reader r(f.chain);
  char buf[11];

  auto s = r.read(buf, sizeof buf);

  EXPECT_FALSE(s.has_value());
  EXPECT_EQ(r.available(), 10u);
  EXPECT_EQ(take(r), "0123456789");
}

TEST(Reader, SplitAtKeepsPrefixAndReturnsRest) {
  Fixture f;
  Reader r(f.chain);
  ASSERT_TRUE(r.skip(1));

  Reader rest = r.split_at(5);

  EXPECT_EQ(take(r), "12345");
  EXPECT_EQ(take(rest), "6789");
}

TEST(Reader, SplitAtSegmentBoundaryAndBeyondEnd) {
  Fixture f;
  Reader r(f.chain);
  Reader rest = r.split_at(4);
  Reader empty = rest.split_at(100);

  EXPECT_EQ(take(r), "0123");
  EXPECT_EQ(take(rest), "456789");
  EXPECT_EQ(empty.available(), 0u);
}

TEST(Reader, ReadToFdWritesTheChainBytes) {
  Fixture f;
  Reader r(f.chain);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);

  auto n = r.read_to_fd(p[1], 8);
  char buf[16] = {};
  ssize_t got = ::read(p[0], buf, sizeof buf);
  ::close(p[0]);
  ::close(p[1]);

  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 8u);
  EXPECT_EQ(std::string(buf, got), "01234567");
  EXPECT_EQ(r.available(), 2u);
}

TEST(Writer, WritesAcrossSegmentsAndReportsUsedLength) {
  Fixture f;
  Writer w(f.chain);

  ASSERT_TRUE(w.write("abcdef", 6));
  auto too_much = w.write("xyz", 3);

  EXPECT_FALSE(too_much.has_value());
  EXPECT_EQ(w.bytes_written(), 6u);
  EXPECT_EQ(w.available(), 2u);
  EXPECT_EQ(std::string(f.w1.begin(), f.w1.end()), "abc");
  EXPECT_EQ(std::string(f.w2.begin(), f.w2.begin() + 3), "def");
}

TEST(Writer, SplitAtLetsAHeaderBeWrittenAfterThePayload) {
  Fixture f;
  Writer header(f.chain);
  Writer payload = header.split_at(2);

  ASSERT_TRUE(payload.write("PAYLOAD", 6));
  ASSERT_TRUE(header.write("HD", 2));
  auto overflow = header.write("!", 1);

  EXPECT_FALSE(overflow.has_value());
  EXPECT_EQ(header.bytes_written() + payload.bytes_written(), 8u);
  EXPECT_EQ(std::string(f.w1.begin(), f.w1.end()) + std::string(f.w2.begin(), f.w2.end()),
            "HDPAYLOA");
}

TEST(Writer, WriteFromFdFillsTheChain) {
  Fixture f;
  Writer w(f.chain);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ASSERT_EQ(::write(p[1], "hello world", 11), 11);

  auto n = w.write_from_fd(p[0], 100);
  ::close(p[0]);
  ::close(p[1]);

  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 8u);
  EXPECT_EQ(std::string(f.w1.begin(), f.w1.end()) + std::string(f.w2.begin(), f.w2.end()),
            "hello wo");
}

TEST(DescriptorChain, ReportsSizes) {
  Fixture f;

  EXPECT_EQ(f.chain.head(), 7);
  EXPECT_EQ(f.chain.readable_bytes(), 10u);
  EXPECT_EQ(f.chain.writable_bytes(), 8u);
}

}  // namespace
}  // namespace pinata::vhost
