#include "p9/memfs.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <optional>

namespace pinata::p9 {
namespace {

// Guards every MemDir's entries and parent link. Recursive so that a custom node called
// while it is held (qid(), readdir()) may itself use a MemDir.
std::recursive_mutex& tree_mutex() {
  static std::recursive_mutex m;
  return m;
}

bool wants_write(uint32_t flags) {
  uint32_t mode = flags & P9_DOTL_ACCMODE;
  return mode == P9_DOTL_WRONLY || mode == P9_DOTL_RDWR || (flags & P9_DOTL_TRUNC);
}

std::string_view slice(std::string_view data, uint64_t offset, uint32_t count) {
  if (offset >= data.size()) return {};
  return data.substr(offset, count);
}

}  // namespace

// ---- MemNode -------------------------------------------------------------------------------

MemNode::MemNode(uint8_t qid_type, uint32_t mode, Access access)
    : access_(access), qid_type_(qid_type), path_(allocate_qid_path()) {
  attr_.mode = ((qid_type & P9_QTDIR) ? S_IFDIR : S_IFREG) | (mode & 07777);
  attr_.atime = attr_.mtime = attr_.ctime = now();
}

Qid MemNode::qid() const {
  std::lock_guard lock(mu_);
  return Qid{qid_type_, version_, path_};
}

Result<Attr> MemNode::getattr() {
  std::lock_guard lock(mu_);
  Attr a = attr_;
  a.size = size_locked();
  a.nlink = nlink_locked();
  return a;
}

Status MemNode::setattr(const SetAttr& attr) {
  constexpr uint32_t kChanges = P9_SETATTR_MODE | P9_SETATTR_UID | P9_SETATTR_GID |
                                P9_SETATTR_SIZE | P9_SETATTR_ATIME | P9_SETATTR_MTIME |
                                P9_SETATTR_CTIME;
  std::lock_guard lock(mu_);
  if ((attr.valid & kChanges) == 0) return {};
  if (access_ == Access::kReadOnly) return fail_posix(EROFS, "setattr of a read-only node");
  if (attr.valid & P9_SETATTR_SIZE) TRY(truncate_locked(attr.size));
  if (attr.valid & P9_SETATTR_MODE) attr_.mode = (attr_.mode & S_IFMT) | (attr.mode & 07777);
  if (attr.valid & P9_SETATTR_UID) attr_.uid = attr.uid;
  if (attr.valid & P9_SETATTR_GID) attr_.gid = attr.gid;
  if (attr.valid & P9_SETATTR_ATIME) attr_.atime = Timespec{attr.atime_sec, attr.atime_nsec};
  if (attr.valid & P9_SETATTR_MTIME) attr_.mtime = Timespec{attr.mtime_sec, attr.mtime_nsec};
  attr_.ctime = now();
  return {};
}

Status MemNode::truncate_locked(uint64_t) {
  if (qid_type_ & P9_QTDIR) return fail_posix(EISDIR, "truncate of a directory");
  return fail_posix(EINVAL, "this file cannot be truncated");
}

void MemNode::touch_locked() {
  version_++;
  attr_.mtime = attr_.ctime = now();
}

// ---- MemDir --------------------------------------------------------------------------------

MemDir::MemDir(Access access, uint32_t mode) : MemNode(P9_QTDIR, mode, access) {}

std::shared_ptr<MemDir> MemDir::create(Access access, uint32_t mode) {
  return std::make_shared<MemDir>(access, mode);
}

Status MemDir::add(std::string_view name, std::shared_ptr<Node> node) {
  TRY(check_name(name, NameUse::kCreate));
  if (!node) return fail_posix(EINVAL, "add of a null node");
  std::lock_guard tree(tree_mutex());
  if (auto dir = std::dynamic_pointer_cast<MemDir>(node)) {
    dir->parent_ = std::static_pointer_cast<MemDir>(weak_from_this().lock());
  }
  entries_.insert_or_assign(std::string(name), std::move(node));
  std::lock_guard lock(mu_);
  touch_locked();
  return {};
}

Result<std::shared_ptr<MemDir>> MemDir::add_dir(std::string_view name) {
  TRY(check_name(name, NameUse::kCreate));
  std::lock_guard tree(tree_mutex());
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    if (auto dir = std::dynamic_pointer_cast<MemDir>(it->second)) return dir;
    return fail_posix(EEXIST, std::string(name));
  }
  auto dir = MemDir::create(access_);
  TRY(add(name, dir));
  return dir;
}

