#include "p9/server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <thread>

#include "p9/memfs.h"
#include "p9/testing/client.h"

namespace pinata::p9 {
namespace {

using testing::TestClient;

// A file whose reads wait until the test answers them, counting opens, closes and cancels.
struct Parking {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Responder> parked;
  int opens = 0;
  int closes = 0;
  int cancels = 0;

  bool wait_parked(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5), [&] { return parked.size() >= n; });
  }
  Responder at(size_t i) {
    std::lock_guard lock(mu);
    return parked.at(i);
  }
  int count(int Parking::*field) {
    std::lock_guard lock(mu);
    return this->*field;
  }
};

class ParkedFile : public OpenFile {
 public:
  explicit ParkedFile(std::shared_ptr<Parking> p) : p_(std::move(p)) {}
  ~ParkedFile() override {
    std::lock_guard lock(p_->mu);
    p_->closes++;
  }
  void read(uint64_t, uint32_t, Responder r) override {
    {
      std::lock_guard lock(p_->mu);
      p_->parked.push_back(r);
    }
    p_->cv.notify_all();
    auto p = p_;
    r.on_cancel([p] {
      std::lock_guard lock(p->mu);
      p->cancels++;
    });
  }

 private:
  std::shared_ptr<Parking> p_;
};

class ParkingNode : public Node {
 public:
  explicit ParkingNode(std::shared_ptr<Parking> p) : p_(std::move(p)) {}
  Qid qid() const override { return Qid{P9_QTFILE, 0, path_}; }
  Result<Attr> getattr() override {
    Attr a;
    a.mode = S_IFREG | 0444;
    return a;
  }
  Result<std::unique_ptr<OpenFile>> open(uint32_t) override {
    std::lock_guard lock(p_->mu);
    p_->opens++;
    return std::unique_ptr<OpenFile>(std::make_unique<ParkedFile>(p_));
  }

 private:
  std::shared_ptr<Parking> p_;
  const uint64_t path_ = allocate_qid_path();
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = MemDir::create();
    hello = MemFile::create("hello world\n");
    ASSERT_TRUE(root->add("hello", hello));
    dir = *root->add_dir("dir");
    for (int i = 0; i < 50; i++) {
      char name[16];
      std::snprintf(name, sizeof name, "file%02d", i);
      ASSERT_TRUE(dir->add(name, MemFile::create(name)));
    }
    live = StreamFile::create(StreamFile::Start::kEmpty);
    ASSERT_TRUE(root->add("live", live));
    parking = std::make_shared<Parking>();
    ASSERT_TRUE(root->add("parked", std::make_shared<ParkingNode>(parking)));
    fs = std::make_shared<MemFs>(root);
  }

  void TearDown() override { stop(); }

  // Starts a session over a socketpair and connects the test client to it.
  void start(SessionOptions options = {}, uint32_t client_msize = 64 * 1024) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    session = std::make_unique<Session>(fs, UniqueFd(sv[0]), options);
    thread = std::thread([this] { result = session->run(); });
    client = std::make_unique<TestClient>(UniqueFd(sv[1]), client_msize);
  }
  void start_attached(SessionOptions options = {}) {
    start(options);
    ASSERT_TRUE(client->handshake(0));
  }
  // Waits for run() to return.
  void join() {
    if (thread.joinable()) thread.join();
  }
  void stop() {
    if (session) session->stop();
    join();
  }
  // Walks fid 0 → `fid` along `path` and opens it with `flags`.
  void open(uint32_t fid, const std::string& path, uint32_t flags) {
    ASSERT_TRUE(client->walk(0, fid, path));
    auto r = client->call_as<Rlopen>(Tlopen{fid, flags});
    ASSERT_TRUE(r.has_value()) << r.error().message();
  }
  int error_of(const TMessage& m) {
    auto r = client->call(m);
    if (!r) return -1;
    auto* e = std::get_if<Rlerror>(&*r);
    return e ? static_cast<int>(e->ecode) : 0;
  }

  std::shared_ptr<MemDir> root;
  std::shared_ptr<MemFile> hello;
  std::shared_ptr<MemDir> dir;
  std::shared_ptr<StreamFile> live;
  std::shared_ptr<Parking> parking;
  std::shared_ptr<MemFs> fs;
  std::unique_ptr<Session> session;
  std::thread thread;
  Status result;
  std::unique_ptr<TestClient> client;
};

