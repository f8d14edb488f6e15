#include "db/store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace pinata::db {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/pinata-db-test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// Runs a shell command; returns its exit status and stdout.
std::pair<int, std::string> sh(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string git(const std::string& repo) {
  return "GIT_CONFIG_NOSYSTEM=1 HOME=/nonexistent git -C '" + repo +
         "' -c user.name=tester -c user.email=tester@localhost ";
}

size_t count_files(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

const Files kSeed = {{"cfg/memory", "2\n"}, {"cfg/ncpu", "2\n"}, {"cfg/etc/hostname", "pinata\n"}};

class StoreTest : public ::testing::Test {
 protected:
  std::string db() const { return tmp_.path() + "/database"; }
  Store make(StoreOptions options = {}) {
    auto s = Store::open_or_init(db(), kSeed, options);
    EXPECT_TRUE(s) << s.error().message();
    return std::move(*s);
  }
  Transaction set(const std::string& path, const std::string& value) {
    Transaction t;
    t.change.puts[path] = value;
    t.message = "set " + path;
    return t;
  }
  TempDir tmp_;
};

TEST_F(StoreTest, InitCreatesOneCommitOfTheSeedByPinataDb) {
  Store s = make();
  auto head = s.head();
  ASSERT_TRUE(head && *head);
  auto files = s.read_tree("");
  ASSERT_TRUE(files);
  EXPECT_EQ(*files, kSeed);
  auto [rc, log] = sh(git(db()) + "log --format='%an <%ae>|%s' master");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(log, "pinata-db <pinata-db@localhost>|initial settings\n");
  // The work tree starts checked out, so a user sees the files.
  EXPECT_EQ(slurp(db() + "/cfg/memory"), "2\n");
  EXPECT_EQ(sh(git(db()) + "fsck --strict 2>&1").first, 0);
}

TEST_F(StoreTest, OpenOfAMissingDatabaseIsNotFoundAndCreatesNothing) {
  auto s = Store::open(db());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kNotFound);
  EXPECT_FALSE(fs::exists(db()));
}

TEST_F(StoreTest, ReopeningKeepsTheExistingHistory) {
  std::string first = **make().head();
  Store again = make();
  EXPECT_EQ(**again.head(), first);
}

TEST_F(StoreTest, AnEmptyDirectoryBecomesTheDatabase) {
  fs::create_directories(db());
  Store s = make();
  EXPECT_EQ(**s.read("cfg/ncpu"), "2\n");
}

TEST_F(StoreTest, ConcurrentFirstUsesAgreeOnOneRepository) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 6; i++) {
    threads.emplace_back([&] {
      if (Store::open_or_init(db(), kSeed)) ok++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 6);
  EXPECT_EQ(sh(git(db()) + "rev-list --count master").second, "1\n");
  // No temporary repository is left behind.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(tmp_.path())) entries++;
  EXPECT_EQ(entries, 1u);
}

TEST_F(StoreTest, ATransactionOfSeveralKeysIsOneCommit) {
  Store s = make();
  std::string before = **s.head();
  Transaction t;
  t.change.puts = {{"cfg/hypervisor", "qemu\n"}, {"cfg/memory", "4\n"}, {"cfg/ncpu", "3\n"}};
  t.change.deletes = {"cfg/etc/hostname"};
  t.message = "set hypervisor=qemu memory=4 ncpu=3";
  auto r = s.commit(t);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->created);
  EXPECT_EQ(**s.head(), r->id);
  EXPECT_EQ(sh(git(db()) + "rev-list --count master").second, "2\n");
  EXPECT_EQ(sh(git(db()) + "log -1 --format=%P master").second, before + "\n");
  EXPECT_EQ(sh(git(db()) + "log -1 --format=%s master").second, t.message + "\n");
  EXPECT_EQ(**s.read("cfg/memory"), "4\n");
  EXPECT_EQ(**s.read("cfg/ncpu"), "3\n");
  EXPECT_FALSE(*s.read("cfg/etc/hostname"));
  // The emptied directory is gone from the tree, as git itself would have it.
  EXPECT_EQ(sh(git(db()) + "ls-tree --name-only master cfg/").second,
            "cfg/hypervisor\ncfg/memory\ncfg/ncpu\n");
  EXPECT_EQ(sh(git(db()) + "fsck --strict 2>&1").first, 0);
}