Status MemDir::remove(std::string_view name) {
  std::lock_guard tree(tree_mutex());
  auto it = entries_.find(name);
  if (it == entries_.end()) return fail_posix(ENOENT, std::string(name));
  if (auto dir = std::dynamic_pointer_cast<MemDir>(it->second)) dir->parent_.reset();
  entries_.erase(it);
  std::lock_guard lock(mu_);
  touch_locked();
  return {};
}

std::shared_ptr<Node> MemDir::get(std::string_view name) const {
  std::lock_guard tree(tree_mutex());
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second;
}

std::vector<std::string> MemDir::names() const {
  std::lock_guard tree(tree_mutex());
  std::vector<std::string> out;
  for (const auto& [name, node] : entries_) out.push_back(name);
  return out;
}

Result<std::shared_ptr<Node>> MemDir::lookup(std::string_view name) {
  auto node = get(name);
  if (!node) return fail_posix(ENOENT, std::string(name));
  return node;
}

Result<std::vector<DirEntry>> MemDir::readdir() {
  std::vector<std::pair<std::string, std::shared_ptr<Node>>> copy;
  {
    std::lock_guard tree(tree_mutex());
    copy.assign(entries_.begin(), entries_.end());
  }
  std::vector<DirEntry> out;
  out.reserve(copy.size());
  for (auto& [name, node] : copy) out.push_back(DirEntry{name, node->qid()});
  return out;
}

Result<std::shared_ptr<Node>> MemDir::mkdir(std::string_view name, uint32_t mode, uint32_t) {
  if (access_ == Access::kReadOnly) return fail_posix(EROFS, "mkdir in a read-only directory");
  std::lock_guard tree(tree_mutex());
  if (entries_.count(name)) return fail_posix(EEXIST, std::string(name));
  auto dir = std::make_shared<MemDir>(access_, mode);
  TRY(add(name, dir));
  return std::shared_ptr<Node>(dir);
}

Result<std::shared_ptr<Node>> MemDir::create(std::string_view name, uint32_t, uint32_t mode,
                                             uint32_t) {
  if (access_ == Access::kReadOnly) return fail_posix(EROFS, "create in a read-only directory");
  std::lock_guard tree(tree_mutex());
  if (entries_.count(name)) return fail_posix(EEXIST, std::string(name));
  auto file = MemFile::create({}, Access::kReadWrite, mode);
  TRY(add(name, file));
  return std::shared_ptr<Node>(file);
}

namespace {

// Whether a directory node has entries; the tree mutex is held.
Result<bool> dir_is_empty(const std::shared_ptr<Node>& node) {
  TRY_ASSIGN(auto entries, node->readdir());
  return entries.empty();
}

}  // namespace

Status MemDir::unlink(std::string_view name, UnlinkKind kind) {
  if (access_ == Access::kReadOnly) return fail_posix(EROFS, "unlink in a read-only directory");
  std::lock_guard tree(tree_mutex());
  auto it = entries_.find(name);
  if (it == entries_.end()) return fail_posix(ENOENT, std::string(name));
  const std::shared_ptr<Node>& node = it->second;
  const bool is_dir = node->is_directory();
  if (kind == UnlinkKind::kDirectory && !is_dir) return fail_posix(ENOTDIR, std::string(name));
  if (kind == UnlinkKind::kFile && is_dir) return fail_posix(EISDIR, std::string(name));
  if (is_dir) {
    TRY_ASSIGN(bool empty, dir_is_empty(node));
    if (!empty) return fail_posix(ENOTEMPTY, std::string(name));
  }
  if (auto dir = std::dynamic_pointer_cast<MemDir>(node)) dir->parent_.reset();
  entries_.erase(it);
  std::lock_guard lock(mu_);
  touch_locked();
  return {};
}

