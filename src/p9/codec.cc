#include "p9/codec.h"

#include <cerrno>
#include <cstring>
#include <limits>
#include <type_traits>

namespace pinata::p9 {
namespace {

tl::unexpected<Error> invalid(int err, std::string message) {
  return tl::unexpected<Error>(Error(ErrorKind::kInvalidInput, std::move(message), err));
}

constexpr size_t kMaxString = std::numeric_limits<uint16_t>::max();

// Bounds-checked little-endian reader over one frame's body.
class WireReader {
 public:
  explicit WireReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  size_t remaining() const { return bytes_.size() - pos_; }
  bool at_end() const { return pos_ == bytes_.size(); }

  Result<uint8_t> u8() {
    TRY(need(1, "u8"));
    return bytes_[pos_++];
  }
  Result<uint16_t> u16() { return little<uint16_t>(); }
  Result<uint32_t> u32() { return little<uint32_t>(); }
  Result<uint64_t> u64() { return little<uint64_t>(); }

  Result<std::string> bytes(size_t n) {
    TRY(need(n, "data"));
    std::string out(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return out;
  }

  // len[2] bytes[len]; NUL bytes are rejected.
  Result<std::string> str() {
    TRY_ASSIGN(uint16_t len, u16());
    if (len > remaining()) return invalid(EINVAL, "string length past the end of the message");
    TRY_ASSIGN(std::string s, bytes(len));
    if (s.find('\0') != std::string::npos) return invalid(EINVAL, "string contains NUL");
    return s;
  }

  Result<std::string> name(NameUse use) {
    TRY_ASSIGN(std::string s, str());
    TRY(check_name(s, use));
    return s;
  }

  Result<Qid> qid() {
    Qid q;
    TRY_ASSIGN(q.type, u8());
    TRY_ASSIGN(q.version, u32());
    TRY_ASSIGN(q.path, u64());
    return q;
  }

 private:
  Status need(size_t n, const char* what) {
    if (n > remaining()) {
      return invalid(EINVAL, std::string("message too short for ") + what);
    }
    return {};
  }
  template <typename T>
  Result<T> little() {
    TRY(need(sizeof(T), "integer"));
    T v = 0;
    for (size_t i = 0; i < sizeof(T); i++) v |= T(bytes_[pos_ + i]) << (8 * i);
    pos_ += sizeof(T);
    return v;
  }

  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

class WireWriter {
 public:
  explicit WireWriter(std::vector<uint8_t>& out) : out_(out) {}

  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { little(v); }
  void u32(uint32_t v) { little(v); }
  void u64(uint64_t v) { little(v); }
  void raw(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }
  void str(std::string_view s) {
    if (s.size() > kMaxString) s = s.substr(0, kMaxString);
    u16(static_cast<uint16_t>(s.size()));
    raw(s);
  }
  void qid(const Qid& q) {
    u8(q.type);
    u32(q.version);
    u64(q.path);
  }
  // count[4] data[count]
  void data(std::string_view s) {
    if (s.size() > std::numeric_limits<uint32_t>::max()) {
      s = s.substr(0, std::numeric_limits<uint32_t>::max());
    }
    u32(static_cast<uint32_t>(s.size()));
    raw(s);
  }

 private:
  template <typename T>
  void little(T v) {
    for (size_t i = 0; i < sizeof(T); i++) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t>& out_;
};

// ---- T-message bodies --------------------------------------------------------------------

Result<TMessage> decode_tbody(uint8_t type, WireReader& r) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::Tversion: {
      Tversion m;
      TRY_ASSIGN(m.msize, r.u32());
      TRY_ASSIGN(m.version, r.str());
      return m;
    }
    case MessageType::Tauth: {
      Tauth m;
      TRY_ASSIGN(m.afid, r.u32());
      TRY_ASSIGN(m.uname, r.str());
      TRY_ASSIGN(m.aname, r.str());
      TRY_ASSIGN(m.n_uname, r.u32());
      return m;
    }
    case MessageType::Tattach: {
      Tattach m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.afid, r.u32());
      TRY_ASSIGN(m.uname, r.str());
      TRY_ASSIGN(m.aname, r.str());
      TRY_ASSIGN(m.n_uname, r.u32());
      return m;
    }
    case MessageType::Tflush: {
      Tflush m;
      TRY_ASSIGN(m.oldtag, r.u16());
      return m;
    }
    case MessageType::Twalk: {
      Twalk m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.newfid, r.u32());
      TRY_ASSIGN(uint16_t n, r.u16());
      if (n > kMaxWalkNames) {
        return invalid(EINVAL, "Twalk of " + std::to_string(n) + " names (at most " +
                                   std::to_string(kMaxWalkNames) + ")");
      }
      m.names.reserve(n);
      for (uint16_t i = 0; i < n; i++) {
        TRY_ASSIGN(std::string name, r.name(NameUse::kWalk));
        m.names.push_back(std::move(name));
      }
      return m;
    }
    case MessageType::Tlopen: {
      Tlopen m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.flags, r.u32());
      return m;
    }
    case MessageType::Tlcreate: {
      Tlcreate m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.name, r.name(NameUse::kCreate));
      TRY_ASSIGN(m.flags, r.u32());
      TRY_ASSIGN(m.mode, r.u32());
      TRY_ASSIGN(m.gid, r.u32());
      return m;
    }
    case MessageType::Tsymlink: {
      Tsymlink m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.name, r.name(NameUse::kCreate));
      TRY_ASSIGN(m.symtgt, r.str());
      TRY_ASSIGN(m.gid, r.u32());
      return m;
    }
    case MessageType::Tmknod: {
      Tmknod m;
      TRY_ASSIGN(m.dfid, r.u32());
      TRY_ASSIGN(m.name, r.name(NameUse::kCreate));
      TRY_ASSIGN(m.mode, r.u32());
      TRY_ASSIGN(m.major, r.u32());
      TRY_ASSIGN(m.minor, r.u32());
      TRY_ASSIGN(m.gid, r.u32());
      return m;
    }
    case MessageType::Trename: {
      Trename m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.dfid, r.u32());
      TRY_ASSIGN(m.name, r.name(NameUse::kCreate));
      return m;
    }
    case MessageType::Treadlink: {
      Treadlink m;
      TRY_ASSIGN(m.fid, r.u32());
      return m;
    }
    case MessageType::Tgetattr: {
      Tgetattr m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.request_mask, r.u64());
      return m;
    }
    case MessageType::Tsetattr: {
      Tsetattr m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.attr.valid, r.u32());
      TRY_ASSIGN(m.attr.mode, r.u32());
      TRY_ASSIGN(m.attr.uid, r.u32());
      TRY_ASSIGN(m.attr.gid, r.u32());
      TRY_ASSIGN(m.attr.size, r.u64());
      TRY_ASSIGN(m.attr.atime_sec, r.u64());
      TRY_ASSIGN(m.attr.atime_nsec, r.u64());
      TRY_ASSIGN(m.attr.mtime_sec, r.u64());
      TRY_ASSIGN(m.attr.mtime_nsec, r.u64());
      return m;
    }
    case MessageType::Txattrwalk: {
      Txattrwalk m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.newfid, r.u32());
      TRY_ASSIGN(m.name, r.str());
      return m;
    }
    case MessageType::Txattrcreate: {
      Txattrcreate m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.name, r.str());
      TRY_ASSIGN(m.attr_size, r.u64());
      TRY_ASSIGN(m.flags, r.u32());
      return m;
    }
    case MessageType::Treaddir: {
      Treaddir m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.offset, r.u64());
      TRY_ASSIGN(m.count, r.u32());
      return m;
    }
    case MessageType::Tfsync: {
      Tfsync m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.datasync, r.u32());
      return m;
    }
    case MessageType::Tlock: {
      Tlock m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.type, r.u8());
      TRY_ASSIGN(m.flags, r.u32());
      TRY_ASSIGN(m.start, r.u64());
      TRY_ASSIGN(m.length, r.u64());
      TRY_ASSIGN(m.proc_id, r.u32());
      TRY_ASSIGN(m.client_id, r.str());
      return m;
    }
    case MessageType::Tgetlock: {
      Tgetlock m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.type, r.u8());
      TRY_ASSIGN(m.start, r.u64());
      TRY_ASSIGN(m.length, r.u64());
      TRY_ASSIGN(m.proc_id, r.u32());
      TRY_ASSIGN(m.client_id, r.str());
      return m;
    }
    case MessageType::Tlink: {
      Tlink m;
      TRY_ASSIGN(m.dfid, r.u32());
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.name, r.name(NameUse::kCreate));
      return m;
    }
    case MessageType::Tmkdir: {
      Tmkdir m;
      TRY_ASSIGN(m.dfid, r.u32());
      TRY_ASSIGN(m.name, r.name(NameUse::kCreate));
      TRY_ASSIGN(m.mode, r.u32());
      TRY_ASSIGN(m.gid, r.u32());
      return m;
    }
    case MessageType::Trenameat: {
      Trenameat m;
      TRY_ASSIGN(m.olddirfid, r.u32());
      TRY_ASSIGN(m.oldname, r.name(NameUse::kCreate));
      TRY_ASSIGN(m.newdirfid, r.u32());
      TRY_ASSIGN(m.newname, r.name(NameUse::kCreate));
      return m;
    }
    case MessageType::Tunlinkat: {
      Tunlinkat m;
      TRY_ASSIGN(m.dirfid, r.u32());
      TRY_ASSIGN(m.name, r.name(NameUse::kCreate));
      TRY_ASSIGN(m.flags, r.u32());
      return m;
    }
    case MessageType::Tstatfs: {
      Tstatfs m;
      TRY_ASSIGN(m.fid, r.u32());
      return m;
    }
    case MessageType::Tread: {
      Tread m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.offset, r.u64());
      TRY_ASSIGN(m.count, r.u32());
      return m;
    }
    case MessageType::Twrite: {
      Twrite m;
      TRY_ASSIGN(m.fid, r.u32());
      TRY_ASSIGN(m.offset, r.u64());
      TRY_ASSIGN(uint32_t count, r.u32());
      if (count != r.remaining()) return invalid(EINVAL, "Twrite count does not match the data");
      TRY_ASSIGN(m.data, r.bytes(count));
      return m;
    }
    case MessageType::Tclunk: {
      Tclunk m;
      TRY_ASSIGN(m.fid, r.u32());
      return m;
    }
    case MessageType::Tremove: {
      Tremove m;
      TRY_ASSIGN(m.fid, r.u32());
      return m;
    }
    default: break;
  }
  return tl::unexpected<Error>(Error(
      ErrorKind::kUnsupported,
      "unsupported message type " + std::to_string(type) + " (" + message_type_name(type) + ")",
      EOPNOTSUPP));
}