TEST_F(StoreTest, ReadsAtAnOlderCommit) {
  Store s = make();
  std::string first = **s.head();
  ASSERT_TRUE(s.commit(set("cfg/memory", "8\n")));
  EXPECT_EQ(**s.read("cfg/memory", first), "2\n");
  EXPECT_EQ(**s.read("cfg/memory", first.substr(0, 10)), "2\n");
  EXPECT_EQ(**s.read("cfg/memory"), "8\n");
  EXPECT_EQ(s.read_tree("cfg/etc")->size(), 1u);
  EXPECT_TRUE(s.read_tree("nothing/here")->empty());
  auto bad = s.read("cfg/memory", "0123456789abcdef");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind(), ErrorKind::kNotFound);
}

TEST_F(StoreTest, AChangeThatChangesNothingMakesNoCommit) {
  Store s = make();
  std::string head = **s.head();
  auto r = s.commit(set("cfg/memory", "2\n"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->created);
  EXPECT_EQ(r->id, head);
  EXPECT_EQ(**s.head(), head);
}

TEST_F(StoreTest, APinnedParentThatMovedIsAConflict) {
  Store s = make();
  std::string base = **s.head();
  ASSERT_TRUE(s.commit(set("cfg/memory", "3\n")));
  std::string moved = **s.head();
  Transaction t = set("cfg/ncpu", "4\n");
  t.parent = base;
  auto r = s.commit(t);
  ASSERT_FALSE(r);
  EXPECT_TRUE(is_conflict(r.error()));
  EXPECT_NE(r.error().message().find("conflict"), std::string::npos);
  EXPECT_EQ(**s.head(), moved);
  EXPECT_EQ(**s.read("cfg/ncpu"), "2\n");
  // Pinned to the current head it goes through.
  t.parent = moved;
  auto ok = s.commit(t);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_TRUE(ok->created);
}

TEST_F(StoreTest, AnUnpinnedChangeIsReappliedOnTheNewHead) {
  Store s = make();
  Store other = make();
  int calls = 0;
  auto r = s.update(
      [&](const Files& base) -> Result<Change> {
        if (++calls == 1) {
          // Another writer commits between our read of the head and our swap.
          EXPECT_TRUE(other.commit(set("cfg/ncpu", "7\n")));
        } else {
          EXPECT_EQ(base.at("cfg/ncpu"), "7\n");  // recomputed on the new head
        }
        return Change{{{"cfg/memory", "5\n"}}, {}, ""};
      },
      "set memory=5");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->attempts, 2);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(**s.read("cfg/memory"), "5\n");
  EXPECT_EQ(**s.read("cfg/ncpu"), "7\n");
  EXPECT_EQ(sh(git(db()) + "rev-list --count master").second, "3\n");
}

TEST_F(StoreTest, ACheckCanRefuseTheResultAndNothingIsWritten) {
  Store s = make();
  std::string head = **s.head();
  Transaction t = set("cfg/memory", "100\n");
  t.check = [](const Files&, const Files& result) -> Status {
    if (result.at("cfg/memory") == "100\n") return fail(ErrorKind::kInvalidInput, "too much");
    return {};
  };
  auto r = s.commit(t);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "too much");
  EXPECT_EQ(**s.head(), head);
}

TEST_F(StoreTest, ConcurrentThreadsLoseNoUpdate) {
  Store s = make();
  constexpr int kThreads = 8;
  constexpr int kEach = 10;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      // Each thread its own Store (as separate clients would) and its own key.
      auto mine = Store::open(db());
      if (!mine) return void(failures++);
      for (int i = 0; i < kEach; i++) {
        std::string v = "t" + std::to_string(t) + "-" + std::to_string(i) + "\n";
        auto r = mine->commit(set("cfg/thread" + std::to_string(t), v));
        if (!r || !r->created) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(sh(git(db()) + "rev-list --count master").second,
            std::to_string(1 + kThreads * kEach) + "\n");
  for (int t = 0; t < kThreads; t++) {
    EXPECT_EQ(**s.read("cfg/thread" + std::to_string(t)),
              "t" + std::to_string(t) + "-" + std::to_string(kEach - 1) + "\n");
  }
  EXPECT_EQ(sh(git(db()) + "fsck --strict 2>&1").first, 0);
}

TEST_F(StoreTest, ConcurrentProcessesLoseNoUpdate) {
  make();
  constexpr int kProcs = 6;
  constexpr int kEach = 10;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; p++) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int bad = 0;
      auto mine = Store::open(db());
      if (!mine) ::_exit(100);
      for (int i = 0; i < kEach; i++) {
        std::string v = "p" + std::to_string(p) + "-" + std::to_string(i) + "\n";
        Transaction t;
        t.change.puts["cfg/proc" + std::to_string(p)] = v;
        t.message = "set proc" + std::to_string(p) + "=" + v;
        auto r = mine->commit(t);
        if (!r || !r->created) bad++;
      }
      ::_exit(bad);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  EXPECT_EQ(sh(git(db()) + "rev-list --count master").second,
            std::to_string(1 + kProcs * kEach) + "\n");
  auto s = Store::open(db());
  ASSERT_TRUE(s);
  for (int p = 0; p < kProcs; p++) {
    EXPECT_EQ(**s->read("cfg/proc" + std::to_string(p)),
              "p" + std::to_string(p) + "-" + std::to_string(kEach - 1) + "\n");
  }
  EXPECT_EQ(sh(git(db()) + "fsck --strict 2>&1").first, 0);
}