// ---- version and attach ----------------------------------------------------------------------

TEST_F(ServerTest, NegotiatesTheSmallerMsize) {
  start();

  auto big = client->call_as<Rversion>(Tversion{4 << 20, "9P2000.L"});
  auto small = client->call_as<Rversion>(Tversion{8192, "9P2000.L"});

  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->msize, kDefaultMaxMsize);
  EXPECT_EQ(big->version, "9P2000.L");
  ASSERT_TRUE(small.has_value());
  EXPECT_EQ(small->msize, 8192u);
}

TEST_F(ServerTest, AnswersUnknownToOtherVersionsAndRefusesToServeThem) {
  start();

  auto v = client->call_as<Rversion>(Tversion{8192, "9P2000.u"});

  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->version, "unknown");
  EXPECT_EQ(error_of(Tattach{0, kNoFid, "u", "", kNoUname}), EPROTO);
}

TEST_F(ServerTest, RefusesAMsizeBelowTheMinimum) {
  start();
  auto v = client->call_as<Rversion>(Tversion{1024, "9P2000.L"});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->version, "unknown");
}

TEST_F(ServerTest, RefusesRequestsBeforeVersion) {
  start();
  EXPECT_EQ(error_of(Tattach{0, kNoFid, "u", "", kNoUname}), EPROTO);
}

TEST_F(ServerTest, AttachAnswersTheRootQid) {
  start();
  ASSERT_TRUE(client->call_as<Rversion>(Tversion{65536, "9P2000.L"}));

  auto a = client->call_as<Rattach>(Tattach{0, kNoFid, "root", "", kNoUname});

  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->qid, root->qid());
  EXPECT_EQ(error_of(Tattach{0, kNoFid, "root", "", kNoUname}), EBADF);  // fid 0 in use
}

TEST_F(ServerTest, AuthIsNotRequired) {
  start_attached();
  EXPECT_EQ(error_of(Tauth{9, "u", "", kNoUname}), EOPNOTSUPP);
}

// ---- walk -------------------------------------------------------------------------------------

TEST_F(ServerTest, WalkAnswersAQidPerName) {
  start_attached();

  auto qids = client->walk(0, 1, "dir/file07");

  ASSERT_TRUE(qids.has_value());
  ASSERT_EQ(qids->size(), 2u);
  EXPECT_EQ((*qids)[0], dir->qid());
  EXPECT_EQ((*qids)[1], dir->get("file07")->qid());
}

TEST_F(ServerTest, WalkOfNoNamesClonesTheFid) {
  start_attached();

  auto qids = client->walk(0, 1, "");
  auto attr = client->call_as<Rgetattr>(Tgetattr{1, P9_GETATTR_BASIC});

  ASSERT_TRUE(qids.has_value());
  EXPECT_TRUE(qids->empty());
  ASSERT_TRUE(attr.has_value());
  EXPECT_EQ(attr->stat.qid, root->qid());
}

TEST_F(ServerTest, PartialWalkAnswersTheQidsWalkedAndMakesNoFid) {
  start_attached();

  auto qids = client->walk(0, 1, "dir/missing/deeper");

  ASSERT_TRUE(qids.has_value());
  ASSERT_EQ(qids->size(), 1u);
  EXPECT_EQ((*qids)[0], dir->qid());
  EXPECT_EQ(error_of(Tgetattr{1, P9_GETATTR_BASIC}), EBADF);
}

TEST_F(ServerTest, WalkWhoseFirstNameIsMissingIsEnoent) {
  start_attached();
  EXPECT_EQ(error_of(Twalk{0, 1, {"missing"}}), ENOENT);
}

TEST_F(ServerTest, WalkThroughAFileIsEnotdir) {
  start_attached();
  EXPECT_EQ(error_of(Twalk{0, 1, {"hello", "x"}}), 0);  // partial: one qid
  EXPECT_EQ(error_of(Twalk{0, 2, {}}), 0);
  ASSERT_TRUE(client->walk(0, 3, "hello"));
  EXPECT_EQ(error_of(Twalk{3, 4, {"x"}}), ENOTDIR);
}

