#include "db/view9p.h"

#include <sys/stat.h>

#include <map>
#include <mutex>
#include <set>

#include "base/log.h"
#include "p9/memfs.h"

namespace pinata::db {
namespace {

using p9::fail_posix;

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// Stable qid paths for nodes named by a path (top bit set: apart from allocate_qid_path's).
uint64_t qid_path_for(std::string_view kind, std::string_view path) {
  return fnv1a(path, fnv1a(kind)) | (1ull << 63);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') i++;
  return s.substr(i);
}

// The files at the branch head, re-read only when the head moves.
class HeadFiles {
 public:
  explicit HeadFiles(Store& store) : store_(store) {}
  struct Snapshot {
    std::string head;
    std::shared_ptr<const Files> files;
  };
  Result<Snapshot> get() {
    auto head = store_.head();
    if (!head) return fail(head.error());
    std::string id = head->value_or("");
    std::lock_guard lock(mu_);
    if (files_ && id == head_) return Snapshot{head_, files_};
    Files files;
    if (!id.empty()) {
      auto read = store_.read_tree("", id);
      if (!read) return fail(read.error());
      files = std::move(*read);
    }
    head_ = id;
    files_ = std::make_shared<const Files>(std::move(files));
    return Snapshot{head_, files_};
  }

 private:
  Store& store_;
  std::mutex mu_;
  std::string head_;
  std::shared_ptr<const Files> files_;
};

// Children of directory `prefix` ("" or "a/b/"): name -> is_directory.
std::map<std::string, bool> children(const Files& files, const std::string& prefix) {
  std::map<std::string, bool> out;
  for (auto it = files.lower_bound(prefix); it != files.end(); ++it) {
    const std::string& p = it->first;
    if (p.compare(0, prefix.size(), prefix) != 0) break;
    std::string rest = p.substr(prefix.size());
    size_t slash = rest.find('/');
    if (slash == std::string::npos) {
      out.emplace(rest, false);
    } else {
      out[rest.substr(0, slash)] = true;
    }
  }
  return out;
}

class SliceFile : public p9::OpenFile {
 public:
  explicit SliceFile(std::string data) : data_(std::move(data)) {}
  void read(uint64_t offset, uint32_t count, p9::Responder r) override {
    if (offset >= data_.size()) {
      r.reply({});
      return;
    }
    r.reply(std::string_view(data_).substr(offset, count));
  }

 private:
  std::string data_;
};

// ---- ro/ ---------------------------------------------------------------------------------

class RoFile : public p9::Node {
 public:
  RoFile(std::shared_ptr<HeadFiles> src, std::string path)
      : src_(std::move(src)), path_(std::move(path)) {}
  p9::Qid qid() const override {
    uint32_t version = 0;
    if (auto snap = src_->get(); snap) {
      auto it = snap->files->find(path_);
      if (it != snap->files->end()) version = static_cast<uint32_t>(fnv1a(it->second));
    }
    return {p9::P9_QTFILE, version, qid_path_for("ro", path_)};
  }
  Result<p9::Attr> getattr() override {
    TRY_ASSIGN(auto content, current());
    p9::Attr a;
    a.mode = S_IFREG | 0444;
    a.size = content.size();
    return a;
  }
  Result<std::unique_ptr<p9::OpenFile>> open(uint32_t flags) override {
    if ((flags & p9::P9_DOTL_ACCMODE) != 0) return fail_posix(EROFS, "ro/ is read-only");
    TRY_ASSIGN(auto content, current());
    return std::unique_ptr<p9::OpenFile>(new SliceFile(std::move(content)));
  }
  Status setattr(const p9::SetAttr&) override { return fail_posix(EROFS, "ro/ is read-only"); }

