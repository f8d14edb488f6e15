// memfs: in-memory nodes for synthetic 9P trees (docs/protocols/9p.md).
//
//   MemDir        a directory of any Nodes; clients may mkdir/create/unlink/rename in it
//                 unless it is read-only; code adds entries with add() either way
//   MemFile       bytes in memory: read, write, truncate (a static file when read-only)
//   CallbackFile  contents produced by a function when read (at offset 0), writes handed to
//                 a function: small computed files and control files
//   StreamFile    a "live" file: each open sees the latest post() (optionally), then every
//                 later post(); a read with nothing queued waits (without blocking the
//                 session) until a post() or until the client flushes it
//   MemFs         a FileSystem serving one root Node for every aname
//
// All nodes are thread-safe: producers may post() or set_contents() from any thread while
// sessions serve the tree. Directory structure is guarded by one process-wide mutex (trees
// are small); file contents by a mutex per file. Permissions and owners are reported, not
// enforced.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "p9/filesystem.h"

namespace pinata::p9 {

enum class Access { kReadWrite, kReadOnly };  // kReadOnly: changes by clients are EROFS

// Attributes shared by the memfs nodes: a fixed qid path, a version bumped on every change,
// mode/uid/gid/times (chmod, chown and utimes are stored).
class MemNode : public Node, public std::enable_shared_from_this<MemNode> {
 public:
  Qid qid() const override;
  Result<Attr> getattr() override;
  // Mode, uid, gid and times are stored; a size change goes to truncate_locked().
  Status setattr(const SetAttr& attr) override;

 protected:
  MemNode(uint8_t qid_type, uint32_t mode, Access access);
  // Called with mu_ held.
  virtual uint64_t size_locked() const { return 0; }
  virtual uint64_t nlink_locked() const { return 1; }
  virtual Status truncate_locked(uint64_t size);
  void touch_locked();  // bumps the version and mtime/ctime

  mutable std::mutex mu_;
  const Access access_;
  const uint8_t qid_type_;
  const uint64_t path_;
  uint32_t version_ = 0;
  Attr attr_;
};

class MemDir : public MemNode {
 public:
  static std::shared_ptr<MemDir> create(Access access = Access::kReadWrite, uint32_t mode = 0755);

  // Adds or replaces an entry (for code building the tree; allowed on read-only dirs).
  // `name` must pass check_name(kCreate).
  Status add(std::string_view name, std::shared_ptr<Node> node);
  // Adds a new MemDir with this directory's access and returns it (or the existing entry if
  // it is a MemDir).
  Result<std::shared_ptr<MemDir>> add_dir(std::string_view name);
  // Removes an entry (for code; allowed on read-only dirs). kNotFound if absent.
  Status remove(std::string_view name);
  // The entry, or null.
  std::shared_ptr<Node> get(std::string_view name) const;
  std::vector<std::string> names() const;

  Result<std::shared_ptr<Node>> lookup(std::string_view name) override;
  Result<std::vector<DirEntry>> readdir() override;
  Result<std::shared_ptr<Node>> mkdir(std::string_view name, uint32_t mode, uint32_t gid) override;
  // Makes an empty read-write MemFile.
  Result<std::shared_ptr<Node>> create(std::string_view name, uint32_t flags, uint32_t mode,
                                       uint32_t gid) override;
  // ENOTEMPTY for a non-empty directory, EISDIR/ENOTDIR when the kind does not match.
  Status unlink(std::string_view name, UnlinkKind kind) override;
  // Within and between MemDirs (EXDEV otherwise); replaces a file or an empty directory;
  // EINVAL when moving a directory below itself.
  Status rename(std::string_view old_name, const std::shared_ptr<Node>& new_dir,
                std::string_view new_name) override;

  MemDir(Access access, uint32_t mode);  // use create()

 protected:
  uint64_t size_locked() const override { return 0; }
  uint64_t nlink_locked() const override { return 2; }

 private:
  // Guarded by the process-wide tree mutex.
  std::map<std::string, std::shared_ptr<Node>, std::less<>> entries_;
  std::weak_ptr<MemDir> parent_;
};

class MemFile : public MemNode {
 public:
  static constexpr uint64_t kMaxSize = 64 << 20;  // EFBIG beyond

  static std::shared_ptr<MemFile> create(std::string contents = {},
                                         Access access = Access::kReadWrite, uint32_t mode = 0644);
  std::string contents() const;
  void set_contents(std::string contents);

  // Opening for writing a read-only file is EROFS; O_TRUNC truncates; O_APPEND writes at the
  // end whatever the offset.
  Result<std::unique_ptr<OpenFile>> open(uint32_t flags) override;

  MemFile(std::string contents, Access access, uint32_t mode);  // use create()

 protected:
  uint64_t size_locked() const override { return data_.size(); }
  Status truncate_locked(uint64_t size) override;

 private:
  class Handle;
  std::string data_;
};

class CallbackFile : public MemNode {
 public:
  using ReadFn = std::function<Result<std::string>()>;
  using WriteFn = std::function<Status(std::string_view data)>;

  // A read at offset 0 calls `read` and keeps the result for that open; reads at later
  // offsets slice the kept result (so a client reading in pieces sees one consistent value).
  // Each write passes its data to `write` (offsets are ignored); without `write` the file is
  // read-only (EROFS). Truncation (O_TRUNC, truncate to 0) is accepted and ignored so that
  // `echo x > file` works. Reported size is 0.
  static std::shared_ptr<CallbackFile> create(ReadFn read, WriteFn write = nullptr,
                                              uint32_t mode = 0);  // 0: 0444 or 0644

  Result<std::unique_ptr<OpenFile>> open(uint32_t flags) override;

  CallbackFile(ReadFn read, WriteFn write, uint32_t mode);  // use create()

 protected:
  Status truncate_locked(uint64_t size) override;

 private:
  class Handle;
  ReadFn read_;
  WriteFn write_;
};

class StreamFile : public MemNode {
 public:
  enum class Start {
    kLatest,  // a new open's queue starts with the last post() (e.g. the current head)
    kEmpty,   // a new open sees only posts made after it
  };

  // Reads take queued bytes (up to the count) at once; with nothing queued a read waits for
  // the next post() (or is cancelled by Tflush / clunk). Offsets are ignored: every open
  // reads its own stream from where it left off. Writes are EROFS; reported size is 0.
  static std::shared_ptr<StreamFile> create(Start start = Start::kLatest, uint32_t mode = 0444);

  // Appends `data` to the queue of every current open and answers their waiting reads; with
  // Start::kLatest it also becomes what new opens start with. Posts are delivered in order;
  // an open sees either a post or (kLatest) its data as its first chunk, never both.
  void post(std::string_view data);
  // The number of current opens.
  size_t reader_count() const;

  Result<std::unique_ptr<OpenFile>> open(uint32_t flags) override;

  StreamFile(Start start, uint32_t mode);  // use create()

 private:
  class Reader;
  class Handle;
  const Start start_;
  mutable std::mutex readers_mu_;  // ordered before each Reader's mutex
  std::string latest_;
  bool has_latest_ = false;
  std::vector<std::weak_ptr<Reader>> readers_;
};

class MemFs : public FileSystem {
 public:
  explicit MemFs(std::shared_ptr<Node> root = MemDir::create()) : root_(std::move(root)) {}
  const std::shared_ptr<Node>& root() const { return root_; }
  Result<std::shared_ptr<Node>> attach(std::string_view uname, std::string_view aname,
                                       uint32_t n_uname) override;

 private:
  std::shared_ptr<Node> root_;
};

}  // namespace pinata::p9
