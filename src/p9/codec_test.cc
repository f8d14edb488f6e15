#include "p9/codec.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <set>
#include <string>
#include <vector>

namespace pinata::p9 {
namespace {

constexpr uint32_t kMsize = 64 * 1024;

Qid sample_qid(uint64_t path = 0x1122334455667788) { return Qid{P9_QTDIR, 7, path}; }

// One of every T-message, with distinctive field values.
std::vector<TMessage> all_tmessages() {
  SetAttr sa{P9_SETATTR_SIZE | P9_SETATTR_MODE, 0644, 1000, 1000, 4096, 1, 2, 3, 4};
  return {
      Tversion{65536, "9P2000.L"},
      Tauth{5, "user", "/tree", 1000},
      Tattach{1, kNoFid, "root", "", kNoUname},
      Tflush{0x1234},
      Twalk{1, 2, {"branch", "master", "..", "."}},
      Tlopen{3, P9_DOTL_RDWR | P9_DOTL_TRUNC},
      Tlcreate{3, "new-file", 0x8241, 0100644, 1000},
      Tsymlink{3, "link", "/some/where", 1000},
      Tmknod{3, "dev", 020644, 1, 3, 0},
      Trename{4, 3, "renamed"},
      Treadlink{4},
      Tgetattr{4, P9_GETATTR_ALL},
      Tsetattr{4, sa},
      Txattrwalk{4, 5, "security.selinux"},
      Txattrcreate{4, "user.x", 10, 1},
      Treaddir{6, 3, 8192},
      Tfsync{6, 1},
      Tlock{6, P9_LOCK_TYPE_WRLCK, 1, 0, 100, 42, "guest"},
      Tgetlock{6, P9_LOCK_TYPE_RDLCK, 5, 10, 43, "guest"},
      Tlink{3, 4, "hardlink"},
      Tmkdir{3, "dir", 040755, 1000},
      Trenameat{3, "old", 7, "new"},
      Tunlinkat{3, "gone", P9_AT_REMOVEDIR},
      Tstatfs{1},
      Tread{6, 0x100000000, 4096},
      Twrite{6, 12, std::string("hello\0world", 11)},
      Tclunk{6},
      Tremove{7},
  };
}

std::vector<RMessage> all_rmessages() {
  Stat st;
  st.valid = P9_GETATTR_BASIC;
  st.qid = sample_qid();
  st.mode = 040755;
  st.nlink = 2;
  st.size = 4096;
  st.blksize = 4096;
  st.blocks = 8;
  st.mtime_sec = 1700000000;
  st.mtime_nsec = 5;
  StatFs fs{0x01021997, 4096, 10, 9, 8, 7, 6, 5, 255};
  std::string dirents;
  append_dirent(dirents, Dirent{sample_qid(), 1, 4, "."});
  append_dirent(dirents, Dirent{Qid{P9_QTFILE, 0, 9}, 2, 8, "file"});
  return {
      Rlerror{ENOENT},
      Rstatfs{fs},
      Rlopen{sample_qid(), 0},
      Rlcreate{Qid{P9_QTFILE, 1, 2}, 8192},
      Rsymlink{Qid{P9_QTSYMLINK, 0, 3}},
      Rmknod{Qid{P9_QTFILE, 0, 4}},
      Rrename{},
      Rreadlink{"/target"},
      Rgetattr{st},
      Rsetattr{},
      Rxattrwalk{12},
      Rxattrcreate{},
      Rreaddir{dirents},
      Rfsync{},
      Rlock{P9_LOCK_SUCCESS},
      Rgetlock{P9_LOCK_TYPE_UNLCK, 1, 2, 3, "guest"},
      Rlink{},
      Rmkdir{sample_qid(5)},
      Rrenameat{},
      Runlinkat{},
      Rversion{8192, "9P2000.L"},
      Rauth{sample_qid(6)},
      Rattach{sample_qid(7)},
      Rflush{},
      Rwalk{{sample_qid(1), sample_qid(2)}},
      Rread{"data"},
      Rwrite{4},
      Rclunk{},
      Rremove{},
  };
}

// Sets the frame's size field to its length.
void fix_size(std::vector<uint8_t>& frame) {
  uint32_t n = static_cast<uint32_t>(frame.size());
  for (int i = 0; i < 4; i++) frame[i] = static_cast<uint8_t>(n >> (8 * i));
}

std::vector<uint8_t> walk_frame(size_t names) {
  Twalk w{0, 1, {}};
  for (size_t i = 0; i < names; i++) w.names.push_back("n" + std::to_string(i));
  return encode_tmessage(1, w);
}

TEST(Codec, EncodesHeaderAsSizeTypeTagLittleEndian) {
  auto frame = encode_tmessage(kNoTag, Tversion{8192, "9P2000.L"});

  const std::vector<uint8_t> expected = {21,   0,    0,   0,  // size
                                         100,                 // Tversion
                                         0xff, 0xff,          // NOTAG
                                         0x00, 0x20, 0,   0,  // msize 8192
                                         8,    0,    '9', 'P', '2', '0', '0', '0', '.', 'L'};
  EXPECT_EQ(frame, expected);
}

TEST(Codec, SampleSetCoversEveryMessageType) {
  std::set<size_t> t, r;
  for (const auto& m : all_tmessages()) t.insert(m.index());
  for (const auto& m : all_rmessages()) r.insert(m.index());
  EXPECT_EQ(t.size(), std::variant_size_v<TMessage>);
  EXPECT_EQ(r.size(), std::variant_size_v<RMessage>);
}

TEST(Codec, EveryTMessageRoundTrips) {
  for (const TMessage& m : all_tmessages()) {
    SCOPED_TRACE(message_type_name(static_cast<uint8_t>(message_type(m))));
    auto frame = encode_tmessage(42, m);

    auto decoded = decode_tmessage(frame, kMsize);

    ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
    EXPECT_EQ(decoded->tag, 42);
    EXPECT_TRUE(decoded->message == m);
    EXPECT_EQ(encode_tmessage(decoded->tag, decoded->message), frame);
  }
}

TEST(Codec, EveryRMessageRoundTrips) {
  for (const RMessage& m : all_rmessages()) {
    SCOPED_TRACE(message_type_name(static_cast<uint8_t>(message_type(m))));
    auto frame = encode_rmessage(7, m);

    auto decoded = decode_rmessage(frame, kMsize);

    ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
    EXPECT_EQ(decoded->tag, 7);
    EXPECT_TRUE(decoded->message == m);
  }
}

TEST(Codec, RgetattrHasTheLinuxLayout) {
  auto frame = encode_rmessage(1, Rgetattr{});
  // header 7 + valid 8 + qid 13 + mode/uid/gid 12 + 15 u64 fields.
  EXPECT_EQ(frame.size(), 7u + 8 + 13 + 12 + 15 * 8);
}

TEST(Codec, RejectsFrameShorterThanTheHeader) {
  std::vector<uint8_t> frame = {6, 0, 0, 0, 100, 0};
  auto d = decode_tmessage(frame, kMsize);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code(), EINVAL);
}

TEST(Codec, RejectsSizeFieldThatDoesNotMatchTheFrame) {
  auto frame = encode_tmessage(1, Tclunk{3});
  frame[0] += 1;
  EXPECT_FALSE(decode_tmessage(frame, kMsize).has_value());
  frame[0] -= 2;
  EXPECT_FALSE(decode_tmessage(frame, kMsize).has_value());
}

TEST(Codec, RejectsSizeFieldBelowSeven) {
  std::vector<uint8_t> frame = {3, 0, 0, 0, 120, 1, 0};
  EXPECT_FALSE(decode_header(frame).has_value());
}

TEST(Codec, RejectsMessageLargerThanMsize) {
  auto frame = encode_tmessage(1, Twrite{1, 0, std::string(5000, 'x')});
  auto d = decode_tmessage(frame, 4096);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code(), EMSGSIZE);
}