TEST_F(StoreTest, ACommitMadeWithTheGitCliIsPickedUp) {
  Store s = make();
  ASSERT_TRUE(s.commit(set("cfg/ncpu", "3\n")));  // the work tree is now behind master
  ASSERT_EQ(sh(git(db()) + "reset -q --hard").first, 0);
  spit(db() + "/cfg/memory", "6\n");
  ASSERT_EQ(sh(git(db()) + "commit -q -am 'by hand'").first, 0);
  EXPECT_EQ(**s.read("cfg/memory"), "6\n");
  EXPECT_EQ(**s.read("cfg/ncpu"), "3\n");
  ASSERT_TRUE(s.commit(set("cfg/ncpu", "4\n")));
  EXPECT_EQ(sh(git(db()) + "log --format=%s master").second,
            "set cfg/ncpu\nby hand\nset cfg/ncpu\ninitial settings\n");
}

TEST_F(StoreTest, PackedRefsAreFollowed) {
  Store s = make();
  ASSERT_TRUE(s.commit(set("cfg/ncpu", "3\n")));
  ASSERT_EQ(sh(git(db()) + "pack-refs --all --prune").first, 0);
  ASSERT_FALSE(fs::exists(db() + "/.git/refs/heads/master"));
  EXPECT_EQ(**s.read("cfg/ncpu"), "3\n");
  ASSERT_TRUE(s.commit(set("cfg/ncpu", "4\n")));
  EXPECT_EQ(sh(git(db()) + "show master:cfg/ncpu").second, "4\n");
}

TEST_F(StoreTest, AGarbageHeadIsAClearError) {
  make();
  spit(db() + "/.git/HEAD", "\x01\x02garbage");
  auto s = Store::open(db());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kCorrupt);
  EXPECT_NE(s.error().message().find(db() + ": the configuration database is damaged"),
            std::string::npos);
  EXPECT_NE(s.error().message().find("fsck"), std::string::npos);
  // open_or_init never replaces a damaged repository.
  EXPECT_FALSE(Store::open_or_init(db(), kSeed));
  EXPECT_EQ(slurp(db() + "/.git/HEAD"), "\x01\x02garbage");
}

TEST_F(StoreTest, AGarbageBranchRefIsAClearError) {
  make();
  spit(db() + "/.git/refs/heads/master", "not a hash\n");
  auto s = Store::open(db());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), ErrorKind::kCorrupt);
  EXPECT_NE(s.error().message().find("refs/heads/master"), std::string::npos);
}

TEST_F(StoreTest, ATruncatedObjectIsAClearErrorAndNothingIsWritten) {
  Store s = make();
  std::string tree = sh(git(db()) + "rev-parse master^{tree}").second;
  tree.pop_back();
  std::string object = db() + "/.git/objects/" + tree.substr(0, 2) + "/" + tree.substr(2);
  ASSERT_TRUE(fs::exists(object));
  fs::permissions(object, fs::perms::owner_write, fs::perm_options::add);
  std::string data = slurp(object);
  spit(object, data.substr(0, data.size() / 2));
  size_t files_before = count_files(db() + "/.git");
  std::string head = **s.head();

  auto r = s.commit(set("cfg/memory", "4\n"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kCorrupt);
  EXPECT_NE(r.error().message().find("damaged"), std::string::npos);
  EXPECT_EQ(**s.head(), head);
  EXPECT_EQ(count_files(db() + "/.git"), files_before);
  auto read = s.read("cfg/memory");
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().kind(), ErrorKind::kCorrupt);
}