 private:
  Result<std::string> current() {
    TRY_ASSIGN(auto snap, src_->get());
    auto it = snap.files->find(path_);
    if (it == snap.files->end()) return fail_posix(ENOENT, path_ + " is gone");
    return it->second;
  }
  std::shared_ptr<HeadFiles> src_;
  std::string path_;
};

class RoDir : public p9::Node {
 public:
  RoDir(std::shared_ptr<HeadFiles> src, std::string prefix)
      : src_(std::move(src)), prefix_(std::move(prefix)) {}
  p9::Qid qid() const override { return {p9::P9_QTDIR, 0, qid_path_for("ro/", prefix_)}; }
  Result<p9::Attr> getattr() override {
    p9::Attr a;
    a.mode = S_IFDIR | 0555;
    a.nlink = 2;
    return a;
  }
  Result<std::shared_ptr<p9::Node>> lookup(std::string_view name) override {
    TRY_ASSIGN(auto snap, src_->get());
    std::string full = prefix_ + std::string(name);
    if (snap.files->count(full)) return std::shared_ptr<p9::Node>(new RoFile(src_, full));
    std::string dir = full + "/";
    auto it = snap.files->lower_bound(dir);
    if (it != snap.files->end() && it->first.compare(0, dir.size(), dir) == 0) {
      return std::shared_ptr<p9::Node>(new RoDir(src_, dir));
    }
    return fail_posix(ENOENT, full);
  }
  Result<std::vector<p9::DirEntry>> readdir() override {
    TRY_ASSIGN(auto snap, src_->get());
    std::vector<p9::DirEntry> out;
    for (auto& [name, is_dir] : children(*snap.files, prefix_)) {
      std::string full = prefix_ + name;
      p9::Qid q = is_dir ? p9::Qid{p9::P9_QTDIR, 0, qid_path_for("ro/", full + "/")}
                         : p9::Qid{p9::P9_QTFILE, 0, qid_path_for("ro", full)};
      out.push_back({name, q});
    }
    return out;
  }
  Result<std::shared_ptr<p9::Node>> mkdir(std::string_view, uint32_t, uint32_t) override {
    return fail_posix(EROFS, "ro/ is read-only");
  }
  Result<std::shared_ptr<p9::Node>> create(std::string_view, uint32_t, uint32_t,
                                           uint32_t) override {
    return fail_posix(EROFS, "ro/ is read-only");
  }
  Status unlink(std::string_view, p9::UnlinkKind) override {
    return fail_posix(EROFS, "ro/ is read-only");
  }

 private:
  std::shared_ptr<HeadFiles> src_;
  std::string prefix_;
};

// ---- transactions/ -----------------------------------------------------------------------

void collect(const p9::MemDir& dir, const std::string& prefix, Files& out) {
  for (const std::string& name : dir.names()) {
    auto node = dir.get(name);
    if (auto sub = std::dynamic_pointer_cast<p9::MemDir>(node)) {
      collect(*sub, prefix + name + "/", out);
    } else if (auto file = std::dynamic_pointer_cast<p9::MemFile>(node)) {
      out[prefix + name] = file->contents();
    }
  }
}

Status populate(const std::shared_ptr<p9::MemDir>& root, const Files& files) {
  for (const auto& [path, content] : files) {
    std::shared_ptr<p9::MemDir> dir = root;
    size_t start = 0;
    for (size_t slash; (slash = path.find('/', start)) != std::string::npos; start = slash + 1) {
      TRY_ASSIGN(dir, dir->add_dir(path.substr(start, slash - start)));
    }
    TRY(dir->add(path.substr(start), p9::MemFile::create(content)));
  }
  return {};
}

struct Shared {
  Store& store;
  HeadWatcher& watcher;
  ViewOptions options;
  std::shared_ptr<HeadFiles> head_files;
};

class Txn {
 public:
  Txn(std::shared_ptr<Shared> shared, std::string name, std::string base, Files files)
      : shared_(std::move(shared)), name_(std::move(name)), base_(std::move(base)),
        base_files_(std::move(files)) {}