TEST(Codec, RejectsStringLongerThanTheRestOfTheFrame) {
  auto frame = encode_tmessage(1, Tattach{1, kNoFid, "user", "", kNoUname});
  // uname's length field sits after size/type/tag/fid/afid.
  frame[15] = 0xff;
  frame[16] = 0x7f;
  auto d = decode_tmessage(frame, kMsize);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code(), EINVAL);
}

TEST(Codec, RejectsEveryTruncationOfEveryMessage) {
  for (const TMessage& m : all_tmessages()) {
    auto full = encode_tmessage(1, m);
    for (size_t len = kHeaderSize; len < full.size(); len++) {
      std::vector<uint8_t> cut(full.begin(), full.begin() + len);
      fix_size(cut);
      EXPECT_FALSE(decode_tmessage(cut, kMsize).has_value())
          << message_type_name(static_cast<uint8_t>(message_type(m))) << " cut to " << len;
    }
  }
}

TEST(Codec, RejectsTrailingBytes) {
  auto frame = encode_tmessage(1, Tclunk{3});
  frame.push_back(0);
  fix_size(frame);
  EXPECT_FALSE(decode_tmessage(frame, kMsize).has_value());
}

TEST(Codec, RejectsTwriteWhoseCountDisagreesWithTheData) {
  auto frame = encode_tmessage(1, Twrite{1, 0, "abcd"});
  frame[19] = 3;  // count
  EXPECT_FALSE(decode_tmessage(frame, kMsize).has_value());
  frame[19] = 5;
  EXPECT_FALSE(decode_tmessage(frame, kMsize).has_value());
}