TEST_F(ServerTest, WalkOfDotDotNeverLeavesTheAttachRoot) {
  start_attached();

  auto up = client->walk(0, 1, "..");
  auto down_up = client->walk(0, 2, "dir/..");

  ASSERT_TRUE(up.has_value());
  EXPECT_EQ(up->at(0), root->qid());
  ASSERT_TRUE(down_up.has_value());
  EXPECT_EQ(down_up->at(1), root->qid());
}

TEST_F(ServerTest, WalkToANewfidInUseIsEbadf) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, "dir"));
  EXPECT_EQ(error_of(Twalk{0, 1, {"hello"}}), EBADF);
}

TEST_F(ServerTest, WalkInPlaceMovesTheFid) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, ""));

  ASSERT_TRUE(client->walk(1, 1, "dir"));

  auto attr = client->call_as<Rgetattr>(Tgetattr{1, P9_GETATTR_BASIC});
  ASSERT_TRUE(attr.has_value());
  EXPECT_EQ(attr->stat.qid, dir->qid());
}

TEST_F(ServerTest, RejectsWalkOfMoreThanSixteenNames) {
  start_attached();
  Twalk w{0, 1, {}};
  for (int i = 0; i < 17; i++) w.names.push_back("dir");
  EXPECT_EQ(error_of(w), EINVAL);
}

// ---- open, read, write, clunk -------------------------------------------------------------------

TEST_F(ServerTest, OpensReadsWritesAndClunksAFile) {
  start_attached();
  open(1, "hello", P9_DOTL_RDWR);

  auto first = client->call_as<Rread>(Tread{1, 0, 100});
  auto written = client->call_as<Rwrite>(Twrite{1, 6, "there\n"});
  auto second = client->call_as<Rread>(Tread{1, 0, 100});
  auto eof = client->call_as<Rread>(Tread{1, 12, 100});
  auto clunk = client->call_as<Rclunk>(Tclunk{1});

  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->data, "hello world\n");
  ASSERT_TRUE(written.has_value());
  EXPECT_EQ(written->count, 6u);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->data, "hello there\n");
  ASSERT_TRUE(eof.has_value());
  EXPECT_EQ(eof->data, "");
  EXPECT_TRUE(clunk.has_value());
  EXPECT_EQ(error_of(Tread{1, 0, 100}), EBADF);
  EXPECT_EQ(hello->contents(), "hello there\n");
}

TEST_F(ServerTest, ReadAndWriteRespectTheOpenMode) {
  start_attached();
  open(1, "hello", P9_DOTL_WRONLY);
  open(2, "hello", P9_DOTL_RDONLY);
  ASSERT_TRUE(client->walk(0, 3, "hello"));

  EXPECT_EQ(error_of(Tread{1, 0, 10}), EBADF);
  EXPECT_EQ(error_of(Twrite{2, 0, "x"}), EBADF);
  EXPECT_EQ(error_of(Tread{3, 0, 10}), EBADF);            // not open
  EXPECT_EQ(error_of(Tlopen{2, P9_DOTL_RDONLY}), EBADF);  // already open
}

TEST_F(ServerTest, DirectoriesOpenOnlyForReading) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, "dir"));
  EXPECT_EQ(error_of(Tlopen{1, P9_DOTL_WRONLY}), EISDIR);
  ASSERT_TRUE(client->call_as<Rlopen>(Tlopen{1, P9_DOTL_RDONLY | P9_DOTL_DIRECTORY}));
  EXPECT_EQ(error_of(Tread{1, 0, 10}), EISDIR);
}

TEST_F(ServerTest, ReadCountIsCappedByTheMsize) {
  hello->set_contents(std::string(20000, 'x'));
  start();
  ASSERT_TRUE(client->call_as<Rversion>(Tversion{8192, "9P2000.L"}));
  ASSERT_TRUE(client->call_as<Rattach>(Tattach{0, kNoFid, "u", "", kNoUname}));
  open(1, "hello", P9_DOTL_RDONLY);

  auto r = client->call_as<Rread>(Tread{1, 0, 100000});

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->data.size(), 8192 - kRreadOverhead);
}