struct TEncoder {
  WireWriter& w;
  void operator()(const Tversion& m) {
    w.u32(m.msize);
    w.str(m.version);
  }
  void operator()(const Tauth& m) {
    w.u32(m.afid);
    w.str(m.uname);
    w.str(m.aname);
    w.u32(m.n_uname);
  }
  void operator()(const Tattach& m) {
    w.u32(m.fid);
    w.u32(m.afid);
    w.str(m.uname);
    w.str(m.aname);
    w.u32(m.n_uname);
  }
  void operator()(const Tflush& m) { w.u16(m.oldtag); }
  void operator()(const Twalk& m) {
    w.u32(m.fid);
    w.u32(m.newfid);
    size_t n = std::min(m.names.size(), kMaxString);
    w.u16(static_cast<uint16_t>(n));
    for (size_t i = 0; i < n; i++) w.str(m.names[i]);
  }
  void operator()(const Tlopen& m) {
    w.u32(m.fid);
    w.u32(m.flags);
  }
  void operator()(const Tlcreate& m) {
    w.u32(m.fid);
    w.str(m.name);
    w.u32(m.flags);
    w.u32(m.mode);
    w.u32(m.gid);
  }
  void operator()(const Tsymlink& m) {
    w.u32(m.fid);
    w.str(m.name);
    w.str(m.symtgt);
    w.u32(m.gid);
  }
  void operator()(const Tmknod& m) {
    w.u32(m.dfid);
    w.str(m.name);
    w.u32(m.mode);
    w.u32(m.major);
    w.u32(m.minor);
    w.u32(m.gid);
  }
  void operator()(const Trename& m) {
    w.u32(m.fid);
    w.u32(m.dfid);
    w.str(m.name);
  }
  void operator()(const Treadlink& m) { w.u32(m.fid); }
  void operator()(const Tgetattr& m) {
    w.u32(m.fid);
    w.u64(m.request_mask);
  }
  void operator()(const Tsetattr& m) {
    w.u32(m.fid);
    w.u32(m.attr.valid);
    w.u32(m.attr.mode);
    w.u32(m.attr.uid);
    w.u32(m.attr.gid);
    w.u64(m.attr.size);
    w.u64(m.attr.atime_sec);
    w.u64(m.attr.atime_nsec);
    w.u64(m.attr.mtime_sec);
    w.u64(m.attr.mtime_nsec);
  }
  void operator()(const Txattrwalk& m) {
    w.u32(m.fid);
    w.u32(m.newfid);
    w.str(m.name);
  }
  void operator()(const Txattrcreate& m) {
    w.u32(m.fid);
    w.str(m.name);
    w.u64(m.attr_size);
    w.u32(m.flags);
  }
  void operator()(const Treaddir& m) {
    w.u32(m.fid);
    w.u64(m.offset);
    w.u32(m.count);
  }
  void operator()(const Tfsync& m) {
    w.u32(m.fid);
    w.u32(m.datasync);
  }
  void operator()(const Tlock& m) {
    w.u32(m.fid);
    w.u8(m.type);
    w.u32(m.flags);
    w.u64(m.start);
    w.u64(m.length);
    w.u32(m.proc_id);
    w.str(m.client_id);
  }
  void operator()(const Tgetlock& m) {
    w.u32(m.fid);
    w.u8(m.type);
    w.u64(m.start);
    w.u64(m.length);
    w.u32(m.proc_id);
    w.str(m.client_id);
  }
  void operator()(const Tlink& m) {
    w.u32(m.dfid);
    w.u32(m.fid);
    w.str(m.name);
  }
  void operator()(const Tmkdir& m) {
    w.u32(m.dfid);
    w.str(m.name);
    w.u32(m.mode);
    w.u32(m.gid);
  }
  void operator()(const Trenameat& m) {
    w.u32(m.olddirfid);
    w.str(m.oldname);
    w.u32(m.newdirfid);
    w.str(m.newname);
  }
  void operator()(const Tunlinkat& m) {
    w.u32(m.dirfid);
    w.str(m.name);
    w.u32(m.flags);
  }
  void operator()(const Tstatfs& m) { w.u32(m.fid); }
  void operator()(const Tread& m) {
    w.u32(m.fid);
    w.u64(m.offset);
    w.u32(m.count);
  }
  void operator()(const Twrite& m) {
    w.u32(m.fid);
    w.u64(m.offset);
    w.data(m.data);
  }
  void operator()(const Tclunk& m) { w.u32(m.fid); }
  void operator()(const Tremove& m) { w.u32(m.fid); }
};

