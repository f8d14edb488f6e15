// The object model a 9P server serves (docs/protocols/9p.md, "The FileSystem interface").
//
// A FileSystem hands out a root Node per Tattach. A Node is a file or a directory, shared
// (std::shared_ptr) between every fid that refers to it; Tlopen of a file asks the Node for
// an OpenFile, which lives exactly as long as that open fid: its destructor is the clunk hook
// and runs on Tclunk, Tremove, a re-negotiating Tversion, or when the connection closes.
//
// Threads: the server calls Node and OpenFile methods from its session thread, one call at a
// time per session (several sessions may share a tree, so shared nodes must lock). The one
// asynchronous operation is OpenFile::read: it answers through a Responder, now or later, from
// any thread. Every other method answers by returning and should not block for long: it
// holds up the other requests of its connection.
//
// Errors: return pinata Errors. The server answers Rlerror with to_errno(error): the error's
// code() if set, else one chosen by its kind. Use posix_error(EROFS, ...) to pick the errno.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "p9/codec.h"

namespace pinata::p9 {

// ---- errors ------------------------------------------------------------------------------

// An Error carrying `err` as its errno (kind kNotFound for ENOENT, kAlreadyExists for EEXIST,
// kInvalidInput for EINVAL, kUnsupported for EOPNOTSUPP/ENOTSUP, kIo otherwise).
Error posix_error(int err, std::string what);
inline tl::unexpected<Error> fail_posix(int err, std::string what) {
  return tl::unexpected<Error>(posix_error(err, std::move(what)));
}
// The errno to put in an Rlerror: error.code() if non-zero; otherwise kNotFound → ENOENT,
// kAlreadyExists → EEXIST, kInvalidInput → EINVAL, kUnsupported → EOPNOTSUPP,
// kTimeout → ETIMEDOUT, anything else → EIO.
int to_errno(const Error& error);

// ---- values ------------------------------------------------------------------------------

struct Timespec {
  uint64_t sec = 0;
  uint64_t nsec = 0;
  bool operator==(const Timespec&) const = default;
};
Timespec now();

// A new qid.path, unique in this process (for synthetic nodes).
uint64_t allocate_qid_path();

// What Node::getattr reports. The server adds the qid, ino (= qid.path), blksize and blocks.
struct Attr {
  uint32_t mode = 0;  // st_mode including the type: S_IFDIR | 0755, S_IFREG | 0644, ...
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t nlink = 1;
  uint64_t size = 0;
  uint64_t rdev = 0;
  Timespec atime;
  Timespec mtime;
  Timespec ctime;
};

struct DirEntry {
  std::string name;  // never "." or ".." (the server adds those)
  Qid qid;
};

enum class UnlinkKind { kFile, kDirectory };  // Tunlinkat without / with AT_REMOVEDIR

// ---- Responder -----------------------------------------------------------------------------

// The answer to one Tread. Copyable; all copies share one request. The first reply() or fail()
// answers it; later calls and calls after a cancellation do nothing and return false.
// Thread-safe. If every copy is destroyed without an answer, the request fails with EIO.
// reply()/fail() may be called with a lock held that the cancel hook also takes: the server
// never holds its own locks while it runs a hook. The reply is written before reply() returns.
class Responder {
 public:
  // Implemented by the server (and by detached()); not for fs code.
  class State {
   public:
    virtual ~State() = default;
    virtual uint32_t count() const = 0;
    virtual bool complete(Result<std::string_view> result) = 0;
    virtual void on_cancel(std::function<void()> hook) = 0;
    virtual bool finished() const = 0;
  };
  explicit Responder(std::shared_ptr<State> state) : state_(std::move(state)) {}

  // A responder outside any session (tests, adapters): `done` runs once with the answer.
  // cancel() of the returned handle's request runs the cancel hook.
  struct Detached;
  static Detached detached(uint32_t count, std::function<void(Result<std::string>)> done);