  Result<std::shared_ptr<p9::MemDir>> build(std::function<void()> on_close) {
    on_close_ = std::move(on_close);
    dir_ = p9::MemDir::create(p9::Access::kReadOnly);
    rw_ = p9::MemDir::create(p9::Access::kReadWrite);
    TRY(populate(rw_, base_files_));
    msg_ = p9::MemFile::create();
    TRY(dir_->add("rw", rw_));
    TRY(dir_->add("msg", msg_));
    std::weak_ptr<Txn> self = self_;
    TRY(dir_->add("ctl", p9::CallbackFile::create(
                             [self]() -> Result<std::string> {
                               auto t = self.lock();
                               if (!t) return std::string("closed\n");
                               std::lock_guard lock(t->mu_);
                               return t->state_ + "\n";
                             },
                             [self](std::string_view data) -> Status {
                               auto t = self.lock();
                               if (!t) return fail_posix(EBADF, "transaction closed");
                               return t->control(trim(std::string(data)));
                             })));
    return dir_;
  }
  void set_self(std::weak_ptr<Txn> self) { self_ = std::move(self); }
  std::shared_ptr<p9::MemDir> dir() const { return dir_; }

 private:
  Status control(const std::string& cmd) {
    if (cmd == "close" || cmd == "abort") {
      if (on_close_) on_close_();
      return {};
    }
    if (cmd != "commit") {
      return fail_posix(EINVAL, "ctl: unknown command \"" + cmd + "\" (commit, close)");
    }
    std::lock_guard lock(mu_);
    if (committed_) return fail_posix(EINVAL, "transaction " + name_ + " is already committed");
    Files result;
    collect(*rw_, "", result);
    Transaction t;
    for (const auto& [path, content] : result) {
      auto it = base_files_.find(path);
      if (it == base_files_.end() || it->second != content) t.change.puts[path] = content;
    }
    for (const auto& [path, content] : base_files_) {
      if (!result.count(path)) t.change.deletes.insert(path);
    }
    std::string msg = trim(msg_->contents());
    t.message = msg.empty() ? "transaction " + name_ : msg;
    if (!base_.empty()) t.parent = base_;
    t.check = shared_->options.check;
    auto committed = shared_->store.commit(t);
    if (!committed) {
      const Error& e = committed.error();
      state_ = "error: " + e.message();
      log::warn("db: 9P transaction %s: %s", name_.c_str(), e.message().c_str());
      if (is_conflict(e)) return fail_posix(ESTALE, e.message());
      if (is_locked(e)) return fail_posix(EBUSY, e.message());
      if (e.kind() == ErrorKind::kInvalidInput) return fail_posix(EINVAL, e.message());
      return fail_posix(EIO, e.message());
    }
    committed_ = true;
    state_ = committed->created ? "committed " + committed->id : "unchanged " + committed->id;
    log::info("db: 9P transaction %s: %s", name_.c_str(), state_.c_str());
    shared_->watcher.check();
    return {};
  }

