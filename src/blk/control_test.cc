#include "blk/control.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <thread>
#include <vector>

#include "base/io.h"
#include "disk/qcow2_disk.h"

namespace pinata::blk {
namespace {

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/blk-control-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    disk::Qcow2CreateOptions create;
    create.virtual_size = 64ull << 20;
    ASSERT_TRUE(disk::Qcow2Disk::create(dir_ + "/d.qcow2", create));
    disk_ = std::move(*disk::Qcow2Disk::open(dir_ + "/d.qcow2"));
    loop_ = std::move(*EventLoop::create());
  }
  void TearDown() override {
    if (thread_.joinable()) {
      loop_->stop();
      thread_.join();
    }
    server_.reset();
    compactor_.reset();
    disk_.reset();
    std::filesystem::remove_all(dir_);
  }
  void start(bool with_compactor) {
    if (with_compactor) {
      CompactPolicy p;
      p.automatic = false;
      compactor_ = std::make_unique<Compactor>(*disk_, p);
    }
    auto s = ControlServer::listen(*loop_, dir_ + "/control.sock", compactor_.get(), "compaction is off here");
    ASSERT_TRUE(s) << s.error().message();
    server_ = std::move(*s);
    thread_ = std::thread([this] { (void)loop_->run(); });
  }
  // Sends `request` and returns everything the server answers before closing.
  std::string ask(const std::string& request) {
    auto fd = unix_connect(dir_ + "/control.sock");
    EXPECT_TRUE(fd);
    if (!fd) return "";
    EXPECT_EQ(::send(fd->get(), request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    if (request.empty() || request.size() < 65) ::shutdown(fd->get(), SHUT_WR);
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd->get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

  std::string dir_;
  std::unique_ptr<disk::Qcow2Disk> disk_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Compactor> compactor_;
  std::unique_ptr<ControlServer> server_;
  std::thread thread_;
};

TEST_F(ControlTest, CompactAnswersWithTheFileSizes) {
  std::vector<uint8_t> buf(1 << 20, 7);
  for (uint64_t i = 0; i < 16; i++) ASSERT_TRUE(disk_->write(i << 20, buf));
  ASSERT_TRUE(disk_->discard(0, 15ull << 20));
  ASSERT_TRUE(disk_->flush());
  start(true);
  std::string answer = ask("compact\n");
  auto outcome = parse_control_reply(answer);
  ASSERT_TRUE(outcome) << answer;
  EXPECT_GT(outcome->file_before, outcome->file_after + (14ull << 20));
  EXPECT_EQ(disk_->info()->file_size, outcome->file_after);
}

TEST_F(ControlTest, RefusesUnknownCommandsAndOverlongLines) {
  start(true);
  EXPECT_EQ(ask("shrink\n"), "ERROR unknown command 'shrink' (known: compact)\n");
  EXPECT_TRUE(ask(std::string(100, 'x')).starts_with("ERROR expected one line"));
  EXPECT_TRUE(ask("").starts_with("ERROR expected one line"));
  // Still serving after all that.
  EXPECT_TRUE(parse_control_reply(ask("compact\n")));
}

TEST_F(ControlTest, WithoutACompactorSaysWhy) {
  start(false);
  std::string answer = ask("compact\n");
  EXPECT_EQ(answer, "ERROR compaction is off here\n");
  auto outcome = parse_control_reply(answer);
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().message(), "compaction is off here");
}

TEST(ParseControlReply, RejectsGarbage) {
  EXPECT_FALSE(parse_control_reply("OK 1\n"));
  EXPECT_FALSE(parse_control_reply("OK 1 2 3\n"));
  EXPECT_FALSE(parse_control_reply("hello"));
  auto ok = parse_control_reply("OK 10 5\n");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->file_before, 10u);
  EXPECT_EQ(ok->file_after, 5u);
}

}  // namespace
}  // namespace pinata::blk