  // The most bytes the reply may carry (Tread's count, capped by msize); data beyond it is cut.
  uint32_t count() const { return state_->count(); }
  // Answers with `data` (an empty reply means end of file).
  bool reply(std::string_view data) { return state_->complete(data); }
  // Answers with an Rlerror of to_errno(error).
  bool fail(const Error& error) { return state_->complete(tl::unexpected<Error>(error)); }
  // `hook` runs once, on whichever thread cancels, if the request is cancelled (Tflush of its
  // tag, Tclunk of its fid, the connection closing). Register it after storing the responder
  // where the hook can find it and without holding a lock the hook takes: if the request is
  // already cancelled the hook runs at once, on this thread. A hook set on an answered request
  // never runs. After cancellation no reply is sent for the request.
  void on_cancel(std::function<void()> hook) { state_->on_cancel(std::move(hook)); }
  // Answered or cancelled.
  bool finished() const { return state_->finished(); }

 private:
  std::shared_ptr<State> state_;
};

struct Responder::Detached {
  Responder responder;
  std::function<void()> cancel;  // cancels the request: runs its hook, drops later replies
};

// ---- OpenFile ------------------------------------------------------------------------------

class OpenFile {
 public:
  // The clunk hook: runs when the fid is clunked or removed or the connection closes, after
  // every read still pending on this fid has been cancelled.
  virtual ~OpenFile() = default;

  // Reads at most `count` bytes (== responder.count(): Tread's count capped by the msize) at
  // `offset`. May answer before returning, or keep the responder and answer later from any
  // thread (a blocking "live" file); such a file registers responder.on_cancel to forget a
  // waiting read. Other requests on the connection proceed meanwhile.
  virtual void read(uint64_t offset, uint32_t count, Responder responder) = 0;
  // Writes `data` at `offset`; returns the count written. Default: EBADF.
  virtual Result<uint32_t> write(uint64_t offset, std::string_view data);
  virtual Status fsync() { return {}; }
  // Rlopen's iounit; 0 lets the client use msize - 24.
  virtual uint32_t iounit() const { return 0; }
};

// ---- Node ----------------------------------------------------------------------------------

class Node {
 public:
  virtual ~Node() = default;

  // Stable for the node's life: qid.path identifies it (the client's inode number),
  // qid.type says what it is (P9_QTDIR for directories), qid.version may change with content.
  virtual Qid qid() const = 0;
  bool is_directory() const { return (qid().type & P9_QTDIR) != 0; }

  virtual Result<Attr> getattr() = 0;
  // Tsetattr. The server has resolved "now" times: P9_SETATTR_ATIME/MTIME come with their
  // values filled in. Default: time changes are accepted and ignored, anything else is EPERM.
  virtual Status setattr(const SetAttr& attr);

  // Files: a new open for Tlopen/Tlcreate. `flags` are Linux open flags (P9_DOTL_*); the
  // server has checked that directories are only opened for reading and never calls this
  // for them. Default: EOPNOTSUPP.
  virtual Result<std::unique_ptr<OpenFile>> open(uint32_t flags);
  // Symlinks: Treadlink. Default: EINVAL.
  virtual Result<std::string> readlink();

  // Directories. Names have passed check_name (never "." or "..", no '/'). Defaults: ENOTDIR
  // for lookup/readdir, EOPNOTSUPP for the rest.
  virtual Result<std::shared_ptr<Node>> lookup(std::string_view name);
  virtual Result<std::vector<DirEntry>> readdir();
  virtual Result<std::shared_ptr<Node>> mkdir(std::string_view name, uint32_t mode, uint32_t gid);
  // Tlcreate: makes a file; the server then calls open() on it with the same flags.
  virtual Result<std::shared_ptr<Node>> create(std::string_view name, uint32_t flags, uint32_t mode,
                                               uint32_t gid);
  virtual Status unlink(std::string_view name, UnlinkKind kind);
  // Trenameat / Trename. Return EXDEV if `new_dir` is not one this node can move into.
  virtual Status rename(std::string_view old_name, const std::shared_ptr<Node>& new_dir,
                        std::string_view new_name);
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Tattach: the root of the tree named by `aname` for this user.
  virtual Result<std::shared_ptr<Node>> attach(std::string_view uname, std::string_view aname,
                                               uint32_t n_uname) = 0;
  // Tstatfs. Default: a small synthetic answer (type V9FS_MAGIC, bsize 4096, namelen 255).
  virtual Result<StatFs> statfs();
};

}  // namespace pinata::p9
