#include "daemon/console_ring.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "base/io.h"

namespace pinata {
namespace {

std::string temp_path() {
  char tmpl[] = "/tmp/pinata-ring-test-XXXXXX";
  return path_join(::mkdtemp(tmpl), "console-ring");
}

TEST(ConsoleRing, KeepsEverythingWhileSmall) {
  std::string path = temp_path();
  ConsoleRing ring(path, 1024);
  ASSERT_TRUE(ring.open());
  ASSERT_TRUE(ring.append("line 1\r\nline 2\n"));
  auto text = read_file(path);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "line 1\r\nline 2\n");
}

TEST(ConsoleRing, StaysBoundedAndKeepsTheNewestBytes) {
  std::string path = temp_path();
  ConsoleRing ring(path, 1000);
  ASSERT_TRUE(ring.open());
  for (int i = 0; i < 500; i++) ASSERT_TRUE(ring.append("line " + std::to_string(i) + "\n"));
  auto text = read_file(path);
  ASSERT_TRUE(text);
  EXPECT_LE(text->size(), 1000u);
  EXPECT_GE(text->size(), 400u);
  EXPECT_NE(text->find("line 499\n"), std::string::npos);
  EXPECT_EQ(text->find("line 1\n"), std::string::npos);
  // Trimming starts at a line boundary.
  EXPECT_EQ(text->rfind("line ", 0), 0u);
}

TEST(ConsoleRing, SurvivesReopenAcrossBoots) {
  std::string path = temp_path();
  {
    ConsoleRing ring(path, 1000);
    ASSERT_TRUE(ring.open());
    ASSERT_TRUE(ring.append("boot 1\n"));
  }
  ConsoleRing ring(path, 1000);
  ASSERT_TRUE(ring.open());
  ASSERT_TRUE(ring.append("boot 2\n"));
  EXPECT_EQ(*read_file(path), "boot 1\nboot 2\n");
}

}  // namespace
}  // namespace pinata