TEST_F(ServerTest, LcreateMakesAndOpensANewFile) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, ""));

  auto created = client->call_as<Rlcreate>(Tlcreate{1, "new", P9_DOTL_RDWR, 0100600, 0});
  ASSERT_TRUE(created.has_value());
  ASSERT_TRUE(client->call_as<Rwrite>(Twrite{1, 0, "fresh"}));
  ASSERT_TRUE(client->call_as<Rclunk>(Tclunk{1}));

  auto node = std::dynamic_pointer_cast<MemFile>(root->get("new"));
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->contents(), "fresh");
  EXPECT_EQ(created->qid.path, node->qid().path);
  EXPECT_EQ(created->qid.type, P9_QTFILE);
  EXPECT_EQ(node->getattr()->mode, S_IFREG | 0600u);
  EXPECT_EQ(error_of(Tlcreate{0, "new", P9_DOTL_RDWR, 0644, 0}), EEXIST);
}

// ---- directories --------------------------------------------------------------------------------

TEST_F(ServerTest, ReaddirReturnsEveryEntryAcrossCallsUsingOffsets) {
  start_attached();
  open(1, "dir", P9_DOTL_RDONLY);

  auto entries = client->readdir_all(1, 300);  // a few entries per call

  ASSERT_TRUE(entries.has_value()) << entries.error().message();
  ASSERT_EQ(entries->size(), 52u);
  EXPECT_EQ((*entries)[0].name, ".");
  EXPECT_EQ((*entries)[0].qid, dir->qid());
  EXPECT_EQ((*entries)[1].name, "..");
  EXPECT_EQ((*entries)[1].qid, root->qid());
  EXPECT_EQ((*entries)[2].name, "file00");
  EXPECT_EQ((*entries)[51].name, "file49");
  EXPECT_EQ((*entries)[51].type, 8);  // DT_REG
  for (size_t i = 1; i < entries->size(); i++) {
    EXPECT_GT((*entries)[i].offset, (*entries)[i - 1].offset);
  }
}

TEST_F(ServerTest, ReaddirResumesAtAnyOffsetCookie) {
  start_attached();
  open(1, "dir", P9_DOTL_RDONLY);
  auto all = client->readdir_all(1);
  ASSERT_TRUE(all.has_value());

  auto rest = client->call_as<Rreaddir>(Treaddir{1, (*all)[40].offset, 8192});

  ASSERT_TRUE(rest.has_value());
  auto batch = decode_dirents(rest->data);
  ASSERT_TRUE(batch.has_value());
  ASSERT_EQ(batch->size(), 11u);
  EXPECT_EQ(batch->front().name, (*all)[41].name);
}

TEST_F(ServerTest, ReaddirNeedsAnOpenDirectory) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, "dir"));
  open(2, "hello", P9_DOTL_RDONLY);
  open(3, "dir", P9_DOTL_RDONLY);

  EXPECT_EQ(error_of(Treaddir{1, 0, 8192}), EBADF);
  EXPECT_EQ(error_of(Treaddir{2, 0, 8192}), ENOTDIR);
  EXPECT_EQ(error_of(Treaddir{3, 0, 10}), EINVAL);  // too small for one entry
}

TEST_F(ServerTest, MkdirAndUnlinkatCreateAndRemoveDirectories) {
  start_attached();

  auto made = client->call_as<Rmkdir>(Tmkdir{0, "newdir", 040755, 0});
  ASSERT_TRUE(made.has_value());
  EXPECT_EQ(made->qid.type, P9_QTDIR);
  EXPECT_TRUE(client->walk(0, 1, "newdir"));
  EXPECT_EQ(error_of(Tmkdir{0, "newdir", 040755, 0}), EEXIST);
  EXPECT_EQ(error_of(Tunlinkat{0, "newdir", 0}), EISDIR);
  EXPECT_EQ(error_of(Tunlinkat{0, "dir", P9_AT_REMOVEDIR}), ENOTEMPTY);

  EXPECT_EQ(error_of(Tunlinkat{0, "newdir", P9_AT_REMOVEDIR}), 0);
  EXPECT_EQ(root->get("newdir"), nullptr);
  EXPECT_EQ(error_of(Twalk{0, 2, {"newdir"}}), ENOENT);
}

TEST_F(ServerTest, RenameatMovesAnEntryBetweenDirectories) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, "dir"));

  EXPECT_EQ(error_of(Trenameat{0, "hello", 1, "hello2"}), 0);

  EXPECT_EQ(root->get("hello"), nullptr);
  EXPECT_EQ(dir->get("hello2").get(), hello.get());
}

TEST_F(ServerTest, RenameMovesTheFidsEntry) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, "hello"));

  EXPECT_EQ(error_of(Trename{1, 0, "renamed"}), 0);

  EXPECT_EQ(root->get("renamed").get(), hello.get());
}

