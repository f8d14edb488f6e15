#include "p9/memfs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <optional>

namespace pinata::p9 {
namespace {

// Reads through a detached Responder; nullopt if the file has not answered (yet).
struct ReadProbe {
  std::shared_ptr<std::optional<Result<std::string>>> answer =
      std::make_shared<std::optional<Result<std::string>>>();
  std::function<void()> cancel;

  static ReadProbe start(OpenFile& file, uint64_t offset, uint32_t count) {
    ReadProbe p;
    auto answer = p.answer;
    auto d = Responder::detached(count, [answer](Result<std::string> r) { *answer = r; });
    p.cancel = d.cancel;
    file.read(offset, count, std::move(d.responder));
    return p;
  }
  bool answered() const { return answer->has_value(); }
  std::string data() const { return answer->value().value(); }
  int error() const { return answer->value().error().code(); }
};

std::string read_now(OpenFile& file, uint64_t offset, uint32_t count) {
  auto p = ReadProbe::start(file, offset, count);
  EXPECT_TRUE(p.answered());
  return p.answered() && p.answer->value() ? p.data() : "<error>";
}

std::unique_ptr<OpenFile> open_ok(Node& node, uint32_t flags) {
  auto f = node.open(flags);
  EXPECT_TRUE(f.has_value()) << f.error().message();
  return f ? std::move(*f) : nullptr;
}

TEST(MemDir, LookupFindsAddedEntriesAndMissingNamesAreEnoent) {
  auto root = MemDir::create();
  auto file = MemFile::create("x");
  ASSERT_TRUE(root->add("file", file));

  auto found = root->lookup("file");
  auto missing = root->lookup("nope");

  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->get(), file.get());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(to_errno(missing.error()), ENOENT);
}

TEST(MemDir, ReportsDirectoryModeAndQidType) {
  auto dir = MemDir::create(Access::kReadWrite, 0700);
  auto attr = dir->getattr();
  ASSERT_TRUE(attr.has_value());
  EXPECT_EQ(attr->mode, S_IFDIR | 0700u);
  EXPECT_TRUE(dir->is_directory());
  EXPECT_EQ(dir->qid().type, P9_QTDIR);
}

TEST(MemDir, MkdirCreatesAndUnlinkRemovesADirectory) {
  auto root = MemDir::create();

  ASSERT_TRUE(root->mkdir("d", 0755, 0));
  EXPECT_TRUE(root->get("d")->is_directory());
  EXPECT_EQ(to_errno(root->mkdir("d", 0755, 0).error()), EEXIST);
  ASSERT_TRUE(root->unlink("d", UnlinkKind::kDirectory));
  EXPECT_EQ(root->get("d"), nullptr);
}

TEST(MemDir, UnlinkChecksKindAndEmptiness) {
  auto root = MemDir::create();
  auto d = *root->add_dir("d");
  ASSERT_TRUE(d->add("f", MemFile::create()));

  EXPECT_EQ(to_errno(root->unlink("d", UnlinkKind::kDirectory).error()), ENOTEMPTY);
  EXPECT_EQ(to_errno(root->unlink("d", UnlinkKind::kFile).error()), EISDIR);
  EXPECT_EQ(to_errno(d->unlink("f", UnlinkKind::kDirectory).error()), ENOTDIR);
  EXPECT_TRUE(d->unlink("f", UnlinkKind::kFile));
  EXPECT_TRUE(root->unlink("d", UnlinkKind::kDirectory));
}

TEST(MemDir, ReadOnlyDirectoryRefusesClientChangesWithErofs) {
  auto root = MemDir::create(Access::kReadOnly);
  ASSERT_TRUE(root->add("f", MemFile::create()));  // code may still build it

  EXPECT_EQ(to_errno(root->mkdir("d", 0755, 0).error()), EROFS);
  EXPECT_EQ(to_errno(root->create("g", 0, 0644, 0).error()), EROFS);
  EXPECT_EQ(to_errno(root->unlink("f", UnlinkKind::kFile).error()), EROFS);
}

TEST(MemDir, RenameMovesBetweenDirectoriesAndReplacesFiles) {
  auto root = MemDir::create();
  auto a = *root->add_dir("a");
  auto b = *root->add_dir("b");
  auto f = MemFile::create("1");
  ASSERT_TRUE(a->add("f", f));
  ASSERT_TRUE(b->add("g", MemFile::create("2")));

  ASSERT_TRUE(a->rename("f", b, "g"));

  EXPECT_EQ(a->get("f"), nullptr);
  EXPECT_EQ(b->get("g").get(), f.get());
}

TEST(MemDir, RenameOfADirectoryBelowItselfIsEinval) {
  auto root = MemDir::create();
  auto a = *root->add_dir("a");
  auto below = *a->add_dir("below");

  auto st = root->rename("a", below, "a2");

  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(to_errno(st.error()), EINVAL);
}

TEST(MemDir, RenameOntoANonEmptyDirectoryIsEnotempty) {
  auto root = MemDir::create();
  ASSERT_TRUE(root->add_dir("a"));
  auto b = *root->add_dir("b");
  ASSERT_TRUE(b->add("x", MemFile::create()));

  EXPECT_EQ(to_errno(root->rename("a", root, "b").error()), ENOTEMPTY);
}

TEST(MemDir, RenameIntoAnotherKindOfDirectoryIsExdev) {
  struct Other : Node {
    Qid qid() const override { return Qid{P9_QTDIR, 0, 999}; }
    Result<Attr> getattr() override { return Attr{}; }
  };
  auto root = MemDir::create();
  ASSERT_TRUE(root->add("f", MemFile::create()));

  EXPECT_EQ(to_errno(root->rename("f", std::make_shared<Other>(), "f").error()), EXDEV);
}

TEST(MemFile, WritesAtOffsetsAndPadsHolesWithZeros) {
  auto file = MemFile::create("abc");
  auto h = open_ok(*file, P9_DOTL_RDWR);

  ASSERT_EQ(h->write(5, "xy").value(), 2u);

  EXPECT_EQ(file->contents(), std::string("abc\0\0xy", 7));
  EXPECT_EQ(read_now(*h, 1, 3), std::string("bc\0", 3));
  EXPECT_EQ(read_now(*h, 7, 10), "");
}

TEST(MemFile, TruncateBySetattrAndByOpenWithOTrunc) {
  auto file = MemFile::create("hello");
  SetAttr sa;
  sa.valid = P9_SETATTR_SIZE;
  sa.size = 2;

  ASSERT_TRUE(file->setattr(sa));
  EXPECT_EQ(file->contents(), "he");
  open_ok(*file, P9_DOTL_WRONLY | P9_DOTL_TRUNC);
  EXPECT_EQ(file->contents(), "");
  EXPECT_EQ(file->getattr()->size, 0u);
}

TEST(MemFile, AppendWritesAtTheEndWhateverTheOffset) {
  auto file = MemFile::create("ab");
  auto h = open_ok(*file, P9_DOTL_WRONLY | P9_DOTL_APPEND);
  ASSERT_TRUE(h->write(0, "cd"));
  EXPECT_EQ(file->contents(), "abcd");
}

TEST(MemFile, WriteChangesQidVersion) {
  auto file = MemFile::create();
  uint32_t before = file->qid().version;
  auto h = open_ok(*file, P9_DOTL_WRONLY);
  ASSERT_TRUE(h->write(0, "x"));
  EXPECT_NE(file->qid().version, before);
}

TEST(MemFile, ReadOnlyFileRefusesOpenForWritingWithErofs) {
  auto file = MemFile::create("static", Access::kReadOnly);
  EXPECT_EQ(to_errno(file->open(P9_DOTL_RDWR).error()), EROFS);
  EXPECT_EQ(to_errno(file->open(P9_DOTL_RDONLY | P9_DOTL_TRUNC).error()), EROFS);
  auto h = open_ok(*file, P9_DOTL_RDONLY);
  EXPECT_EQ(read_now(*h, 0, 100), "static");
}

TEST(MemFile, RefusesToGrowBeyondTheLimit) {
  auto file = MemFile::create();
  auto h = open_ok(*file, P9_DOTL_WRONLY);
  auto r = h->write(MemFile::kMaxSize, "x");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(to_errno(r.error()), EFBIG);
}

TEST(CallbackFile, ReadsAFreshValueAtOffsetZeroAndSlicesItLater) {
  int calls = 0;
  auto file = CallbackFile::create([&]() -> Result<std::string> {
    calls++;
    return "value" + std::to_string(calls);
  });
  auto h = open_ok(*file, P9_DOTL_RDONLY);

  EXPECT_EQ(read_now(*h, 0, 3), "val");
  EXPECT_EQ(read_now(*h, 3, 100), "ue1");
  EXPECT_EQ(read_now(*h, 0, 100), "value2");
  EXPECT_EQ(calls, 2);
}

TEST(CallbackFile, PassesWritesToTheWriteFunction) {
  std::string got;
  auto file = CallbackFile::create(nullptr, [&](std::string_view d) -> Status {
    if (d == "bad") return fail_posix(EINVAL, "bad");
    got += d;
    return {};
  });
  auto h = open_ok(*file, P9_DOTL_WRONLY | P9_DOTL_TRUNC);

  EXPECT_EQ(h->write(0, "abc").value(), 3u);
  EXPECT_EQ(to_errno(h->write(3, "bad").error()), EINVAL);
  EXPECT_EQ(got, "abc");
}

TEST(CallbackFile, WithoutAWriteFunctionIsReadOnly) {
  auto file = CallbackFile::create([]() -> Result<std::string> { return "x"; });
  EXPECT_EQ(to_errno(file->open(P9_DOTL_WRONLY).error()), EROFS);
}

TEST(CallbackFile, ReadErrorsBecomeTheReadsAnswer) {
  auto file =
      CallbackFile::create([]() -> Result<std::string> { return fail_posix(EACCES, "nope"); });
  auto h = open_ok(*file, P9_DOTL_RDONLY);
  auto p = ReadProbe::start(*h, 0, 10);
  ASSERT_TRUE(p.answered());
  EXPECT_EQ(p.error(), EACCES);
}

TEST(StreamFile, ReadWaitsUntilAPost) {
  auto stream = StreamFile::create(StreamFile::Start::kEmpty);
  auto h = open_ok(*stream, P9_DOTL_RDONLY);

  auto p = ReadProbe::start(*h, 0, 100);
  EXPECT_FALSE(p.answered());
  stream->post("commit1\n");

  ASSERT_TRUE(p.answered());
  EXPECT_EQ(p.data(), "commit1\n");
}

TEST(StreamFile, NewOpensStartWithTheLatestPost) {
  auto stream = StreamFile::create(StreamFile::Start::kLatest);
  stream->post("old\n");
  stream->post("head\n");

  auto h = open_ok(*stream, P9_DOTL_RDONLY);

  EXPECT_EQ(read_now(*h, 0, 100), "head\n");
  auto p = ReadProbe::start(*h, 5, 100);
  EXPECT_FALSE(p.answered());
}

TEST(StreamFile, ReadsTakeAtMostTheirCountAndKeepTheRest) {
  auto stream = StreamFile::create(StreamFile::Start::kEmpty);
  auto h = open_ok(*stream, P9_DOTL_RDONLY);
  stream->post("abcdef");

  EXPECT_EQ(read_now(*h, 0, 4), "abcd");
  EXPECT_EQ(read_now(*h, 4, 4), "ef");
}

TEST(StreamFile, EachOpenHasItsOwnQueue) {
  auto stream = StreamFile::create(StreamFile::Start::kEmpty);
  auto h1 = open_ok(*stream, P9_DOTL_RDONLY);
  auto h2 = open_ok(*stream, P9_DOTL_RDONLY);
  stream->post("x");

  EXPECT_EQ(read_now(*h1, 0, 10), "x");
  EXPECT_EQ(read_now(*h2, 0, 10), "x");
  EXPECT_EQ(stream->reader_count(), 2u);
  h1.reset();
  EXPECT_EQ(stream->reader_count(), 1u);
}

TEST(StreamFile, ACancelledReadIsNotAnsweredAndTheDataWaitsForTheNextRead) {
  auto stream = StreamFile::create(StreamFile::Start::kEmpty);
  auto h = open_ok(*stream, P9_DOTL_RDONLY);
  auto p = ReadProbe::start(*h, 0, 100);

  p.cancel();
  stream->post("later");

  EXPECT_FALSE(p.answered());
  EXPECT_EQ(read_now(*h, 0, 100), "later");
}

TEST(StreamFile, ClosingFailsReadsStillWaiting) {
  auto stream = StreamFile::create(StreamFile::Start::kEmpty);
  auto h = open_ok(*stream, P9_DOTL_RDONLY);
  auto p = ReadProbe::start(*h, 0, 100);

  h.reset();

  ASSERT_TRUE(p.answered());
  EXPECT_EQ(p.error(), EBADF);
  EXPECT_EQ(stream->reader_count(), 0u);
}

TEST(StreamFile, RefusesWritesWithErofs) {
  auto stream = StreamFile::create();
  EXPECT_EQ(to_errno(stream->open(P9_DOTL_WRONLY).error()), EROFS);
}

TEST(Errors, MapKindsAndCodesToErrno) {
  EXPECT_EQ(to_errno(Error(ErrorKind::kNotFound, "x")), ENOENT);
  EXPECT_EQ(to_errno(Error(ErrorKind::kAlreadyExists, "x")), EEXIST);
  EXPECT_EQ(to_errno(Error(ErrorKind::kInvalidInput, "x")), EINVAL);
  EXPECT_EQ(to_errno(Error(ErrorKind::kUnsupported, "x")), EOPNOTSUPP);
  EXPECT_EQ(to_errno(Error(ErrorKind::kCorrupt, "x")), EIO);
  EXPECT_EQ(to_errno(Error::from_errno("open", EACCES)), EACCES);
  EXPECT_EQ(to_errno(posix_error(ENOTEMPTY, "rmdir")), ENOTEMPTY);
  EXPECT_EQ(posix_error(ENOENT, "x").kind(), ErrorKind::kNotFound);
}

TEST(Responder, DroppedWithoutAnAnswerFailsWithEio) {
  std::optional<Result<std::string>> answer;
  {
    auto d = Responder::detached(10, [&](Result<std::string> r) { answer = r; });
  }
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->error().code(), EIO);
}

TEST(Responder, OnlyTheFirstAnswerCountsAndDataIsCutToCount) {
  std::vector<std::string> got;
  auto d = Responder::detached(3, [&](Result<std::string> r) { got.push_back(*r); });

  EXPECT_TRUE(d.responder.reply("abcdef"));
  EXPECT_FALSE(d.responder.reply("again"));
  EXPECT_EQ(got, std::vector<std::string>{"abc"});
}

}  // namespace
}  // namespace pinata::p9