// ---- R-message bodies --------------------------------------------------------------------

Result<Stat> decode_stat(WireReader& r) {
  Stat s;
  TRY_ASSIGN(s.valid, r.u64());
  TRY_ASSIGN(s.qid, r.qid());
  TRY_ASSIGN(s.mode, r.u32());
  TRY_ASSIGN(s.uid, r.u32());
  TRY_ASSIGN(s.gid, r.u32());
  uint64_t* fields[] = {&s.nlink,      &s.rdev,      &s.size,        &s.blksize,
                        &s.blocks,     &s.atime_sec, &s.atime_nsec,  &s.mtime_sec,
                        &s.mtime_nsec, &s.ctime_sec, &s.ctime_nsec,  &s.btime_sec,
                        &s.btime_nsec, &s.gen,       &s.data_version};
  for (uint64_t* f : fields) {
    TRY_ASSIGN(*f, r.u64());
  }
  return s;
}

Result<RMessage> decode_rbody(uint8_t type, WireReader& r) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::Rlerror: {
      Rlerror m;
      TRY_ASSIGN(m.ecode, r.u32());
      return m;
    }
    case MessageType::Rstatfs: {
      Rstatfs m;
      TRY_ASSIGN(m.statfs.type, r.u32());
      TRY_ASSIGN(m.statfs.bsize, r.u32());
      TRY_ASSIGN(m.statfs.blocks, r.u64());
      TRY_ASSIGN(m.statfs.bfree, r.u64());
      TRY_ASSIGN(m.statfs.bavail, r.u64());
      TRY_ASSIGN(m.statfs.files, r.u64());
      TRY_ASSIGN(m.statfs.ffree, r.u64());
      TRY_ASSIGN(m.statfs.fsid, r.u64());
      TRY_ASSIGN(m.statfs.namelen, r.u32());
      return m;
    }
    case MessageType::Rlopen: {
      Rlopen m;
      TRY_ASSIGN(m.qid, r.qid());
      TRY_ASSIGN(m.iounit, r.u32());
      return m;
    }
    case MessageType::Rlcreate: {
      Rlcreate m;
      TRY_ASSIGN(m.qid, r.qid());
      TRY_ASSIGN(m.iounit, r.u32());
      return m;
    }
    case MessageType::Rsymlink: {
      Rsymlink m;
      TRY_ASSIGN(m.qid, r.qid());
      return m;
    }
    case MessageType::Rmknod: {
      Rmknod m;
      TRY_ASSIGN(m.qid, r.qid());
      return m;
    }
    case MessageType::Rrename: return Rrename{};
    case MessageType::Rreadlink: {
      Rreadlink m;
      TRY_ASSIGN(m.target, r.str());
      return m;
    }
    case MessageType::Rgetattr: {
      Rgetattr m;
      TRY_ASSIGN(m.stat, decode_stat(r));
      return m;
    }
    case MessageType::Rsetattr: return Rsetattr{};
    case MessageType::Rxattrwalk: {
      Rxattrwalk m;
      TRY_ASSIGN(m.size, r.u64());
      return m;
    }
    case MessageType::Rxattrcreate: return Rxattrcreate{};
    case MessageType::Rreaddir: {
      Rreaddir m;
      TRY_ASSIGN(uint32_t count, r.u32());
      if (count != r.remaining()) return invalid(EINVAL, "Rreaddir count does not match");
      TRY_ASSIGN(m.data, r.bytes(count));
      return m;
    }
    case MessageType::Rfsync: return Rfsync{};
    case MessageType::Rlock: {
      Rlock m;
      TRY_ASSIGN(m.status, r.u8());
      return m;
    }
    case MessageType::Rgetlock: {
      Rgetlock m;
      TRY_ASSIGN(m.type, r.u8());
      TRY_ASSIGN(m.start, r.u64());
      TRY_ASSIGN(m.length, r.u64());
      TRY_ASSIGN(m.proc_id, r.u32());
      TRY_ASSIGN(m.client_id, r.str());
      return m;
    }
    case MessageType::Rlink: return Rlink{};
    case MessageType::Rmkdir: {
      Rmkdir m;
      TRY_ASSIGN(m.qid, r.qid());
      return m;
    }
    case MessageType::Rrenameat: return Rrenameat{};
    case MessageType::Runlinkat: return Runlinkat{};
    case MessageType::Rversion: {
      Rversion m;
      TRY_ASSIGN(m.msize, r.u32());
      TRY_ASSIGN(m.version, r.str());
      return m;
    }
    case MessageType::Rauth: {
      Rauth m;
      TRY_ASSIGN(m.aqid, r.qid());
      return m;
    }
    case MessageType::Rattach: {
      Rattach m;
      TRY_ASSIGN(m.qid, r.qid());
      return m;
    }
    case MessageType::Rflush: return Rflush{};
    case MessageType::Rwalk: {
      Rwalk m;
      TRY_ASSIGN(uint16_t n, r.u16());
      if (n > kMaxWalkNames) return invalid(EINVAL, "Rwalk with more than 16 qids");
      for (uint16_t i = 0; i < n; i++) {
        TRY_ASSIGN(Qid q, r.qid());
        m.qids.push_back(q);
      }
      return m;
    }
    case MessageType::Rread: {
      Rread m;
      TRY_ASSIGN(uint32_t count, r.u32());
      if (count != r.remaining()) return invalid(EINVAL, "Rread count does not match the data");
      TRY_ASSIGN(m.data, r.bytes(count));
      return m;
    }
    case MessageType::Rwrite: {
      Rwrite m;
      TRY_ASSIGN(m.count, r.u32());
      return m;
    }
    case MessageType::Rclunk: return Rclunk{};
    case MessageType::Rremove: return Rremove{};
    default: break;
  }
  return tl::unexpected<Error>(
      Error(ErrorKind::kUnsupported,
            "unsupported reply type " + std::to_string(type) + " (" + message_type_name(type) + ")",
            EOPNOTSUPP));
}