TEST_F(ServerTest, RemoveDeletesTheEntryAndClunksTheFid) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, "hello"));

  EXPECT_EQ(error_of(Tremove{1}), 0);

  EXPECT_EQ(root->get("hello"), nullptr);
  EXPECT_EQ(error_of(Tgetattr{1, P9_GETATTR_BASIC}), EBADF);
}

TEST_F(ServerTest, RemoveOfTheRootFailsButStillClunks) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, ""));
  EXPECT_EQ(error_of(Tremove{1}), EBUSY);
  EXPECT_EQ(error_of(Tclunk{1}), EBADF);
}

// ---- attributes and the rest --------------------------------------------------------------------

TEST_F(ServerTest, GetattrReportsModeSizeAndQid) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, "hello"));

  auto a = client->call_as<Rgetattr>(Tgetattr{1, P9_GETATTR_ALL});

  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->stat.valid & P9_GETATTR_BASIC, P9_GETATTR_BASIC);
  EXPECT_EQ(a->stat.qid, hello->qid());
  EXPECT_EQ(a->stat.mode, S_IFREG | 0644u);
  EXPECT_EQ(a->stat.size, 12u);
  EXPECT_EQ(a->stat.nlink, 1u);
  EXPECT_EQ(a->stat.blocks, 1u);
}

TEST_F(ServerTest, SetattrTruncatesAndChangesMode) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, "hello"));
  SetAttr sa;
  sa.valid = P9_SETATTR_SIZE | P9_SETATTR_MODE | P9_SETATTR_MTIME;
  sa.size = 5;
  sa.mode = 0600;

  EXPECT_EQ(error_of(Tsetattr{1, sa}), 0);

  EXPECT_EQ(hello->contents(), "hello");
  EXPECT_EQ(hello->getattr()->mode, S_IFREG | 0600u);
}

TEST_F(ServerTest, StatfsFsyncLockAndGetlockAnswer) {
  start_attached();
  open(1, "hello", P9_DOTL_RDWR);

  auto st = client->call_as<Rstatfs>(Tstatfs{0});
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->statfs.type, 0x01021997u);
  EXPECT_EQ(error_of(Tfsync{1, 0}), 0);
  auto lock = client->call_as<Rlock>(Tlock{1, P9_LOCK_TYPE_WRLCK, 0, 0, 0, 1, "guest"});
  ASSERT_TRUE(lock.has_value());
  EXPECT_EQ(lock->status, P9_LOCK_SUCCESS);
  auto gl = client->call_as<Rgetlock>(Tgetlock{1, P9_LOCK_TYPE_WRLCK, 0, 0, 1, "guest"});
  ASSERT_TRUE(gl.has_value());
  EXPECT_EQ(gl->type, P9_LOCK_TYPE_UNLCK);
}

TEST_F(ServerTest, ExtendedAttributesAreUnsupported) {
  start_attached();
  EXPECT_EQ(error_of(Txattrwalk{0, 1, "security.selinux"}), EOPNOTSUPP);
  EXPECT_EQ(error_of(Txattrcreate{0, "user.x", 1, 0}), EOPNOTSUPP);
  EXPECT_EQ(error_of(Tgetattr{1, P9_GETATTR_BASIC}), EBADF);  // no xattr fid was made
}

TEST_F(ServerTest, SymlinkMknodAndLinkAreUnsupported) {
  start_attached();
  ASSERT_TRUE(client->walk(0, 1, "hello"));
  EXPECT_EQ(error_of(Tsymlink{0, "l", "/x", 0}), EOPNOTSUPP);
  EXPECT_EQ(error_of(Tmknod{0, "n", 020644, 1, 1, 0}), EOPNOTSUPP);
  EXPECT_EQ(error_of(Tlink{0, 1, "h"}), EOPNOTSUPP);
  EXPECT_EQ(error_of(Treadlink{1}), EINVAL);
}

// ---- bad input ----------------------------------------------------------------------------------

TEST_F(ServerTest, UnknownMessageTypeIsEopnotsuppAndTheSessionGoesOn) {
  start_attached();
  // Topen (9P2000): fid[4] mode[1].
  const std::vector<uint8_t> topen = {12, 0, 0, 0, 112, 9, 0, 0, 0, 0, 0, 0};
  ASSERT_TRUE(client->send_raw(topen));

  auto reply = client->receive();

  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->tag, 9);
  EXPECT_EQ(std::get<Rlerror>(reply->message).ecode, uint32_t(EOPNOTSUPP));
  EXPECT_TRUE(client->walk(0, 1, "hello"));
}