  std::shared_ptr<Shared> shared_;
  std::string name_;
  std::string base_;
  Files base_files_;
  std::weak_ptr<Txn> self_;
  std::function<void()> on_close_;
  std::shared_ptr<p9::MemDir> dir_, rw_;
  std::shared_ptr<p9::MemFile> msg_;
  std::mutex mu_;
  bool committed_ = false;
  std::string state_ = "open";
};

class TransactionsDir : public p9::Node, public std::enable_shared_from_this<TransactionsDir> {
 public:
  explicit TransactionsDir(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  p9::Qid qid() const override { return {p9::P9_QTDIR, 0, qid_path_for("txns", "")}; }
  Result<p9::Attr> getattr() override {
    p9::Attr a;
    a.mode = S_IFDIR | 0755;
    a.nlink = 2;
    return a;
  }
  Result<std::shared_ptr<p9::Node>> lookup(std::string_view name) override {
    std::lock_guard lock(mu_);
    auto it = txns_.find(std::string(name));
    if (it == txns_.end()) return fail_posix(ENOENT, "no transaction " + std::string(name));
    return std::shared_ptr<p9::Node>(it->second->dir());
  }
  Result<std::vector<p9::DirEntry>> readdir() override {
    std::lock_guard lock(mu_);
    std::vector<p9::DirEntry> out;
    for (auto& [name, t] : txns_) out.push_back({name, t->dir()->qid()});
    return out;
  }
  Result<std::shared_ptr<p9::Node>> mkdir(std::string_view name, uint32_t, uint32_t) override {
    std::string n(name);
    {
      std::lock_guard lock(mu_);
      if (txns_.count(n)) return fail_posix(EEXIST, "transaction " + n + " exists");
      if (txns_.size() >= shared_->options.max_transactions) {
        return fail_posix(ENOSPC, "too many open transactions");
      }
    }
    TRY_ASSIGN(auto snap, shared_->head_files->get());
    auto txn = std::make_shared<Txn>(shared_, n, snap.head, *snap.files);
    txn->set_self(txn);
    std::weak_ptr<TransactionsDir> self = weak_from_this();
    TRY_ASSIGN(auto dir, txn->build([self, n] {
      if (auto d = self.lock()) d->remove(n);
    }));
    std::lock_guard lock(mu_);
    if (txns_.count(n)) return fail_posix(EEXIST, "transaction " + n + " exists");
    txns_[n] = txn;
    return std::shared_ptr<p9::Node>(dir);
  }
  Status unlink(std::string_view name, p9::UnlinkKind kind) override {
    if (kind != p9::UnlinkKind::kDirectory) return fail_posix(EISDIR, std::string(name));
    std::lock_guard lock(mu_);
    if (!txns_.erase(std::string(name))) return fail_posix(ENOENT, std::string(name));
    return {};
  }
  void remove(const std::string& name) {
    std::lock_guard lock(mu_);
    txns_.erase(name);
  }

 private:
  std::shared_ptr<Shared> shared_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Txn>> txns_;
};

// ---- watch/ and head.live ----------------------------------------------------------------

class Watches {
 public:
  explicit Watches(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

  // The tree.live stream of `path`.
  Result<std::shared_ptr<p9::StreamFile>> stream(const std::string& path) {
    std::lock_guard lock(mu_);
    auto it = streams_.find(path);
    if (it != streams_.end()) return it->second.file;
    if (streams_.size() >= shared_->options.max_watched_paths) {
      for (auto e = streams_.begin(); e != streams_.end();) {
        e = e->second.file->reader_count() == 0 ? streams_.erase(e) : std::next(e);
      }
      if (streams_.size() >= shared_->options.max_watched_paths) {
        return fail_posix(ENOSPC, "too many watched paths");
      }
    }
    TRY_ASSIGN(auto snap, shared_->head_files->get());
    Entry e{p9::StreamFile::create(p9::StreamFile::Start::kLatest), tree_hash(*snap.files, path)};
    e.file->post(e.hash + "\n");
    streams_[path] = e;
    return e.file;
  }

  void on_head(const std::string&) {
    auto snap = shared_->head_files->get();
    if (!snap) return;
    std::lock_guard lock(mu_);
    for (auto& [path, e] : streams_) {
      std::string h = tree_hash(*snap->files, path);
      if (h == e.hash) continue;
      e.hash = h;
      e.file->post(h + "\n");
    }
  }

 private:
  struct Entry {
    std::shared_ptr<p9::StreamFile> file;
    std::string hash;
  };
  std::shared_ptr<Shared> shared_;
  std::mutex mu_;
  std::map<std::string, Entry> streams_;
};

class WatchDir : public p9::Node {
 public:
  WatchDir(std::shared_ptr<Watches> watches, std::shared_ptr<HeadFiles> src, std::string path)
      : watches_(std::move(watches)), src_(std::move(src)), path_(std::move(path)) {}
  p9::Qid qid() const override { return {p9::P9_QTDIR, 0, qid_path_for("watch", path_)}; }
  Result<p9::Attr> getattr() override {
    p9::Attr a;
    a.mode = S_IFDIR | 0555;
    a.nlink = 2;
    return a;
  }
  Result<std::shared_ptr<p9::Node>> lookup(std::string_view name) override {
    if (name == "tree.live") {
      TRY_ASSIGN(auto s, watches_->stream(path_));
      return std::shared_ptr<p9::Node>(s);
    }
    constexpr std::string_view kSuffix = ".node";
    if (name.size() > kSuffix.size() && name.substr(name.size() - kSuffix.size()) == kSuffix) {
      std::string child(name.substr(0, name.size() - kSuffix.size()));
      return std::shared_ptr<p9::Node>(
          new WatchDir(watches_, src_, path_.empty() ? child : path_ + "/" + child));
    }
    return fail_posix(ENOENT, "watch/: want NAME.node or tree.live, got " + std::string(name));
  }
  Result<std::vector<p9::DirEntry>> readdir() override {
    std::vector<p9::DirEntry> out;
    out.push_back({"tree.live", {p9::P9_QTFILE, 0, qid_path_for("live", path_)}});
    TRY_ASSIGN(auto snap, src_->get());
    for (auto& [name, is_dir] : children(*snap.files, path_.empty() ? "" : path_ + "/")) {
      std::string child = path_.empty() ? name : path_ + "/" + name;
      out.push_back({name + ".node", {p9::P9_QTDIR, 0, qid_path_for("watch", child)}});
    }
    return out;
  }

