// The database's 9P tree, served by a real p9::Session over a socketpair to the test client,
// over a real git repository in a temporary directory.
#include "db/view9p.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <thread>

#include "db/schema.h"
#include "p9/server.h"
#include "p9/testing/client.h"

namespace pinata::db {
namespace {

using p9::testing::TestClient;

constexpr const char* kMemory = "com.docker.driver.amd64-linux/memory";

class View9pTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/db-view-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto store = Store::open_or_init(dir_ + "/database", seed_files());
    ASSERT_TRUE(store.has_value()) << store.error().message();
    store_ = std::make_unique<Store>(std::move(*store));
    auto w = HeadWatcher::start(*store_);
    ASSERT_TRUE(w.has_value());
    watcher_ = std::move(*w);
    ViewOptions options;
    options.check = [](const Files&, const Files& result) -> Status {
      auto it = result.find(kMemory);
      if (it != result.end() && decode_value(it->second) == "0") {
        return fail(ErrorKind::kInvalidInput, "memory must be at least 1");
      }
      return {};
    };
    fs_ = make_db_filesystem(*store_, *watcher_, options);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    session_ = std::make_unique<p9::Session>(fs_, UniqueFd(sv[0]));
    thread_ = std::thread([this] { (void)session_->run(); });
    client_ = std::make_unique<TestClient>(UniqueFd(sv[1]));
    ASSERT_TRUE(client_->handshake(0));
  }
  void TearDown() override {
    session_->stop();
    thread_.join();
    session_.reset();
    watcher_.reset();
    (void)std::system(("rm -rf " + dir_).c_str());
  }

  Result<std::string> read_path(const std::string& path) {
    uint32_t fid = next_fid_++;
    TRY(client_->walk(0, fid, path));
    TRY(client_->call_as<p9::Rlopen>(p9::Tlopen{fid, 0}));
    std::string out;
    for (;;) {
      TRY_ASSIGN(auto r, client_->call_as<p9::Rread>(p9::Tread{fid, out.size(), 4096}));
      if (r.data.empty()) break;
      out += r.data;
    }
    TRY(client_->call_as<p9::Rclunk>(p9::Tclunk{fid}));
    return out;
  }
  Status write_path(const std::string& path, const std::string& data) {
    uint32_t fid = next_fid_++;
    TRY(client_->walk(0, fid, path));
    TRY(client_->call_as<p9::Rlopen>(p9::Tlopen{fid, p9::P9_DOTL_WRONLY | p9::P9_DOTL_TRUNC}));
    auto w = client_->call_as<p9::Rwrite>(p9::Twrite{fid, 0, data});
    TRY(client_->call_as<p9::Rclunk>(p9::Tclunk{fid}));
    if (!w) return fail(w.error());
    return {};
  }
  Status mkdir(const std::string& parent, const std::string& name) {
    uint32_t fid = next_fid_++;
    TRY(client_->walk(0, fid, parent));
    auto r = client_->call_as<p9::Rmkdir>(p9::Tmkdir{fid, name, 0755, 0});
    TRY(client_->call_as<p9::Rclunk>(p9::Tclunk{fid}));
    if (!r) return fail(r.error());
    return {};
  }
  std::string head() { return store_->head().value().value_or(""); }

  std::string dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<HeadWatcher> watcher_;
  std::shared_ptr<p9::FileSystem> fs_;
  std::unique_ptr<p9::Session> session_;
  std::thread thread_;
  std::unique_ptr<TestClient> client_;
  uint32_t next_fid_ = 10;
};

const std::string kMaster = "branch/master";

TEST_F(View9pTest, HeadAndReadOnlyTreeShowTheBranchHead) {
  auto h = read_path(kMaster + "/head");
  auto mem = read_path(kMaster + "/ro/" + kMemory);

  ASSERT_TRUE(h.has_value()) << h.error().message();
  EXPECT_EQ(*h, head() + "\n");
  ASSERT_TRUE(mem.has_value());
  EXPECT_EQ(*mem, "2\n");
}

TEST_F(View9pTest, ReadOnlyTreeRefusesWrites) {
  auto w = write_path(kMaster + "/ro/" + kMemory, "4\n");

  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), EROFS);
}

TEST_F(View9pTest, TransactionCommitIsOneCommitPinnedToItsBase) {
  std::string before = head();
  ASSERT_TRUE(mkdir(kMaster + "/transactions", "t1"));
  ASSERT_TRUE(write_path(kMaster + "/transactions/t1/rw/" + kMemory, "4\n"));
  ASSERT_TRUE(write_path(kMaster + "/transactions/t1/msg", "set memory from 9P\n"));

  auto committed = write_path(kMaster + "/transactions/t1/ctl", "commit\n");
  auto state = read_path(kMaster + "/transactions/t1/ctl");

  ASSERT_TRUE(committed.has_value()) << committed.error().message();
  std::string after = head();
  EXPECT_NE(after, before);
  EXPECT_EQ(store_->describe(after)->parents, std::vector<std::string>{before});
  EXPECT_EQ(store_->describe(after)->summary, "set memory from 9P");
  EXPECT_EQ(store_->read(kMemory).value(), std::optional<std::string>("4\n"));
  EXPECT_EQ(*read_path(kMaster + "/ro/" + kMemory), "4\n");
  EXPECT_EQ(*state, "committed " + after + "\n");
}