TEST_F(ServerTest, MalformedMessageIsEinvalAndTheSessionGoesOn) {
  start_attached();
  auto frame = encode_tmessage(5, Twalk{0, 1, {"a/b"}});
  ASSERT_TRUE(client->send_raw(frame));

  auto reply = client->receive();

  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->tag, 5);
  EXPECT_EQ(std::get<Rlerror>(reply->message).ecode, uint32_t(EINVAL));
  EXPECT_TRUE(client->walk(0, 1, "hello"));
}

TEST_F(ServerTest, FrameLargerThanMsizeClosesTheConnection) {
  start_attached();
  const std::vector<uint8_t> huge = {0, 0, 0x10, 0, 118, 1, 0};  // 1 MiB claimed

  ASSERT_TRUE(client->send_raw(huge));

  EXPECT_TRUE(client->wait_for_eof());
  join();
  EXPECT_FALSE(result.has_value());
}

TEST_F(ServerTest, FidLimitIsEnforced) {
  SessionOptions options;
  options.max_fids = 4;
  start_attached(options);
  ASSERT_TRUE(client->walk(0, 1, ""));
  ASSERT_TRUE(client->walk(0, 2, ""));
  ASSERT_TRUE(client->walk(0, 3, ""));

  EXPECT_EQ(error_of(Twalk{0, 4, {}}), EMFILE);
  EXPECT_EQ(error_of(Tattach{4, kNoFid, "u", "", kNoUname}), EMFILE);
  ASSERT_TRUE(client->call_as<Rclunk>(Tclunk{3}));
  EXPECT_TRUE(client->walk(0, 4, ""));
  EXPECT_EQ(session->fid_count(), 4u);
}

// ---- blocking reads, flush, clunk on close
// -------------------------------------------------------

TEST_F(ServerTest, BlockedReadDoesNotStopOtherRequests) {
  start_attached();
  open(1, "parked", P9_DOTL_RDONLY);
  open(2, "hello", P9_DOTL_RDONLY);
  const uint16_t blocked = client->new_tag();
  ASSERT_TRUE(client->send(blocked, Tread{1, 0, 100}));

  // Other requests on the same connection are answered meanwhile.
  auto other = client->call_as<Rread>(Tread{2, 0, 5});
  auto attr = client->call_as<Rgetattr>(Tgetattr{0, P9_GETATTR_BASIC});
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->data, "hello");
  EXPECT_TRUE(attr.has_value());
  ASSERT_TRUE(parking->wait_parked(1));
  EXPECT_EQ(session->pending_count(), 1u);

  // The read is answered later, from another thread.
  std::thread([r = parking->at(0)]() mutable { r.reply("late data"); }).join();
  auto reply = client->receive();

  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->tag, blocked);
  EXPECT_EQ(std::get<Rread>(reply->message).data, "late data");
  EXPECT_EQ(session->pending_count(), 0u);
}

TEST_F(ServerTest, FlushOfABlockedReadCancelsItAndOnlyRflushIsSent) {
  start_attached();
  open(1, "parked", P9_DOTL_RDONLY);
  const uint16_t blocked = client->new_tag();
  ASSERT_TRUE(client->send(blocked, Tread{1, 0, 100}));
  ASSERT_TRUE(parking->wait_parked(1));

  auto flush = client->call_as<Rflush>(Tflush{blocked});

  ASSERT_TRUE(flush.has_value());
  EXPECT_EQ(parking->count(&Parking::cancels), 1);
  EXPECT_FALSE(parking->at(0).reply("too late"));  // dropped: no reply for the flushed tag
  EXPECT_TRUE(client->quiet_for(100));
  // The tag is free again.
  EXPECT_TRUE(client->call_as<Rgetattr>(Tgetattr{0, P9_GETATTR_BASIC}));
}