struct REncoder {
  WireWriter& w;
  void operator()(const Rlerror& m) { w.u32(m.ecode); }
  void operator()(const Rstatfs& m) {
    w.u32(m.statfs.type);
    w.u32(m.statfs.bsize);
    w.u64(m.statfs.blocks);
    w.u64(m.statfs.bfree);
    w.u64(m.statfs.bavail);
    w.u64(m.statfs.files);
    w.u64(m.statfs.ffree);
    w.u64(m.statfs.fsid);
    w.u32(m.statfs.namelen);
  }
  void operator()(const Rlopen& m) {
    w.qid(m.qid);
    w.u32(m.iounit);
  }
  void operator()(const Rlcreate& m) {
    w.qid(m.qid);
    w.u32(m.iounit);
  }
  void operator()(const Rsymlink& m) { w.qid(m.qid); }
  void operator()(const Rmknod& m) { w.qid(m.qid); }
  void operator()(const Rrename&) {}
  void operator()(const Rreadlink& m) { w.str(m.target); }
  void operator()(const Rgetattr& m) {
    const Stat& s = m.stat;
    w.u64(s.valid);
    w.qid(s.qid);
    w.u32(s.mode);
    w.u32(s.uid);
    w.u32(s.gid);
    for (uint64_t v : {s.nlink, s.rdev, s.size, s.blksize, s.blocks, s.atime_sec, s.atime_nsec,
                       s.mtime_sec, s.mtime_nsec, s.ctime_sec, s.ctime_nsec, s.btime_sec,
                       s.btime_nsec, s.gen, s.data_version}) {
      w.u64(v);
    }
  }
  void operator()(const Rsetattr&) {}
  void operator()(const Rxattrwalk& m) { w.u64(m.size); }
  void operator()(const Rxattrcreate&) {}
  void operator()(const Rreaddir& m) { w.data(m.data); }
  void operator()(const Rfsync&) {}
  void operator()(const Rlock& m) { w.u8(m.status); }
  void operator()(const Rgetlock& m) {
    w.u8(m.type);
    w.u64(m.start);
    w.u64(m.length);
    w.u32(m.proc_id);
    w.str(m.client_id);
  }
  void operator()(const Rlink&) {}
  void operator()(const Rmkdir& m) { w.qid(m.qid); }
  void operator()(const Rrenameat&) {}
  void operator()(const Runlinkat&) {}
  void operator()(const Rversion& m) {
    w.u32(m.msize);
    w.str(m.version);
  }
  void operator()(const Rauth& m) { w.qid(m.aqid); }
  void operator()(const Rattach& m) { w.qid(m.qid); }
  void operator()(const Rflush&) {}
  void operator()(const Rwalk& m) {
    size_t n = std::min(m.qids.size(), kMaxString);
    w.u16(static_cast<uint16_t>(n));
    for (size_t i = 0; i < n; i++) w.qid(m.qids[i]);
  }
  void operator()(const Rread& m) { w.data(m.data); }
  void operator()(const Rwrite& m) { w.u32(m.count); }
  void operator()(const Rclunk&) {}
  void operator()(const Rremove&) {}
};

