#include "daemon/guest_image.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "base/io.h"

namespace pinata {
namespace {

// sha256("abc")
constexpr const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

std::string make_image(const std::string& root_content) {
  char tmpl[] = "/tmp/pinata-image-test-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  for (const char* f : {"vmlinux", "initrd.img", "root.img"}) {
    EXPECT_TRUE(write_file_atomic(path_join(dir, f), "abc"));
  }
  std::string manifest;
  for (const char* f : {"vmlinux", "initrd.img", "root.img"}) {
    manifest += std::string(kAbc) + "  " + f + "\n";
  }
  EXPECT_TRUE(write_file_atomic(path_join(dir, "MANIFEST"), manifest));
  EXPECT_TRUE(write_file_atomic(path_join(dir, "root.img"), root_content));
  return dir;
}

TEST(GuestImage, Sha256MatchesKnownVector) {
  char tmpl[] = "/tmp/pinata-sha-XXXXXX";
  std::string file = path_join(::mkdtemp(tmpl), "f");
  ASSERT_TRUE(write_file_atomic(file, "abc"));
  EXPECT_EQ(*sha256_file(file), kAbc);
}

TEST(GuestImage, AcceptsACompleteImage) {
  auto img = verify_guest_image(make_image("abc"));
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_NE(img->kernel.find("vmlinux"), std::string::npos);
}

TEST(GuestImage, RejectsACorruptFile) {
  auto img = verify_guest_image(make_image("abd"));
  ASSERT_FALSE(img);
  EXPECT_EQ(img.error().kind(), ErrorKind::kCorrupt);
  EXPECT_NE(img.error().message().find("root.img is corrupt"), std::string::npos);
}

TEST(GuestImage, RejectsAMissingManifestOrDirectory) {
  std::string dir = make_image("abc");
  ASSERT_EQ(::unlink(path_join(dir, "MANIFEST").c_str()), 0);
  auto img = verify_guest_image(dir);
  ASSERT_FALSE(img);
  EXPECT_NE(img.error().message().find("incomplete"), std::string::npos);
  auto none = verify_guest_image("/nonexistent/pinata/guest");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind(), ErrorKind::kNotFound);
}

TEST(GuestImage, RejectsAMissingFile) {
  std::string dir = make_image("abc");
  ASSERT_EQ(::unlink(path_join(dir, "vmlinux").c_str()), 0);
  auto img = verify_guest_image(dir);
  ASSERT_FALSE(img);
  EXPECT_NE(img.error().message().find("vmlinux is missing"), std::string::npos);
}

TEST(GuestImage, ManifestParserRejectsPathsAndGarbage) {
  EXPECT_FALSE(parse_manifest(std::string(kAbc) + "  ../etc/passwd\n"));
  EXPECT_FALSE(parse_manifest("not a manifest\n"));
  EXPECT_FALSE(parse_manifest(std::string(64, 'Z') + "  vmlinux\n"));
  auto ok = parse_manifest(std::string(kAbc) + "  vmlinux\n\n");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->size(), 1u);
}

}  // namespace
}  // namespace pinata