TEST_F(ServerTest, ReadAnsweredBeforeTheFlushIsFollowedByRflush) {
  start_attached();
  open(1, "parked", P9_DOTL_RDONLY);
  const uint16_t read_tag = client->new_tag();
  ASSERT_TRUE(client->send(read_tag, Tread{1, 0, 100}));
  ASSERT_TRUE(parking->wait_parked(1));
  ASSERT_TRUE(parking->at(0).reply("first"));

  const uint16_t flush_tag = client->new_tag();
  ASSERT_TRUE(client->send(flush_tag, Tflush{read_tag}));
  auto r1 = client->receive();
  auto r2 = client->receive();

  ASSERT_TRUE(r1.has_value());
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r1->tag, read_tag);
  EXPECT_TRUE(std::holds_alternative<Rread>(r1->message));
  EXPECT_EQ(r2->tag, flush_tag);
  EXPECT_TRUE(std::holds_alternative<Rflush>(r2->message));
  EXPECT_EQ(parking->count(&Parking::cancels), 0);
}

TEST_F(ServerTest, FlushOfAnUnknownTagAnswersRflush) {
  start_attached();
  EXPECT_TRUE(client->call_as<Rflush>(Tflush{777}));
}

TEST_F(ServerTest, ReusingTheTagOfAPendingReadIsAnError) {
  start_attached();
  open(1, "parked", P9_DOTL_RDONLY);
  ASSERT_TRUE(client->send(50, Tread{1, 0, 100}));
  ASSERT_TRUE(parking->wait_parked(1));

  ASSERT_TRUE(client->send(50, Tgetattr{0, P9_GETATTR_BASIC}));
  auto reply = client->receive();

  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->tag, 50);
  EXPECT_EQ(std::get<Rlerror>(reply->message).ecode, uint32_t(EINVAL));
  EXPECT_EQ(session->pending_count(), 1u);
}

TEST_F(ServerTest, StreamFileReadIsAnsweredByALaterPost) {
  start_attached();
  open(1, "live", P9_DOTL_RDONLY);
  const uint16_t tag = client->new_tag();
  ASSERT_TRUE(client->send(tag, Tread{1, 0, 4096}));
  ASSERT_TRUE(client->call_as<Rgetattr>(Tgetattr{0, P9_GETATTR_BASIC}));  // read is parked
  EXPECT_TRUE(client->quiet_for(50));

  std::thread([this] { live->post("0123abcd\n"); }).join();
  auto reply = client->receive();

  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->tag, tag);
  EXPECT_EQ(std::get<Rread>(reply->message).data, "0123abcd\n");
}

TEST_F(ServerTest, FlushOfAStreamReadLeavesTheDataForTheNextRead) {
  start_attached();
  open(1, "live", P9_DOTL_RDONLY);
  const uint16_t tag = client->new_tag();
  ASSERT_TRUE(client->send(tag, Tread{1, 0, 4096}));
  ASSERT_TRUE(client->call_as<Rflush>(Tflush{tag}));

  live->post("next\n");
  auto r = client->call_as<Rread>(Tread{1, 0, 4096});

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->data, "next\n");
}

TEST_F(ServerTest, RacingPostsAndFlushesNeverAnswerAFlushedReadAfterRflush) {
  start_attached();
  open(1, "live", P9_DOTL_RDONLY);
  std::string expected, received;

  for (int i = 0; i < 200; i++) {
    const uint16_t read_tag = client->new_tag();
    ASSERT_TRUE(client->send(read_tag, Tread{1, 0, 4096}));
    std::string chunk = std::to_string(i) + ",";
    expected += chunk;
    std::thread poster([this, chunk] { live->post(chunk); });
    const uint16_t flush_tag = client->new_tag();
    ASSERT_TRUE(client->send(flush_tag, Tflush{read_tag}));
    poster.join();
    // The read is answered before the Rflush or not at all.
    for (;;) {
      auto r = client->receive();
      ASSERT_TRUE(r.has_value());
      if (r->tag == flush_tag) break;
      ASSERT_EQ(r->tag, read_tag);
      received += std::get<Rread>(r->message).data;
    }
  }
  // Whatever a flushed read did not take is still queued: nothing is lost or duplicated.
  while (received.size() < expected.size()) {
    auto r = client->call_as<Rread>(Tread{1, 0, 4096});
    ASSERT_TRUE(r.has_value());
    received += r->data;
  }
  EXPECT_EQ(received, expected);
  EXPECT_TRUE(client->quiet_for(50));
}