TEST_F(StoreTest, AGarbageObjectIsAClearError) {
  Store s = make();
  std::string blob = sh(git(db()) + "rev-parse master:cfg/memory").second;
  blob.pop_back();
  std::string object = db() + "/.git/objects/" + blob.substr(0, 2) + "/" + blob.substr(2);
  fs::permissions(object, fs::perms::owner_write, fs::perm_options::add);
  spit(object, "this is not zlib data");
  auto read = s.read("cfg/memory");
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().kind(), ErrorKind::kCorrupt);
  EXPECT_FALSE(s.commit(set("cfg/ncpu", "4\n")));
}

TEST_F(StoreTest, ADirectoryThatIsNotARepositoryIsRefusedAndLeftAlone) {
  fs::create_directories(db());
  spit(db() + "/notes.txt", "precious\n");
  auto s = Store::open_or_init(db(), kSeed);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("is not a git repository"), std::string::npos);
  EXPECT_NE(s.error().message().find("move it aside"), std::string::npos);
  EXPECT_EQ(slurp(db() + "/notes.txt"), "precious\n");
  EXPECT_FALSE(fs::exists(db() + "/.git"));
}

TEST_F(StoreTest, AStaleRefLockFailsAfterTheTimeoutNamingTheLock) {
  Store s = make(StoreOptions{.lock_timeout = std::chrono::milliseconds(300)});
  std::string head = **s.head();
  std::string lock = db() + "/.git/refs/heads/master.lock";
  spit(lock, "");
  auto start = std::chrono::steady_clock::now();
  auto r = s.commit(set("cfg/memory", "4\n"));
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_TRUE(is_locked(r.error()));
  EXPECT_NE(r.error().message().find(lock + " exists"), std::string::npos);
  EXPECT_NE(r.error().message().find("remove that file"), std::string::npos);
  EXPECT_GE(waited, std::chrono::milliseconds(300));
  EXPECT_LT(waited, std::chrono::seconds(10));
  EXPECT_EQ(**s.head(), head);
  EXPECT_TRUE(fs::exists(lock));  // never removed by pinata
  // Reads are not blocked by locks.
  EXPECT_EQ(**s.read("cfg/memory"), "2\n");
}

TEST_F(StoreTest, AShortLivedLockIsWaitedFor) {
  Store s = make(StoreOptions{.lock_timeout = std::chrono::seconds(5)});
  std::string lock = db() + "/.git/refs/heads/master.lock";
  spit(lock, "");
  std::thread unlock([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    fs::remove(lock);
  });
  auto r = s.commit(set("cfg/memory", "4\n"));
  unlock.join();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->created);
  EXPECT_GT(r->attempts, 1);
}