TEST_F(View9pTest, ConflictingTransactionFailsAndWritesNothing) {
  ASSERT_TRUE(mkdir(kMaster + "/transactions", "a"));
  ASSERT_TRUE(mkdir(kMaster + "/transactions", "b"));
  ASSERT_TRUE(write_path(kMaster + "/transactions/a/rw/" + kMemory, "4\n"));
  ASSERT_TRUE(write_path(kMaster + "/transactions/b/rw/" + kMemory, "8\n"));
  ASSERT_TRUE(write_path(kMaster + "/transactions/a/ctl", "commit"));
  std::string after_a = head();

  auto b = write_path(kMaster + "/transactions/b/ctl", "commit");

  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().code(), ESTALE);
  EXPECT_EQ(head(), after_a);
  EXPECT_EQ(store_->read(kMemory).value(), std::optional<std::string>("4\n"));
  EXPECT_EQ(read_path(kMaster + "/transactions/b/ctl")->substr(0, 6), "error:");
}

TEST_F(View9pTest, InvalidValueIsRefusedWithEinval) {
  std::string before = head();
  ASSERT_TRUE(mkdir(kMaster + "/transactions", "bad"));
  ASSERT_TRUE(write_path(kMaster + "/transactions/bad/rw/" + kMemory, "0\n"));

  auto c = write_path(kMaster + "/transactions/bad/ctl", "commit");

  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), EINVAL);
  EXPECT_EQ(head(), before);
  EXPECT_NE(read_path(kMaster + "/transactions/bad/ctl")->find("memory must be at least 1"),
            std::string::npos);
}

TEST_F(View9pTest, HeadLiveReportsANewCommit) {
  uint32_t fid = 50;
  ASSERT_TRUE(client_->walk(0, fid, kMaster + "/head.live"));
  ASSERT_TRUE(client_->call_as<p9::Rlopen>(p9::Tlopen{fid, 0}));
  auto first = client_->call_as<p9::Rread>(p9::Tread{fid, 0, 4096});
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->data, head() + "\n");
  // A read with nothing new waits; a commit by another writer answers it.
  uint16_t tag = client_->new_tag();
  ASSERT_TRUE(client_->send(tag, p9::Tread{fid, first->data.size(), 4096}));
  EXPECT_TRUE(client_->quiet_for(200));

  Transaction t;
  t.change.puts[kMemory] = "6\n";
  t.message = "set memory=6";
  ASSERT_TRUE(store_->commit(t));
  auto reply = client_->receive(7000);

  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->tag, tag);
  auto data = TestClient::as<p9::Rread>(std::move(reply->message));
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->data, head() + "\n");
}

TEST_F(View9pTest, TreeLiveChangesOnlyWhenItsPathChanges) {
  uint32_t fid = 60;
  ASSERT_TRUE(client_->walk(0, fid,
                            kMaster + "/watch/com.docker.driver.amd64-linux.node/memory.node/"
                                      "tree.live"));
  ASSERT_TRUE(client_->call_as<p9::Rlopen>(p9::Tlopen{fid, 0}));
  auto first = client_->call_as<p9::Rread>(p9::Tread{fid, 0, 4096});
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->data.size(), 17u);  // 16 hex digits and a newline
  uint16_t tag = client_->new_tag();
  ASSERT_TRUE(client_->send(tag, p9::Tread{fid, 17, 4096}));

  Transaction other;
  other.change.puts["com.docker.driver.amd64-linux/ncpu"] = "1\n";
  ASSERT_TRUE(store_->commit(other));
  watcher_->check();
  bool quiet = client_->quiet_for(300);
  Transaction mine;
  mine.change.puts[kMemory] = "3\n";
  ASSERT_TRUE(store_->commit(mine));
  watcher_->check();
  auto reply = client_->receive(5000);

  EXPECT_TRUE(quiet);  // ncpu changed, not memory
  ASSERT_TRUE(reply.has_value());
  auto data = TestClient::as<p9::Rread>(std::move(reply->message));
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->data.size(), 17u);
  EXPECT_NE(data->data, first->data);
}

TEST(TreeHash, CoversAFileOrADirectoryAndIsEmptyForNothing) {
  Files f = {{"a/b", "1"}, {"a/c", "2"}, {"a.x", "3"}, {"d", "4"}};
  Files g = f;
  g["a.x"] = "changed";

  EXPECT_EQ(tree_hash(f, "a"), tree_hash(g, "a"));  // "a.x" is not under "a"
  EXPECT_NE(tree_hash(f, ""), tree_hash(g, ""));
  EXPECT_NE(tree_hash(f, "a/b"), tree_hash(f, "a/c"));
  EXPECT_EQ(tree_hash(f, "zzz"), "");
}

}  // namespace
}  // namespace pinata::db
