// The 9P2000.L message codec (docs/protocols/9p.md). Pure: bytes in, values out; no I/O.
//
// Wire format: every message is size[4] type[1] tag[2] body, little-endian, where `size`
// counts the whole message including itself. Strings are len[2] bytes[len] (no NUL). A qid
// is type[1] version[4] path[8]. The message set and field layouts are those of Linux's v9fs
// client for 9P2000.L (include/net/9p/9p.h numbering); diod's protocol.md describes them.
//
// Decoding treats the bytes as untrusted: every length is checked against what is left of the
// frame, the size field must equal the frame length and be at most the negotiated msize,
// strings must not contain NUL, names (walk components, names to create, link or remove) must
// be non-empty, at most kMaxNameLength bytes and free of '/', and names that create or remove
// an entry must not be "." or "..". Trailing bytes after the last field are an error, so a
// decoded message re-encodes to exactly the bytes it came from. Every failure is an Error
// whose code() is the errno a server should answer with (EINVAL, ENAMETOOLONG, EMSGSIZE,
// EOPNOTSUPP for an unknown type).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"

namespace pinata::p9 {

// Message types. Only the 9P2000.L set is listed; the 9P2000 / 9P2000.u-only messages
// (Topen, Tcreate, Tstat, Twstat, Terror) are unknown types to this codec.
enum class MessageType : uint8_t {
  Tlerror = 6,
  Rlerror = 7,
  Tstatfs = 8,
  Rstatfs = 9,
  Tlopen = 12,
  Rlopen = 13,
  Tlcreate = 14,
  Rlcreate = 15,
  Tsymlink = 16,
  Rsymlink = 17,
  Tmknod = 18,
  Rmknod = 19,
  Trename = 20,
  Rrename = 21,
  Treadlink = 22,
  Rreadlink = 23,
  Tgetattr = 24,
  Rgetattr = 25,
  Tsetattr = 26,
  Rsetattr = 27,
  Txattrwalk = 30,
  Rxattrwalk = 31,
  Txattrcreate = 32,
  Rxattrcreate = 33,
  Treaddir = 40,
  Rreaddir = 41,
  Tfsync = 50,
  Rfsync = 51,
  Tlock = 52,
  Rlock = 53,
  Tgetlock = 54,
  Rgetlock = 55,
  Tlink = 70,
  Rlink = 71,
  Tmkdir = 72,
  Rmkdir = 73,
  Trenameat = 74,
  Rrenameat = 75,
  Tunlinkat = 76,
  Runlinkat = 77,
  Tversion = 100,
  Rversion = 101,
  Tauth = 102,
  Rauth = 103,
  Tattach = 104,
  Rattach = 105,
  Tflush = 108,
  Rflush = 109,
  Twalk = 110,
  Rwalk = 111,
  Tread = 116,
  Rread = 117,
  Twrite = 118,
  Rwrite = 119,
  Tclunk = 120,
  Rclunk = 121,
  Tremove = 122,
  Rremove = 123,
};

// "Twalk", "Rlerror", ... or "unknown".
const char* message_type_name(uint8_t type);

constexpr size_t kHeaderSize = 7;          // size[4] type[1] tag[2]
constexpr size_t kQidSize = 13;            // type[1] version[4] path[8]
constexpr size_t kRreadOverhead = 11;      // header + count[4]: data bytes fit in msize - this
constexpr size_t kTwriteOverhead = 23;     // header + fid[4] offset[8] count[4]
constexpr uint16_t kNoTag = 0xffff;        // P9_NOTAG (Tversion)
constexpr uint32_t kNoFid = 0xffffffff;    // P9_NOFID
constexpr uint32_t kNoUname = 0xffffffff;  // P9_NONUNAME
constexpr size_t kMaxWalkNames = 16;       // P9_MAXWELEM
constexpr size_t kMaxNameLength = 255;     // NAME_MAX
constexpr std::string_view kVersion9P2000L = "9P2000.L";
constexpr std::string_view kVersionUnknown = "unknown";

// qid.type bits.
constexpr uint8_t P9_QTDIR = 0x80;
constexpr uint8_t P9_QTAPPEND = 0x40;
constexpr uint8_t P9_QTEXCL = 0x20;
constexpr uint8_t P9_QTMOUNT = 0x10;
constexpr uint8_t P9_QTAUTH = 0x08;
constexpr uint8_t P9_QTTMP = 0x04;
constexpr uint8_t P9_QTSYMLINK = 0x02;
constexpr uint8_t P9_QTLINK = 0x01;
constexpr uint8_t P9_QTFILE = 0x00;

// Tlopen / Tlcreate flags (the Linux x86 O_* values).
constexpr uint32_t P9_DOTL_RDONLY = 00000000;
constexpr uint32_t P9_DOTL_WRONLY = 00000001;
constexpr uint32_t P9_DOTL_RDWR = 00000002;
constexpr uint32_t P9_DOTL_NOACCESS = 00000003;
constexpr uint32_t P9_DOTL_ACCMODE = 00000003;
constexpr uint32_t P9_DOTL_CREATE = 00000100;
constexpr uint32_t P9_DOTL_EXCL = 00000200;
constexpr uint32_t P9_DOTL_NOCTTY = 00000400;
constexpr uint32_t P9_DOTL_TRUNC = 00001000;
constexpr uint32_t P9_DOTL_APPEND = 00002000;
constexpr uint32_t P9_DOTL_NONBLOCK = 00004000;
constexpr uint32_t P9_DOTL_DSYNC = 00010000;
constexpr uint32_t P9_DOTL_DIRECTORY = 00200000;

// Tgetattr request_mask / Rgetattr valid.
constexpr uint64_t P9_GETATTR_MODE = 0x00000001;
constexpr uint64_t P9_GETATTR_NLINK = 0x00000002;
constexpr uint64_t P9_GETATTR_UID = 0x00000004;
constexpr uint64_t P9_GETATTR_GID = 0x00000008;
constexpr uint64_t P9_GETATTR_RDEV = 0x00000010;
constexpr uint64_t P9_GETATTR_ATIME = 0x00000020;
constexpr uint64_t P9_GETATTR_MTIME = 0x00000040;
constexpr uint64_t P9_GETATTR_CTIME = 0x00000080;
constexpr uint64_t P9_GETATTR_INO = 0x00000100;
constexpr uint64_t P9_GETATTR_SIZE = 0x00000200;
constexpr uint64_t P9_GETATTR_BLOCKS = 0x00000400;
constexpr uint64_t P9_GETATTR_BASIC = 0x000007ff;
constexpr uint64_t P9_GETATTR_ALL = 0x00003fff;

// Tsetattr valid.
constexpr uint32_t P9_SETATTR_MODE = 0x00000001;
constexpr uint32_t P9_SETATTR_UID = 0x00000002;
constexpr uint32_t P9_SETATTR_GID = 0x00000004;
constexpr uint32_t P9_SETATTR_SIZE = 0x00000008;
constexpr uint32_t P9_SETATTR_ATIME = 0x00000010;
constexpr uint32_t P9_SETATTR_MTIME = 0x00000020;
constexpr uint32_t P9_SETATTR_CTIME = 0x00000040;
constexpr uint32_t P9_SETATTR_ATIME_SET = 0x00000080;
constexpr uint32_t P9_SETATTR_MTIME_SET = 0x00000100;

// Tunlinkat flags.
constexpr uint32_t P9_AT_REMOVEDIR = 0x200;

// Tlock / Tgetlock.
constexpr uint8_t P9_LOCK_TYPE_RDLCK = 0;
constexpr uint8_t P9_LOCK_TYPE_WRLCK = 1;
constexpr uint8_t P9_LOCK_TYPE_UNLCK = 2;
constexpr uint8_t P9_LOCK_SUCCESS = 0;
constexpr uint8_t P9_LOCK_BLOCKED = 1;
constexpr uint8_t P9_LOCK_ERROR = 2;

struct Qid {
  uint8_t type = P9_QTFILE;
  uint32_t version = 0;
  uint64_t path = 0;
  bool operator==(const Qid&) const = default;
};

// Tsetattr's body after the fid.
struct SetAttr {
  uint32_t valid = 0;  // P9_SETATTR_*
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t atime_sec = 0;
  uint64_t atime_nsec = 0;
  uint64_t mtime_sec = 0;
  uint64_t mtime_nsec = 0;
  bool operator==(const SetAttr&) const = default;
};

// Rgetattr's body.
struct Stat {
  uint64_t valid = 0;  // P9_GETATTR_*
  Qid qid;
  uint32_t mode = 0;  // st_mode, including the S_IFMT bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t nlink = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  uint64_t blksize = 0;
  uint64_t blocks = 0;
  uint64_t atime_sec = 0;
  uint64_t atime_nsec = 0;
  uint64_t mtime_sec = 0;
  uint64_t mtime_nsec = 0;
  uint64_t ctime_sec = 0;
  uint64_t ctime_nsec = 0;
  uint64_t btime_sec = 0;
  uint64_t btime_nsec = 0;
  uint64_t gen = 0;
  uint64_t data_version = 0;
  bool operator==(const Stat&) const = default;
};

// Rstatfs's body (struct statfs).
struct StatFs {
  uint32_t type = 0;
  uint32_t bsize = 0;
  uint64_t blocks = 0;
  uint64_t bfree = 0;
  uint64_t bavail = 0;
  uint64_t files = 0;
  uint64_t ffree = 0;
  uint64_t fsid = 0;
  uint32_t namelen = 0;
  bool operator==(const StatFs&) const = default;
};

// One Rreaddir record: qid[13] offset[8] type[1] name[s]. `offset` is the cookie a client
// passes in the next Treaddir to continue after this entry; `type` is a DT_* value.
struct Dirent {
  Qid qid;
  uint64_t offset = 0;
  uint8_t type = 0;
  std::string name;
  bool operator==(const Dirent&) const = default;
};

// ---- T-messages (client → server) -------------------------------------------------------
#define PINATA_P9_MESSAGE(name)                           \
  static constexpr MessageType kType = MessageType::name; \
  bool operator==(const name&) const = default

struct Tversion {
  uint32_t msize = 0;
  std::string version;
  PINATA_P9_MESSAGE(Tversion);
};
struct Tauth {
  uint32_t afid = 0;
  std::string uname;
  std::string aname;
  uint32_t n_uname = kNoUname;
  PINATA_P9_MESSAGE(Tauth);
};
struct Tattach {
  uint32_t fid = 0;
  uint32_t afid = kNoFid;
  std::string uname;
  std::string aname;
  uint32_t n_uname = kNoUname;
  PINATA_P9_MESSAGE(Tattach);
};
struct Tflush {
  uint16_t oldtag = 0;
  PINATA_P9_MESSAGE(Tflush);
};
struct Twalk {
  uint32_t fid = 0;
  uint32_t newfid = 0;
  std::vector<std::string> names;  // at most kMaxWalkNames; "." and ".." allowed
  PINATA_P9_MESSAGE(Twalk);
};
struct Tlopen {
  uint32_t fid = 0;
  uint32_t flags = 0;
  PINATA_P9_MESSAGE(Tlopen);
};
struct Tlcreate {
  uint32_t fid = 0;
  std::string name;
  uint32_t flags = 0;
  uint32_t mode = 0;
  uint32_t gid = 0;
  PINATA_P9_MESSAGE(Tlcreate);
};
struct Tsymlink {
  uint32_t fid = 0;
  std::string name;
  std::string symtgt;
  uint32_t gid = 0;
  PINATA_P9_MESSAGE(Tsymlink);
};
struct Tmknod {
  uint32_t dfid = 0;
  std::string name;
  uint32_t mode = 0;
  uint32_t major = 0;
  uint32_t minor = 0;
  uint32_t gid = 0;
  PINATA_P9_MESSAGE(Tmknod);
};
struct Trename {
  uint32_t fid = 0;
  uint32_t dfid = 0;
  std::string name;
  PINATA_P9_MESSAGE(Trename);
};
struct Treadlink {
  uint32_t fid = 0;
  PINATA_P9_MESSAGE(Treadlink);
};
struct Tgetattr {
  uint32_t fid = 0;
  uint64_t request_mask = 0;
  PINATA_P9_MESSAGE(Tgetattr);
};
struct Tsetattr {
  uint32_t fid = 0;
  SetAttr attr;
  PINATA_P9_MESSAGE(Tsetattr);
};
struct Txattrwalk {
  uint32_t fid = 0;
  uint32_t newfid = 0;
  std::string name;  // may be empty (list attributes)
  PINATA_P9_MESSAGE(Txattrwalk);
};
struct Txattrcreate {
  uint32_t fid = 0;
  std::string name;
  uint64_t attr_size = 0;
  uint32_t flags = 0;
  PINATA_P9_MESSAGE(Txattrcreate);
};
struct Treaddir {
  uint32_t fid = 0;
  uint64_t offset = 0;
  uint32_t count = 0;
  PINATA_P9_MESSAGE(Treaddir);
};
struct Tfsync {
  uint32_t fid = 0;
  uint32_t datasync = 0;
  PINATA_P9_MESSAGE(Tfsync);
};
struct Tlock {
  uint32_t fid = 0;
  uint8_t type = 0;
  uint32_t flags = 0;
  uint64_t start = 0;
  uint64_t length = 0;
  uint32_t proc_id = 0;
  std::string client_id;
  PINATA_P9_MESSAGE(Tlock);
};
struct Tgetlock {
  uint32_t fid = 0;
  uint8_t type = 0;
  uint64_t start = 0;
  uint64_t length = 0;
  uint32_t proc_id = 0;
  std::string client_id;
  PINATA_P9_MESSAGE(Tgetlock);
};
struct Tlink {
  uint32_t dfid = 0;
  uint32_t fid = 0;
  std::string name;
  PINATA_P9_MESSAGE(Tlink);
};
struct Tmkdir {
  uint32_t dfid = 0;
  std::string name;
  uint32_t mode = 0;
  uint32_t gid = 0;
  PINATA_P9_MESSAGE(Tmkdir);
};
struct Trenameat {
  uint32_t olddirfid = 0;
  std::string oldname;
  uint32_t newdirfid = 0;
  std::string newname;
  PINATA_P9_MESSAGE(Trenameat);
};
struct Tunlinkat {
  uint32_t dirfid = 0;
  std::string name;
  uint32_t flags = 0;  // P9_AT_REMOVEDIR
  PINATA_P9_MESSAGE(Tunlinkat);
};
struct Tstatfs {
  uint32_t fid = 0;
  PINATA_P9_MESSAGE(Tstatfs);
};
struct Tread {
  uint32_t fid = 0;
  uint64_t offset = 0;
  uint32_t count = 0;
  PINATA_P9_MESSAGE(Tread);
};
struct Twrite {
  uint32_t fid = 0;
  uint64_t offset = 0;
  std::string data;  // count[4] on the wire
  PINATA_P9_MESSAGE(Twrite);
};
struct Tclunk {
  uint32_t fid = 0;
  PINATA_P9_MESSAGE(Tclunk);
};
struct Tremove {
  uint32_t fid = 0;
  PINATA_P9_MESSAGE(Tremove);
};

// ---- R-messages (server → client) -------------------------------------------------------
struct Rlerror {
  uint32_t ecode = 0;  // a Linux errno
  PINATA_P9_MESSAGE(Rlerror);
};
struct Rstatfs {
  StatFs statfs;
  PINATA_P9_MESSAGE(Rstatfs);
};
struct Rlopen {
  Qid qid;
  uint32_t iounit = 0;
  PINATA_P9_MESSAGE(Rlopen);
};
struct Rlcreate {
  Qid qid;
  uint32_t iounit = 0;
  PINATA_P9_MESSAGE(Rlcreate);
};
struct Rsymlink {
  Qid qid;
  PINATA_P9_MESSAGE(Rsymlink);
};
struct Rmknod {
  Qid qid;
  PINATA_P9_MESSAGE(Rmknod);
};
struct Rrename {
  PINATA_P9_MESSAGE(Rrename);
};
struct Rreadlink {
  std::string target;
  PINATA_P9_MESSAGE(Rreadlink);
};
struct Rgetattr {
  Stat stat;
  PINATA_P9_MESSAGE(Rgetattr);
};
struct Rsetattr {
  PINATA_P9_MESSAGE(Rsetattr);
};
struct Rxattrwalk {
  uint64_t size = 0;
  PINATA_P9_MESSAGE(Rxattrwalk);
};
struct Rxattrcreate {
  PINATA_P9_MESSAGE(Rxattrcreate);
};
struct Rreaddir {
  std::string data;  // Dirent records (append_dirent / decode_dirents)
  PINATA_P9_MESSAGE(Rreaddir);
};
struct Rfsync {
  PINATA_P9_MESSAGE(Rfsync);
};
struct Rlock {
  uint8_t status = P9_LOCK_SUCCESS;
  PINATA_P9_MESSAGE(Rlock);
};
struct Rgetlock {
  uint8_t type = 0;
  uint64_t start = 0;
  uint64_t length = 0;
  uint32_t proc_id = 0;
  std::string client_id;
  PINATA_P9_MESSAGE(Rgetlock);
};
struct Rlink {
  PINATA_P9_MESSAGE(Rlink);
};
struct Rmkdir {
  Qid qid;
  PINATA_P9_MESSAGE(Rmkdir);
};
struct Rrenameat {
  PINATA_P9_MESSAGE(Rrenameat);
};
struct Runlinkat {
  PINATA_P9_MESSAGE(Runlinkat);
};
struct Rversion {
  uint32_t msize = 0;
  std::string version;
  PINATA_P9_MESSAGE(Rversion);
};
struct Rauth {
  Qid aqid;
  PINATA_P9_MESSAGE(Rauth);
};
struct Rattach {
  Qid qid;
  PINATA_P9_MESSAGE(Rattach);
};
struct Rflush {
  PINATA_P9_MESSAGE(Rflush);
};
struct Rwalk {
  std::vector<Qid> qids;
  PINATA_P9_MESSAGE(Rwalk);
};
struct Rread {
  std::string data;
  PINATA_P9_MESSAGE(Rread);
};
struct Rwrite {
  uint32_t count = 0;
  PINATA_P9_MESSAGE(Rwrite);
};
struct Rclunk {
  PINATA_P9_MESSAGE(Rclunk);
};
struct Rremove {
  PINATA_P9_MESSAGE(Rremove);
};
#undef PINATA_P9_MESSAGE

using TMessage = std::variant<Tversion, Tauth, Tattach, Tflush, Twalk, Tlopen, Tlcreate, Tsymlink,
                              Tmknod, Trename, Treadlink, Tgetattr, Tsetattr, Txattrwalk,
                              Txattrcreate, Treaddir, Tfsync, Tlock, Tgetlock, Tlink, Tmkdir,
                              Trenameat, Tunlinkat, Tstatfs, Tread, Twrite, Tclunk, Tremove>;
using RMessage =
    std::variant<Rlerror, Rstatfs, Rlopen, Rlcreate, Rsymlink, Rmknod, Rrename, Rreadlink, Rgetattr,
                 Rsetattr, Rxattrwalk, Rxattrcreate, Rreaddir, Rfsync, Rlock, Rgetlock, Rlink,
                 Rmkdir, Rrenameat, Runlinkat, Rversion, Rauth, Rattach, Rflush, Rwalk, Rread,
                 Rwrite, Rclunk, Rremove>;

struct TFrame {
  uint16_t tag = 0;
  TMessage message;
  bool operator==(const TFrame&) const = default;
};
struct RFrame {
  uint16_t tag = 0;
  RMessage message;
  bool operator==(const RFrame&) const = default;
};

struct Header {
  uint32_t size = 0;  // the whole message, header included
  uint8_t type = 0;
  uint16_t tag = 0;
};

MessageType message_type(const TMessage& message);
MessageType message_type(const RMessage& message);

// Decodes the 7-byte header at the start of `bytes`. Fails if fewer than 7 bytes are given or
// the size field is below 7. Does not check the size against a limit or the bytes present.
Result<Header> decode_header(std::span<const uint8_t> bytes);

// Decodes one whole T-message. `frame` must be exactly one message: its size field must
// equal frame.size(), which must not exceed `max_size` (the msize).
Result<TFrame> decode_tmessage(std::span<const uint8_t> frame, uint32_t max_size);
// Decodes one whole R-message (what a client reads; used by tests and the fuzzer).
Result<RFrame> decode_rmessage(std::span<const uint8_t> frame, uint32_t max_size);

// Encodes a message. Callers keep fields within the wire's ranges: strings of at most 65535
// bytes and at most 65535 walk names or qids (longer ones are cut, so the frame stays
// well-formed); data of at most 4 GiB.
std::vector<uint8_t> encode_tmessage(uint16_t tag, const TMessage& message);
std::vector<uint8_t> encode_rmessage(uint16_t tag, const RMessage& message);

// Readdir records.
size_t dirent_size(std::string_view name);
void append_dirent(std::string& out, const Dirent& dirent);
Result<std::vector<Dirent>> decode_dirents(std::string_view data);

// Name checks (the codec applies them to the messages' name fields).
enum class NameUse {
  kWalk,    // a Twalk component: "." and ".." are allowed (the server resolves them)
  kCreate,  // a name to create, link, rename or remove: "." and ".." are EINVAL
};
// Non-empty, at most kMaxNameLength bytes (else ENAMETOOLONG), no NUL and no '/' (EINVAL).
Status check_name(std::string_view name, NameUse use);

}  // namespace pinata::p9