Status MemDir::rename(std::string_view old_name, const std::shared_ptr<Node>& new_dir,
                      std::string_view new_name) {
  auto dst = std::dynamic_pointer_cast<MemDir>(new_dir);
  if (!dst) return fail_posix(EXDEV, "rename out of a memfs directory");
  if (access_ == Access::kReadOnly || dst->access_ == Access::kReadOnly) {
    return fail_posix(EROFS, "rename in a read-only directory");
  }
  std::lock_guard tree(tree_mutex());
  auto it = entries_.find(old_name);
  if (it == entries_.end()) return fail_posix(ENOENT, std::string(old_name));
  std::shared_ptr<Node> node = it->second;
  if (dst.get() == this && old_name == new_name) return {};
  const bool node_is_dir = node->is_directory();
  if (node_is_dir) {
    for (std::shared_ptr<MemDir> d = dst; d; d = d->parent_.lock()) {
      if (d.get() == node.get()) return fail_posix(EINVAL, "rename of a directory below itself");
    }
  }
  auto target = dst->entries_.find(new_name);
  if (target != dst->entries_.end()) {
    if (target->second == node) return {};
    const bool target_is_dir = target->second->is_directory();
    if (node_is_dir && !target_is_dir) return fail_posix(ENOTDIR, std::string(new_name));
    if (!node_is_dir && target_is_dir) return fail_posix(EISDIR, std::string(new_name));
    if (target_is_dir) {
      TRY_ASSIGN(bool empty, dir_is_empty(target->second));
      if (!empty) return fail_posix(ENOTEMPTY, std::string(new_name));
    }
    if (auto dir = std::dynamic_pointer_cast<MemDir>(target->second)) dir->parent_.reset();
  }
  entries_.erase(it);
  if (auto dir = std::dynamic_pointer_cast<MemDir>(node)) dir->parent_ = dst;
  dst->entries_.insert_or_assign(std::string(new_name), std::move(node));
  {
    std::lock_guard lock(mu_);
    touch_locked();
  }
  if (dst.get() != this) {
    std::lock_guard lock(dst->mu_);
    dst->touch_locked();
  }
  return {};
}

// ---- MemFile -------------------------------------------------------------------------------

class MemFile::Handle : public OpenFile {
 public:
  Handle(std::shared_ptr<MemFile> file, bool append) : file_(std::move(file)), append_(append) {}

  void read(uint64_t offset, uint32_t count, Responder responder) override {
    std::string out;
    {
      std::lock_guard lock(file_->mu_);
      out = std::string(slice(file_->data_, offset, count));
    }
    responder.reply(out);
  }

  Result<uint32_t> write(uint64_t offset, std::string_view data) override {
    std::lock_guard lock(file_->mu_);
    std::string& d = file_->data_;
    if (append_) offset = d.size();
    if (offset > kMaxSize || data.size() > kMaxSize - offset) {
      return fail_posix(EFBIG, "memfs file larger than " + std::to_string(kMaxSize));
    }
    if (offset > d.size()) d.resize(offset, '\0');
    size_t overlap = std::min<size_t>(data.size(), d.size() - offset);
    d.replace(offset, overlap, data);
    file_->touch_locked();
    return static_cast<uint32_t>(data.size());
  }

 private:
  std::shared_ptr<MemFile> file_;
  const bool append_;
};

MemFile::MemFile(std::string contents, Access access, uint32_t mode)
    : MemNode(P9_QTFILE, mode, access), data_(std::move(contents)) {}

std::shared_ptr<MemFile> MemFile::create(std::string contents, Access access, uint32_t mode) {
  return std::make_shared<MemFile>(std::move(contents), access, mode);
}