TEST(Codec, AcceptsWalkOfSixteenNames) {
  auto d = decode_tmessage(walk_frame(16), kMsize);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(std::get<Twalk>(d->message).names.size(), 16u);
}

TEST(Codec, RejectsWalkOfMoreThanSixteenNames) {
  auto d = decode_tmessage(walk_frame(17), kMsize);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code(), EINVAL);
}

TEST(Codec, RejectsWalkNameWithSlashNulOrNothing) {
  for (std::string bad : {std::string("a/b"), std::string("a\0b", 3), std::string()}) {
    auto d = decode_tmessage(encode_tmessage(1, Twalk{0, 1, {"ok", bad}}), kMsize);
    ASSERT_FALSE(d.has_value()) << bad;
    EXPECT_EQ(d.error().code(), EINVAL);
  }
}

TEST(Codec, AllowsDotAndDotDotAsWalkNames) {
  auto d = decode_tmessage(encode_tmessage(1, Twalk{0, 1, {".", ".."}}), kMsize);
  EXPECT_TRUE(d.has_value());
}

TEST(Codec, RejectsDotAndDotDotAsNamesToCreateOrRemove) {
  for (const TMessage& m :
       std::vector<TMessage>{Tmkdir{1, "..", 0755, 0}, Tlcreate{1, ".", 0, 0644, 0},
                             Tunlinkat{1, "..", 0}, Trenameat{1, "a", 1, "."}}) {
    auto d = decode_tmessage(encode_tmessage(1, m), kMsize);
    ASSERT_FALSE(d.has_value());
    EXPECT_EQ(d.error().code(), EINVAL);
  }
}

TEST(Codec, RejectsNameLongerThanNameMaxWithEnametoolong) {
  auto d = decode_tmessage(encode_tmessage(1, Tmkdir{1, std::string(256, 'a'), 0755, 0}), kMsize);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code(), ENAMETOOLONG);
  EXPECT_TRUE(
      decode_tmessage(encode_tmessage(1, Tmkdir{1, std::string(255, 'a'), 0755, 0}), kMsize));
}

TEST(Codec, RejectsNulInsideAnyString) {
  auto d = decode_tmessage(
      encode_tmessage(1, Tattach{1, kNoFid, std::string("ro\0ot", 5), "", kNoUname}), kMsize);
  EXPECT_FALSE(d.has_value());
}

TEST(Codec, UnknownTypeIsUnsupportedWithEopnotsupp) {
  // Topen (9P2000) is not part of 9P2000.L.
  std::vector<uint8_t> frame = {12, 0, 0, 0, 112, 1, 0, 1, 0, 0, 0, 0};
  auto d = decode_tmessage(frame, kMsize);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().kind(), ErrorKind::kUnsupported);
  EXPECT_EQ(d.error().code(), EOPNOTSUPP);
}

TEST(Codec, RMessageTypeIsNotAcceptedAsARequest) {
  auto frame = encode_rmessage(1, Rclunk{});
  auto d = decode_tmessage(frame, kMsize);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code(), EOPNOTSUPP);
}

TEST(Codec, DirentsRoundTripWithOffsetCookies) {
  std::vector<Dirent> in = {{sample_qid(1), 1, 4, "."},
                            {sample_qid(2), 2, 4, ".."},
                            {Qid{P9_QTFILE, 3, 3}, 3, 8, "head"}};
  std::string data;
  for (const auto& d : in) append_dirent(data, d);
  EXPECT_EQ(data.size(), dirent_size(".") + dirent_size("..") + dirent_size("head"));

  auto out = decode_dirents(data);

  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, in);
}

TEST(Codec, DecodeDirentsRejectsATruncatedRecord) {
  std::string data;
  append_dirent(data, Dirent{sample_qid(), 1, 8, "name"});
  data.pop_back();
  EXPECT_FALSE(decode_dirents(data).has_value());
}

TEST(Codec, NamesEveryMessageType) {
  EXPECT_STREQ(message_type_name(110), "Twalk");
  EXPECT_STREQ(message_type_name(7), "Rlerror");
  EXPECT_STREQ(message_type_name(112), "Topen");
  EXPECT_STREQ(message_type_name(250), "unknown");
}

}  // namespace
}  // namespace pinata::p9