TEST_F(ServerTest, ClunkCallsTheFilesCloseHook) {
  start_attached();
  open(1, "parked", P9_DOTL_RDONLY);
  EXPECT_EQ(parking->count(&Parking::closes), 0);

  ASSERT_TRUE(client->call_as<Rclunk>(Tclunk{1}));

  EXPECT_EQ(parking->count(&Parking::closes), 1);
}

TEST_F(ServerTest, ClunkOfAFidWithAPendingReadAnswersTheReadWithEbadf) {
  start_attached();
  open(1, "parked", P9_DOTL_RDONLY);
  const uint16_t read_tag = client->new_tag();
  ASSERT_TRUE(client->send(read_tag, Tread{1, 0, 100}));
  ASSERT_TRUE(parking->wait_parked(1));

  const uint16_t clunk_tag = client->new_tag();
  ASSERT_TRUE(client->send(clunk_tag, Tclunk{1}));
  auto r1 = client->receive();
  auto r2 = client->receive();

  ASSERT_TRUE(r1.has_value() && r2.has_value());
  EXPECT_EQ(r1->tag, read_tag);
  EXPECT_EQ(std::get<Rlerror>(r1->message).ecode, uint32_t(EBADF));
  EXPECT_EQ(r2->tag, clunk_tag);
  EXPECT_EQ(parking->count(&Parking::cancels), 1);
  EXPECT_EQ(parking->count(&Parking::closes), 1);
}

TEST_F(ServerTest, ClosingTheConnectionClunksEveryFidAndCancelsPendingReads) {
  start_attached();
  open(1, "parked", P9_DOTL_RDONLY);
  open(2, "parked", P9_DOTL_RDONLY);
  open(3, "parked", P9_DOTL_RDONLY);
  open(4, "live", P9_DOTL_RDONLY);
  ASSERT_TRUE(client->send(client->new_tag(), Tread{1, 0, 100}));
  ASSERT_TRUE(parking->wait_parked(1));
  EXPECT_EQ(live->reader_count(), 1u);

  client.reset();  // the guest goes away
  join();

  EXPECT_TRUE(result.has_value());
  EXPECT_EQ(parking->count(&Parking::opens), 3);
  EXPECT_EQ(parking->count(&Parking::closes), 3);
  EXPECT_EQ(parking->count(&Parking::cancels), 1);
  EXPECT_EQ(live->reader_count(), 0u);
  EXPECT_EQ(session->fid_count(), 0u);
  EXPECT_FALSE(parking->at(0).reply("after close"));
}

TEST_F(ServerTest, VersionAgainClunksEveryFid) {
  start_attached();
  open(1, "parked", P9_DOTL_RDONLY);

  ASSERT_TRUE(client->call_as<Rversion>(Tversion{65536, "9P2000.L"}));

  EXPECT_EQ(parking->count(&Parking::closes), 1);
  EXPECT_EQ(error_of(Tgetattr{0, P9_GETATTR_BASIC}), EBADF);
}

TEST_F(ServerTest, StopEndsRunAndClunks) {
  start_attached();
  open(1, "parked", P9_DOTL_RDONLY);

  session->stop();
  join();

  EXPECT_TRUE(result.has_value());
  EXPECT_EQ(parking->count(&Parking::closes), 1);
  EXPECT_TRUE(client->wait_for_eof());
}

TEST(ServerPipes, ServesOverSeparateReadAndWriteFds) {
  int to_server[2], to_client[2];
  ASSERT_EQ(::pipe2(to_server, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(to_client, O_CLOEXEC), 0);
  auto root = MemDir::create();
  ASSERT_TRUE(root->add("f", MemFile::create("piped")));
  Session session(std::make_shared<MemFs>(root), UniqueFd(to_server[0]), UniqueFd(to_client[1]));
  Status result;
  std::thread t([&] { result = session.run(); });
  auto client = std::make_unique<TestClient>(UniqueFd(to_client[0]), UniqueFd(to_server[1]));

  ASSERT_TRUE(client->handshake(0));
  ASSERT_TRUE(client->walk(0, 1, "f"));
  ASSERT_TRUE(client->call_as<Rlopen>(Tlopen{1, P9_DOTL_RDONLY}));
  auto r = client->call_as<Rread>(Tread{1, 0, 100});
  client.reset();  // closes the server's read pipe: EOF
  t.join();

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->data, "piped");
  EXPECT_TRUE(result.has_value());
}

}  // namespace
}  // namespace pinata::p9