std::string MemFile::contents() const {
  std::lock_guard lock(mu_);
  return data_;
}

void MemFile::set_contents(std::string contents) {
  std::lock_guard lock(mu_);
  data_ = std::move(contents);
  touch_locked();
}

Result<std::unique_ptr<OpenFile>> MemFile::open(uint32_t flags) {
  auto self = std::static_pointer_cast<MemFile>(weak_from_this().lock());
  if (!self) return fail_posix(EIO, "memfs file not owned by a shared_ptr");
  if (wants_write(flags) && access_ == Access::kReadOnly) {
    return fail_posix(EROFS, "read-only file");
  }
  if ((flags & P9_DOTL_TRUNC) && (flags & P9_DOTL_ACCMODE) != P9_DOTL_RDONLY) {
    std::lock_guard lock(mu_);
    data_.clear();
    touch_locked();
  }
  return std::unique_ptr<OpenFile>(
      std::make_unique<Handle>(std::move(self), (flags & P9_DOTL_APPEND) != 0));
}

Status MemFile::truncate_locked(uint64_t size) {
  if (size > kMaxSize) return fail_posix(EFBIG, "memfs file too large");
  data_.resize(size, '\0');
  touch_locked();
  return {};
}

// ---- CallbackFile --------------------------------------------------------------------------

class CallbackFile::Handle : public OpenFile {
 public:
  explicit Handle(std::shared_ptr<CallbackFile> file) : file_(std::move(file)) {}

  void read(uint64_t offset, uint32_t count, Responder responder) override {
    if (!file_->read_) {
      responder.reply({});
      return;
    }
    std::string out;
    {
      std::lock_guard lock(mu_);
      if (offset == 0 || !has_snapshot_) {
        auto value = file_->read_();
        if (!value) {
          responder.fail(value.error());
          return;
        }
        snapshot_ = std::move(*value);
        has_snapshot_ = true;
      }
      out = std::string(slice(snapshot_, offset, count));
    }
    responder.reply(out);
  }

  Result<uint32_t> write(uint64_t, std::string_view data) override {
    if (!file_->write_) return fail_posix(EROFS, "read-only file");
    TRY(file_->write_(data));
    return static_cast<uint32_t>(data.size());
  }

 private:
  std::shared_ptr<CallbackFile> file_;
  std::mutex mu_;
  std::string snapshot_;
  bool has_snapshot_ = false;
};

CallbackFile::CallbackFile(ReadFn read, WriteFn write, uint32_t mode)
    : MemNode(P9_QTFILE, mode != 0 ? mode : (write ? 0644 : 0444),
              write ? Access::kReadWrite : Access::kReadOnly),
      read_(std::move(read)),
      write_(std::move(write)) {}

std::shared_ptr<CallbackFile> CallbackFile::create(ReadFn read, WriteFn write, uint32_t mode) {
  return std::make_shared<CallbackFile>(std::move(read), std::move(write), mode);
}

Result<std::unique_ptr<OpenFile>> CallbackFile::open(uint32_t flags) {
  auto self = std::static_pointer_cast<CallbackFile>(weak_from_this().lock());
  if (!self) return fail_posix(EIO, "memfs file not owned by a shared_ptr");
  if (wants_write(flags) && !write_) return fail_posix(EROFS, "read-only file");
  return std::unique_ptr<OpenFile>(std::make_unique<Handle>(std::move(self)));
}

Status CallbackFile::truncate_locked(uint64_t size) {
  if (size != 0) return fail_posix(EINVAL, "a callback file can only be truncated to 0");
  return {};
}

// ---- StreamFile ----------------------------------------------------------------------------

// One open's queue and its waiting reads.
class StreamFile::Reader {
 public:
  struct Waiter {
    uint64_t id;
    Responder responder;
  };

