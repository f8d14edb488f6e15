#include "db/loose_object.h"

#include <gtest/gtest.h>
#include <zlib.h>

namespace pinata::db {
namespace {

std::string deflate_bytes(const std::string& raw) {
  uLongf len = compressBound(static_cast<uLong>(raw.size()));
  std::string out(len, '\0');
  compress(reinterpret_cast<Bytef*>(out.data()), &len, reinterpret_cast<const Bytef*>(raw.data()),
           static_cast<uLong>(raw.size()));
  out.resize(len);
  return out;
}

std::string object(const std::string& type, const std::string& body) {
  return deflate_bytes(type + " " + std::to_string(body.size()) + std::string(1, '\0') + body);
}

std::string error_of(const std::string& bytes) {
  auto r = verify_loose_object(bytes);
  return r ? "" : r.error().message();
}

TEST(LooseObject, AcceptsWellFormedObjects) {
  EXPECT_EQ(error_of(object("blob", "4\n")), "");
  EXPECT_EQ(error_of(object("blob", "")), "");
  EXPECT_EQ(error_of(object("tree", std::string(100000, 'x'))), "");
  EXPECT_EQ(error_of(object("commit", "tree 0\n")), "");
}

TEST(LooseObject, RejectsATruncatedStreamInsteadOfLooping) {
  std::string whole = object("blob", std::string(5000, 'a') + "tail");
  for (size_t cut : {size_t{0}, size_t{1}, size_t{2}, whole.size() / 2, whole.size() - 1}) {
    auto msg = error_of(whole.substr(0, cut));
    EXPECT_FALSE(msg.empty()) << cut;
  }
  EXPECT_NE(error_of(whole.substr(0, whole.size() / 2)).find("truncated"), std::string::npos);
}

TEST(LooseObject, RejectsGarbage) {
  EXPECT_NE(error_of("this is not zlib data").find("not a valid zlib stream"), std::string::npos);
  EXPECT_FALSE(error_of(object("blob", "x") + "extra").empty());
}

TEST(LooseObject, RejectsHeadersThatDisagreeWithTheContent) {
  EXPECT_NE(error_of(deflate_bytes(std::string("blob 2\0abcdef", 13))).find("header says 2 bytes"),
            std::string::npos);
  EXPECT_FALSE(error_of(deflate_bytes(std::string("blob 9\0abc", 10))).empty());
  EXPECT_FALSE(error_of(deflate_bytes(std::string("blub 3\0abc", 10))).empty());
  EXPECT_FALSE(error_of(deflate_bytes(std::string("blob x\0abc", 10))).empty());
  EXPECT_FALSE(error_of(deflate_bytes("blob 3 without a terminator")).empty());
}

TEST(LooseObject, RejectsObjectsBeyondTheSizeLimit) {
  EXPECT_FALSE(verify_loose_object(object("blob", std::string(5000, 'z')), 1000));
}

TEST(LooseObject, AMissingFileIsNotFound) {
  auto r = verify_loose_object_file("/nonexistent/objects/ab/cdef");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kNotFound);
}

}  // namespace
}  // namespace pinata::db
