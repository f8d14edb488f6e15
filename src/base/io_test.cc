#include "base/io.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace pinata {
namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/pinata-io-test-XXXXXX";
  return ::mkdtemp(tmpl);
}

TEST(Io, WriteFileAtomicReplacesContentAndSetsMode) {
  std::string dir = temp_dir();
  std::string path = path_join(dir, "f");
  ASSERT_TRUE(write_file_atomic(path, "one", 0600));
  ASSERT_TRUE(write_file_atomic(path, "two", 0600));
  auto text = read_file(path);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "two");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(Io, ReadLineRejectsEofBeforeNewlineAndOverlongLines) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  ASSERT_TRUE(write_all(b.get(), "hello\nxx"));
  ::shutdown(b.get(), SHUT_WR);
  auto line = read_line(a.get());
  ASSERT_TRUE(line);
  EXPECT_EQ(*line, "hello");
  EXPECT_FALSE(read_line(a.get()));

  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd c(sv[0]), d(sv[1]);
  ASSERT_TRUE(write_all(d.get(), std::string(100, 'x') + "\n"));
  auto long_line = read_line(c.get(), 10);
  ASSERT_FALSE(long_line);
  EXPECT_EQ(long_line.error().kind(), ErrorKind::kInvalidInput);
}

TEST(Io, UnixListenCreatesSocketWithModeAndAcceptsConnections) {
  std::string dir = temp_dir();
  std::string path = path_join(dir, "s.sock");
  auto listener = unix_listen(path, 0600);
  ASSERT_TRUE(listener) << listener.error().message();
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto client = unix_connect(path);
  ASSERT_TRUE(client) << client.error().message();
}

TEST(Io, UnixListenRejectsOverlongPath) {
  auto r = unix_listen("/tmp/" + std::string(200, 'a'));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidInput);
}

TEST(Io, MakeDirsFailsOnAFileInTheWay) {
  std::string dir = temp_dir();
  std::string file = path_join(dir, "file");
  ASSERT_TRUE(write_file_atomic(file, "x"));
  EXPECT_FALSE(make_dirs(path_join(file, "sub")));
  EXPECT_TRUE(make_dirs(path_join(dir, "a/b/c")));
}

TEST(Io, PathJoinUsesOneSlash) {
  EXPECT_EQ(path_join("/a/", "/b"), "/a/b");
  EXPECT_EQ(path_join("/a", "b"), "/a/b");
}

}  // namespace
}  // namespace pinata