// Checks the frame against its header and the limit; returns the header.
Result<Header> check_frame(std::span<const uint8_t> frame, uint32_t max_size) {
  TRY_ASSIGN(Header h, decode_header(frame));
  if (h.size != frame.size()) {
    return invalid(EINVAL, "size field " + std::to_string(h.size) + " does not match the " +
                               std::to_string(frame.size()) + "-byte message");
  }
  if (h.size > max_size) {
    return invalid(EMSGSIZE, "message of " + std::to_string(h.size) +
                                 " bytes is larger than msize " + std::to_string(max_size));
  }
  return h;
}

template <typename Variant, typename Writer>
std::vector<uint8_t> encode_frame(uint16_t tag, const Variant& message, uint8_t type) {
  std::vector<uint8_t> out;
  out.reserve(64);
  WireWriter w(out);
  w.u32(0);  // size, patched below
  w.u8(type);
  w.u16(tag);
  std::visit(Writer{w}, message);
  uint32_t size = static_cast<uint32_t>(out.size());
  for (size_t i = 0; i < 4; i++) out[i] = static_cast<uint8_t>(size >> (8 * i));
  return out;
}

}  // namespace

const char* message_type_name(uint8_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::Tlerror: return "Tlerror";
    case MessageType::Rlerror: return "Rlerror";
    case MessageType::Tstatfs: return "Tstatfs";
    case MessageType::Rstatfs: return "Rstatfs";
    case MessageType::Tlopen: return "Tlopen";
    case MessageType::Rlopen: return "Rlopen";
    case MessageType::Tlcreate: return "Tlcreate";
    case MessageType::Rlcreate: return "Rlcreate";
    case MessageType::Tsymlink: return "Tsymlink";
    case MessageType::Rsymlink: return "Rsymlink";
    case MessageType::Tmknod: return "Tmknod";
    case MessageType::Rmknod: return "Rmknod";
    case MessageType::Trename: return "Trename";
    case MessageType::Rrename: return "Rrename";
    case MessageType::Treadlink: return "Treadlink";
    case MessageType::Rreadlink: return "Rreadlink";
    case MessageType::Tgetattr: return "Tgetattr";
    case MessageType::Rgetattr: return "Rgetattr";
    case MessageType::Tsetattr: return "Tsetattr";
    case MessageType::Rsetattr: return "Rsetattr";
    case MessageType::Txattrwalk: return "Txattrwalk";
    case MessageType::Rxattrwalk: return "Rxattrwalk";
    case MessageType::Txattrcreate: return "Txattrcreate";
    case MessageType::Rxattrcreate: return "Rxattrcreate";
    case MessageType::Treaddir: return "Treaddir";
    case MessageType::Rreaddir: return "Rreaddir";
    case MessageType::Tfsync: return "Tfsync";
    case MessageType::Rfsync: return "Rfsync";
    case MessageType::Tlock: return "Tlock";
    case MessageType::Rlock: return "Rlock";
    case MessageType::Tgetlock: return "Tgetlock";
    case MessageType::Rgetlock: return "Rgetlock";
    case MessageType::Tlink: return "Tlink";
    case MessageType::Rlink: return "Rlink";
    case MessageType::Tmkdir: return "Tmkdir";
    case MessageType::Rmkdir: return "Rmkdir";
    case MessageType::Trenameat: return "Trenameat";
    case MessageType::Rrenameat: return "Rrenameat";
    case MessageType::Tunlinkat: return "Tunlinkat";
    case MessageType::Runlinkat: return "Runlinkat";
    case MessageType::Tversion: return "Tversion";
    case MessageType::Rversion: return "Rversion";
    case MessageType::Tauth: return "Tauth";
    case MessageType::Rauth: return "Rauth";
    case MessageType::Tattach: return "Tattach";
    case MessageType::Rattach: return "Rattach";
    case MessageType::Tflush: return "Tflush";
    case MessageType::Rflush: return "Rflush";
    case MessageType::Twalk: return "Twalk";
    case MessageType::Rwalk: return "Rwalk";
    case MessageType::Tread: return "Tread";
    case MessageType::Rread: return "Rread";
    case MessageType::Twrite: return "Twrite";
    case MessageType::Rwrite: return "Rwrite";
    case MessageType::Tclunk: return "Tclunk";
    case MessageType::Rclunk: return "Rclunk";
    case MessageType::Tremove: return "Tremove";
    case MessageType::Rremove: return "Rremove";
  }
  // Legacy 9P2000 / 9P2000.u messages, named for log lines.
  switch (type) {
    case 106: return "Terror";
    case 107: return "Rerror";
    case 112: return "Topen";
    case 114: return "Tcreate";
    case 124: return "Tstat";
    case 126: return "Twstat";
    default: return "unknown";
  }
}