TEST_F(StoreTest, ReadsGoOnWhileACommitWaitsForALock) {
  Store s = make(StoreOptions{.lock_timeout = std::chrono::seconds(2)});
  std::string lock = db() + "/.git/refs/heads/master.lock";
  spit(lock, "");
  std::atomic<bool> done{false};
  std::thread writer([&] {
    auto r = s.commit(set("cfg/memory", "4\n"));
    EXPECT_FALSE(r);
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // The same Store serves a read while its writer is still waiting for the lock.
  auto read = s.read("cfg/memory");
  EXPECT_FALSE(done.load());
  writer.join();
  ASSERT_TRUE(read);
  EXPECT_EQ(**read, "2\n");
}

TEST_F(StoreTest, AGitCommandHoldingTheIndexIsReported) {
  Store s = make(StoreOptions{.lock_timeout = std::chrono::milliseconds(200)});
  std::string head = **s.head();
  for (const char* name : {"index.lock", "HEAD.lock"}) {
    std::string lock = db() + "/.git/" + name;
    spit(lock, "");
    auto r = s.commit(set("cfg/memory", "4\n"));
    ASSERT_FALSE(r);
    EXPECT_TRUE(is_locked(r.error()));
    EXPECT_NE(r.error().message().find(lock), std::string::npos);
    EXPECT_EQ(**s.head(), head);
    fs::remove(lock);
  }
  EXPECT_TRUE(s.commit(set("cfg/memory", "4\n")));
}

TEST_F(StoreTest, HistoryListsTheCommitsThatChangedAPath) {
  Store s = make();
  ASSERT_TRUE(s.commit(set("cfg/memory", "3\n")));
  ASSERT_TRUE(s.commit(set("cfg/ncpu", "3\n")));
  ASSERT_TRUE(s.commit(set("cfg/memory", "4\n")));
  auto h = s.history("cfg/memory", 0);
  ASSERT_TRUE(h) << h.error().message();
  ASSERT_EQ(h->size(), 3u);
  EXPECT_EQ((*h)[0].summary, "set cfg/memory");
  EXPECT_EQ((*h)[1].summary, "set cfg/memory");
  EXPECT_EQ((*h)[2].summary, "initial settings");
  EXPECT_EQ((*h)[0].author, "pinata-db <pinata-db@localhost>");
  EXPECT_GT((*h)[0].time, 0);
  EXPECT_EQ(s.history(std::nullopt, 0)->size(), 4u);
  EXPECT_EQ(s.history(std::nullopt, 2)->size(), 2u);
  EXPECT_EQ(s.history("cfg/nothing", 0)->size(), 0u);
  auto changed = s.changed_paths((*h)[0].id);
  ASSERT_TRUE(changed);
  EXPECT_EQ(*changed, std::vector<std::string>{"cfg/memory"});
}

TEST_F(StoreTest, RevertUndoesOneCommitInANewCommit) {
  Store s = make();
  Transaction t;
  t.change.puts = {{"cfg/memory", "4\n"}, {"cfg/new", "x\n"}};
  t.message = "set memory and new";
  auto c = s.commit(t);
  ASSERT_TRUE(c);
  ASSERT_TRUE(s.commit(set("cfg/ncpu", "5\n")));
  auto r = s.revert(c->id.substr(0, 8), {});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->created);
  EXPECT_EQ(**s.read("cfg/memory"), "2\n");
  EXPECT_FALSE(*s.read("cfg/new"));
  EXPECT_EQ(**s.read("cfg/ncpu"), "5\n");  // later commits stay
  EXPECT_EQ(sh(git(db()) + "log -1 --format=%s master").second, "Revert \"set memory and new\"\n");
  // Reverting again changes nothing.
  auto again = s.revert(c->id, {});
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->created);
}

TEST_F(StoreTest, RevertOnlyTouchesFilteredPaths) {
  Store s = make();
  Transaction t;
  t.change.puts = {{"cfg/memory", "4\n"}, {"other/file", "x\n"}};
  t.message = "mixed";
  auto c = s.commit(t);
  ASSERT_TRUE(c);
  auto r = s.revert(c->id, [](const std::string& p) { return p.rfind("cfg/", 0) == 0; });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(**s.read("cfg/memory"), "2\n");
  EXPECT_EQ(**s.read("other/file"), "x\n");
}

TEST_F(StoreTest, RevertOfAPathChangedSinceIsAConflict) {
  Store s = make();
  auto c = s.commit(set("cfg/memory", "4\n"));
  ASSERT_TRUE(c);
  ASSERT_TRUE(s.commit(set("cfg/memory", "8\n")));
  std::string head = **s.head();
  auto r = s.revert(c->id, {});
  ASSERT_FALSE(r);
  EXPECT_TRUE(is_conflict(r.error()));
  EXPECT_NE(r.error().message().find("cfg/memory was changed again"), std::string::npos);
  EXPECT_EQ(**s.head(), head);
}

TEST_F(StoreTest, RevertRefusesTheInitialCommitAndUnknownCommits) {
  Store s = make();
  std::string first = **s.head();
  auto r = s.revert(first, {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("initial commit"), std::string::npos);
  auto missing = s.revert("deadbeef", {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
}

TEST_F(StoreTest, AFileCannotBecomeADirectory) {
  Store s = make();
  auto r = s.commit(set("cfg/memory/sub", "x\n"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("cfg/memory is a file"), std::string::npos);
  auto r2 = s.commit(set("cfg/etc", "x\n"));
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message().find("cfg/etc is a directory"), std::string::npos);
}

TEST_F(StoreTest, InvalidPathsAreRefused) {
  Store s = make();
  for (const char* p : {"", "/abs", "a//b", "a/../b", ".git/config", "a/.GIT/x", "trailing/"}) {
    EXPECT_FALSE(s.commit(set(p, "x\n"))) << p;
  }
}

TEST_F(StoreTest, WatchPathsAreTheBranchDirectoryAndTheGitDirectory) {
  Store s = make();
  auto paths = s.watch_paths();
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(paths[0], db() + "/.git/refs/heads");
  EXPECT_EQ(paths[1], db() + "/.git");
}

}  // namespace
}  // namespace pinata::db