 private:
  std::shared_ptr<Watches> watches_;
  std::shared_ptr<HeadFiles> src_;
  std::string path_;
};

}  // namespace

std::string tree_hash(const Files& files, const std::string& path) {
  uint64_t h = fnv1a("tree");
  bool any = false;
  std::string dir = path.empty() ? "" : path + "/";
  for (auto it = files.lower_bound(path); it != files.end(); ++it) {
    const std::string& p = it->first;
    bool match = path.empty() || p == path || p.compare(0, dir.size(), dir) == 0;
    if (!match) {
      if (p.compare(0, path.size(), path) != 0) break;  // past every path starting with `path`
      continue;                                          // e.g. "a.b" between "a" and "a/"
    }
    any = true;
    h = fnv1a(p, h);
    h = fnv1a(std::string_view("\0", 1), h);
    h = fnv1a(it->second, h);
    h = fnv1a(std::string_view("\0", 1), h);
  }
  if (!any) return "";
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::shared_ptr<p9::FileSystem> make_db_filesystem(Store& store, HeadWatcher& watcher,
                                                   ViewOptions options) {
  auto shared = std::make_shared<Shared>(
      Shared{store, watcher, std::move(options), std::make_shared<HeadFiles>(store)});
  auto root = p9::MemDir::create(p9::Access::kReadOnly);
  auto master = root->add_dir("branch").value()->add_dir("master").value();
  (void)master->add("head", p9::CallbackFile::create([&store]() -> Result<std::string> {
    TRY_ASSIGN(auto head, store.head());
    return head.value_or("") + "\n";
  }));
  auto head_live = p9::StreamFile::create(p9::StreamFile::Start::kLatest);
  head_live->post(watcher.head() + "\n");
  (void)master->add("head.live", head_live);
  (void)master->add("ro", std::make_shared<RoDir>(shared->head_files, ""));
  (void)master->add("transactions", std::make_shared<TransactionsDir>(shared));
  auto watches = std::make_shared<Watches>(shared);
  (void)master->add("watch", std::make_shared<WatchDir>(watches, shared->head_files, ""));
  std::weak_ptr<p9::StreamFile> weak_live = head_live;
  std::weak_ptr<Watches> weak_watches = watches;
  watcher.subscribe([weak_live, weak_watches](const std::string& head) {
    if (auto live = weak_live.lock()) live->post(head + "\n");
    if (auto w = weak_watches.lock()) w->on_head(head);
  });
  // The watcher's subscription holds only weak pointers: keep the streams alive with the fs.
  struct Fs : p9::MemFs {
    Fs(std::shared_ptr<p9::Node> root, std::shared_ptr<p9::StreamFile> live,
       std::shared_ptr<Watches> watches)
        : p9::MemFs(std::move(root)), live_(std::move(live)), watches_(std::move(watches)) {}
    std::shared_ptr<p9::StreamFile> live_;
    std::shared_ptr<Watches> watches_;
  };
  return std::make_shared<Fs>(root, head_live, watches);
}

}  // namespace pinata::db