MessageType message_type(const TMessage& message) {
  return std::visit([](const auto& m) { return std::decay_t<decltype(m)>::kType; }, message);
}
MessageType message_type(const RMessage& message) {
  return std::visit([](const auto& m) { return std::decay_t<decltype(m)>::kType; }, message);
}

Result<Header> decode_header(std::span<const uint8_t> bytes) {
  if (bytes.size() < kHeaderSize) return invalid(EINVAL, "message shorter than its header");
  Header h;
  h.size = uint32_t(bytes[0]) | uint32_t(bytes[1]) << 8 | uint32_t(bytes[2]) << 16 |
           uint32_t(bytes[3]) << 24;
  h.type = bytes[4];
  h.tag = static_cast<uint16_t>(bytes[5] | bytes[6] << 8);
  if (h.size < kHeaderSize) {
    return invalid(EINVAL, "size field " + std::to_string(h.size) + " is below 7");
  }
  return h;
}

Result<TFrame> decode_tmessage(std::span<const uint8_t> frame, uint32_t max_size) {
  TRY_ASSIGN(Header h, check_frame(frame, max_size));
  WireReader r(frame.subspan(kHeaderSize));
  auto body = decode_tbody(h.type, r);
  if (!body) return tl::unexpected(body.error().context(message_type_name(h.type)));
  if (!r.at_end()) {
    return invalid(EINVAL, std::string(message_type_name(h.type)) + ": " +
                               std::to_string(r.remaining()) + " trailing bytes");
  }
  return TFrame{h.tag, std::move(*body)};
}