  // Queues `data` and answers waiting reads in order. Caller holds readers_mu_ (so posts are
  // delivered in order); the responders' writes happen under this reader's mutex.
  void deliver(std::string_view data) {
    std::lock_guard lock(mu);
    if (closed) return;
    queued.append(data);
    while (!waiting.empty() && !queued.empty()) {
      Waiter w = std::move(waiting.front());
      waiting.pop_front();
      size_t n = std::min<size_t>(w.responder.count(), queued.size());
      if (w.responder.reply(std::string_view(queued).substr(0, n))) queued.erase(0, n);
    }
  }

  std::mutex mu;
  std::string queued;
  std::deque<Waiter> waiting;
  uint64_t next_id = 1;
  bool closed = false;
};

class StreamFile::Handle : public OpenFile {
 public:
  explicit Handle(std::shared_ptr<Reader> reader) : reader_(std::move(reader)) {}

  ~Handle() override {
    std::deque<Reader::Waiter> waiting;
    {
      std::lock_guard lock(reader_->mu);
      reader_->closed = true;
      waiting = std::move(reader_->waiting);
    }
    // The server cancels a fid's reads before clunking it; anything left fails.
    for (auto& w : waiting) w.responder.fail(posix_error(EBADF, "stream closed"));
  }

  void read(uint64_t, uint32_t count, Responder responder) override {
    if (count == 0) {
      responder.reply({});
      return;
    }
    std::unique_lock lock(reader_->mu);
    if (!reader_->queued.empty()) {
      size_t n = std::min<size_t>(count, reader_->queued.size());
      std::string out = reader_->queued.substr(0, n);
      reader_->queued.erase(0, n);
      lock.unlock();
      responder.reply(out);
      return;
    }
    const uint64_t id = reader_->next_id++;
    reader_->waiting.push_back(Reader::Waiter{id, responder});
    lock.unlock();
    // Registered without the lock: if the read is already cancelled the hook runs now.
    std::weak_ptr<Reader> weak = reader_;
    responder.on_cancel([weak, id] {
      auto reader = weak.lock();
      if (!reader) return;
      std::optional<Reader::Waiter> dropped;  // destroyed after the lock is released
      std::lock_guard lock(reader->mu);
      auto& q = reader->waiting;
      auto it = std::find_if(q.begin(), q.end(), [id](const auto& w) { return w.id == id; });
      if (it != q.end()) {
        dropped.emplace(std::move(*it));
        q.erase(it);
      }
    });
  }

 private:
  std::shared_ptr<Reader> reader_;
};

StreamFile::StreamFile(Start start, uint32_t mode)
    : MemNode(P9_QTFILE, mode, Access::kReadOnly), start_(start) {}

std::shared_ptr<StreamFile> StreamFile::create(Start start, uint32_t mode) {
  return std::make_shared<StreamFile>(start, mode);
}

void StreamFile::post(std::string_view data) {
  std::lock_guard lock(readers_mu_);
  if (start_ == Start::kLatest) {
    latest_ = std::string(data);
    has_latest_ = true;
  }
  std::erase_if(readers_, [](const auto& w) { return w.expired(); });
  for (const auto& weak : readers_) {
    if (auto reader = weak.lock()) reader->deliver(data);
  }
}

size_t StreamFile::reader_count() const {
  std::lock_guard lock(readers_mu_);
  return std::count_if(readers_.begin(), readers_.end(),
                       [](const auto& w) { return !w.expired(); });
}

Result<std::unique_ptr<OpenFile>> StreamFile::open(uint32_t flags) {
  if (wants_write(flags)) return fail_posix(EROFS, "stream files are read-only");
  auto reader = std::make_shared<Reader>();
  std::lock_guard lock(readers_mu_);
  if (has_latest_) reader->queued = latest_;
  std::erase_if(readers_, [](const auto& w) { return w.expired(); });
  readers_.push_back(reader);
  return std::unique_ptr<OpenFile>(std::make_unique<Handle>(std::move(reader)));
}

// ---- MemFs ---------------------------------------------------------------------------------

Result<std::shared_ptr<Node>> MemFs::attach(std::string_view, std::string_view, uint32_t) {
  return root_;
}

}  // namespace pinata::p9