Result<RFrame> decode_rmessage(std::span<const uint8_t> frame, uint32_t max_size) {
  TRY_ASSIGN(Header h, check_frame(frame, max_size));
  WireReader r(frame.subspan(kHeaderSize));
  auto body = decode_rbody(h.type, r);
  if (!body) return tl::unexpected(body.error().context(message_type_name(h.type)));
  if (!r.at_end()) {
    return invalid(EINVAL, std::string(message_type_name(h.type)) + ": " +
                               std::to_string(r.remaining()) + " trailing bytes");
  }
  return RFrame{h.tag, std::move(*body)};
}

std::vector<uint8_t> encode_tmessage(uint16_t tag, const TMessage& message) {
  return encode_frame<TMessage, TEncoder>(tag, message,
                                          static_cast<uint8_t>(message_type(message)));
}

std::vector<uint8_t> encode_rmessage(uint16_t tag, const RMessage& message) {
  return encode_frame<RMessage, REncoder>(tag, message,
                                          static_cast<uint8_t>(message_type(message)));
}

size_t dirent_size(std::string_view name) { return kQidSize + 8 + 1 + 2 + name.size(); }

void append_dirent(std::string& out, const Dirent& dirent) {
  std::vector<uint8_t> bytes;
  WireWriter w(bytes);
  w.qid(dirent.qid);
  w.u64(dirent.offset);
  w.u8(dirent.type);
  w.str(dirent.name);
  out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

Result<std::vector<Dirent>> decode_dirents(std::string_view data) {
  WireReader r(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  std::vector<Dirent> out;
  while (!r.at_end()) {
    Dirent d;
    TRY_ASSIGN(d.qid, r.qid());
    TRY_ASSIGN(d.offset, r.u64());
    TRY_ASSIGN(d.type, r.u8());
    TRY_ASSIGN(d.name, r.name(NameUse::kWalk));
    out.push_back(std::move(d));
  }
  return out;
}

Status check_name(std::string_view name, NameUse use) {
  if (name.empty()) return invalid(EINVAL, "empty name");
  if (name.size() > kMaxNameLength) {
    return invalid(ENAMETOOLONG, "name of " + std::to_string(name.size()) + " bytes (at most " +
                                     std::to_string(kMaxNameLength) + ")");
  }
  if (name.find('\0') != std::string_view::npos) return invalid(EINVAL, "name contains NUL");
  if (name.find('/') != std::string_view::npos) return invalid(EINVAL, "name contains '/'");
  if (use == NameUse::kCreate && (name == "." || name == "..")) {
    return invalid(EINVAL, "name \"" + std::string(name) + "\" cannot be created or removed");
  }
  return {};
}

}  // namespace pinata::p9
