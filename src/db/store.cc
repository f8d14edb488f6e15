#include "db/store.h"

#include <git2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <queue>
#include <random>
#include <thread>
#include <unordered_set>

#include "base/io.h"
#include "db/loose_object.h"

namespace pinata::db {
namespace {

template <typename T, void (*Free)(T*)>
struct GitFree {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};
using RepoPtr = std::unique_ptr<git_repository, GitFree<git_repository, git_repository_free>>;
using CommitPtr = std::unique_ptr<git_commit, GitFree<git_commit, git_commit_free>>;
using TreePtr = std::unique_ptr<git_tree, GitFree<git_tree, git_tree_free>>;
using BlobPtr = std::unique_ptr<git_blob, GitFree<git_blob, git_blob_free>>;
using BuilderPtr = std::unique_ptr<git_treebuilder, GitFree<git_treebuilder, git_treebuilder_free>>;
using RefPtr = std::unique_ptr<git_reference, GitFree<git_reference, git_reference_free>>;
using SigPtr = std::unique_ptr<git_signature, GitFree<git_signature, git_signature_free>>;

constexpr size_t kMaxTreeDepth = 64;

void ensure_libgit2() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    // Settings must survive a power cut: fsync objects, refs and their directories.
    git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
  });
}

std::string git_message() {
  const git_error* e = git_error_last();
  return (e && e->message) ? e->message : "unknown libgit2 error";
}

std::string hex(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, &oid);
  return buf;
}

std::string short_hex(const std::string& id) { return id.substr(0, 8); }

// A read of the current state failed: the one-line error every caller shows.
Error damaged(const std::string& db, const std::string& detail) {
  return Error(ErrorKind::kCorrupt,
               db + ": the configuration database is damaged (" + detail +
                   "); nothing was changed. Inspect it with 'git -C " + db +
                   " fsck'; to start again from the defaults, move the directory aside "
                   "(pinata never deletes it)");
}

Error conflict(const std::string& message) {
  return Error(ErrorKind::kAlreadyExists, message, kConflictCode);
}

Error locked(const std::string& db, const std::string& lock_path) {
  std::string age;
  struct stat st;
  if (::stat(lock_path.c_str(), &st) == 0) {
    long secs = static_cast<long>(::time(nullptr) - st.st_mtime);
    age = " (for " + std::to_string(secs < 0 ? 0 : secs) + " s)";
  }
  return Error(ErrorKind::kTimeout,
               db + ": the configuration database is locked: " + lock_path + " exists" + age +
                   "; if no git or pinata command is using the database, remove that file and "
                   "retry (nothing was changed)",
               kLockedCode);
}

bool valid_path(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.back() == '/') return false;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    std::string seg = path.substr(pos, end - pos);
    if (seg.empty() || seg == "." || seg == ".." || seg.find('\0') != std::string::npos) {
      return false;
    }
    std::string lower = seg;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == ".git") return false;
    pos = end + 1;
  }
  return true;
}

// The change as a tree of path components.
struct Node {
  std::optional<std::string> put;
  bool del = false;
  std::map<std::string, Node> children;
};

Result<Node> change_trie(const Change& change) {
  Node root;
  auto insert = [&](const std::string& path) -> Result<Node*> {
    if (!valid_path(path)) {
      return fail(ErrorKind::kInvalidInput, "invalid repository path '" + path + "'");
    }
    Node* n = &root;
    size_t pos = 0;
    while (true) {
      size_t end = path.find('/', pos);
      std::string seg = path.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      if (n->put || n->del) {
        return fail(ErrorKind::kInvalidInput,
                    "a change cannot write both a file and beneath it: '" + path + "'");
      }
      n = &n->children[seg];
      if (end == std::string::npos) break;
      pos = end + 1;
    }
    if (n->put || n->del || !n->children.empty()) {
      return fail(ErrorKind::kInvalidInput, "a change names '" + path + "' twice");
    }
    return n;
  };
  for (const auto& [path, content] : change.puts) {
    TRY_ASSIGN(Node * n, insert(path));
    n->put = content;
  }
  for (const auto& path : change.deletes) {
    TRY_ASSIGN(Node * n, insert(path));
    n->del = true;
  }
  return root;
}

Files applied(const Files& base, const Change& change) {
  Files out = base;
  for (const auto& [p, c] : change.puts) out[p] = c;
  for (const auto& p : change.deletes) out.erase(p);
  return out;
}

std::string with_newline(std::string message) {
  if (message.empty() || message.back() != '\n') message += '\n';
  return message;
}

}  // namespace

bool is_conflict(const Error& e) { return e.code() == kConflictCode; }
bool is_locked(const Error& e) { return e.code() == kLockedCode; }

std::string database_path(const std::string& pinata_home) {
  return path_join(pinata_home, "database");
}

struct Store::Impl {
  std::string path;
  StoreOptions options;
  RepoPtr repo;
  mutable std::mutex mu;
  std::minstd_rand rng{std::random_device{}()};

  std::string git_dir() const {
    std::string d = git_repository_path(repo.get());
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    return d;
  }

  Result<std::optional<git_oid>> head_oid() const {
    git_oid oid;
    int rc = git_reference_name_to_id(&oid, repo.get(), kBranchRef);
    if (rc == GIT_ENOTFOUND) return std::optional<git_oid>();
    if (rc < 0)
      return fail(damaged(path, std::string("cannot read ") + kBranchRef + ": " + git_message()));
    return std::optional<git_oid>(oid);
  }

  // libgit2 1.5 hangs on a truncated loose object (see loose_object.h): check each one
  // before libgit2 reads it.
  Status verify(const git_oid& oid) const {
    std::string h = hex(oid);
    std::string file = git_dir() + "/objects/" + h.substr(0, 2) + "/" + h.substr(2);
    auto ok = verify_loose_object_file(file);
    if (ok || ok.error().kind() == ErrorKind::kNotFound) return {};
    return fail(damaged(path, "object " + h + " (" + file + ") is " + ok.error().message()));
  }

  Result<CommitPtr> commit_at(const git_oid& oid) const {
    TRY(verify(oid));
    git_commit* c = nullptr;
    if (git_commit_lookup(&c, repo.get(), &oid) < 0) {
      return fail(damaged(path, "cannot read commit " + hex(oid) + ": " + git_message()));
    }
    return CommitPtr(c);
  }

  Result<TreePtr> tree_lookup(const git_oid& oid, const std::string& what) const {
    TRY(verify(oid));
    git_tree* t = nullptr;
    if (git_tree_lookup(&t, repo.get(), &oid) < 0) {
      return fail(damaged(path, "cannot read " + what + ": " + git_message()));
    }
    return TreePtr(t);
  }

  Result<BlobPtr> blob_lookup(const git_oid& oid, const std::string& what) const {
    TRY(verify(oid));
    git_blob* b = nullptr;
    if (git_blob_lookup(&b, repo.get(), &oid) < 0) {
      return fail(damaged(path, "cannot read " + what + ": " + git_message()));
    }
    return BlobPtr(b);
  }

  Result<TreePtr> tree_of(const git_commit* c) const {
    return tree_lookup(*git_commit_tree_id(c), "the tree of commit " + hex(*git_commit_id(c)));
  }

  // The entry at `p` (a '/'-separated path) in `tree`, walking subtrees through the
  // checked lookups; nullopt when absent.
  struct EntryInfo {
    git_oid id;
    git_object_t type;
  };
  Result<std::optional<EntryInfo>> entry_at(const git_tree* tree, const std::string& p) const {
    TreePtr holder;
    const git_tree* cur = tree;
    size_t pos = 0;
    while (true) {
      size_t end = p.find('/', pos);
      std::string seg = p.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      const git_tree_entry* e = seg.empty() ? nullptr : git_tree_entry_byname(cur, seg.c_str());
      if (!e) return std::optional<EntryInfo>();
      EntryInfo info{*git_tree_entry_id(e), git_tree_entry_type(e)};
      if (end == std::string::npos) return std::optional<EntryInfo>(info);
      if (info.type != GIT_OBJECT_TREE) return std::optional<EntryInfo>();
      TRY_ASSIGN(holder, tree_lookup(info.id, "directory " + p.substr(0, end)));
      cur = holder.get();
      pos = end + 1;
    }
  }

  Result<std::string> blob_content(const git_oid& oid, const std::string& what) const {
    TRY_ASSIGN(BlobPtr b, blob_lookup(oid, what));
    return std::string(static_cast<const char*>(git_blob_rawcontent(b.get())),
                       static_cast<size_t>(git_blob_rawsize(b.get())));
  }

  // A revision to a commit id: "master" (the branch head) or a full or abbreviated (4+ hex
  // digits) commit id. Nothing fancier, so that no object is read unchecked.
  Result<git_oid> resolve(const std::string& revision) const {
    if (revision == "master") {
      TRY_ASSIGN(auto head, head_oid());
      if (!head)
        return fail(ErrorKind::kNotFound, "the master branch of " + path + " does not exist");
      return *head;
    }
    bool is_hex = revision.size() >= 4 && revision.size() <= GIT_OID_HEXSZ &&
                  revision.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
    if (!is_hex) {
      return fail(ErrorKind::kInvalidInput,
                  "'" + revision + "' is not a commit id (4 to 40 hex digits) or 'master'");
    }
    git_odb* raw = nullptr;
    if (git_repository_odb(&raw, repo.get()) < 0) {
      return fail(damaged(path, "cannot open the object database: " + git_message()));
    }
    std::unique_ptr<git_odb, GitFree<git_odb, git_odb_free>> odb(raw);
    git_oid prefix;
    git_oid full;
    if (git_oid_fromstrn(&prefix, revision.data(), revision.size()) < 0) {
      return fail(ErrorKind::kInvalidInput, "'" + revision + "' is not a commit id");
    }
    int rc = git_odb_exists_prefix(&full, raw, &prefix, revision.size());
    if (rc == GIT_ENOTFOUND)
      return fail(ErrorKind::kNotFound, "no commit '" + revision + "' in " + path);
    if (rc == GIT_EAMBIGUOUS) {
      return fail(ErrorKind::kInvalidInput,
                  "'" + revision + "' is ambiguous in " + path + ": give more digits");
    }
    if (rc < 0) return fail(damaged(path, "cannot look up '" + revision + "': " + git_message()));
    TRY(verify(full));
    size_t size = 0;
    git_object_t type = GIT_OBJECT_INVALID;
    if (git_odb_read_header(&size, &type, raw, &full) < 0) {
      return fail(damaged(path, "cannot read object " + hex(full) + ": " + git_message()));
    }
    if (type != GIT_OBJECT_COMMIT) {
      return fail(ErrorKind::kInvalidInput, "'" + revision + "' is not a commit in " + path);
    }
    return full;
  }

  // The tree at `at` (or at the head); nullptr when the branch does not exist.
  Result<TreePtr> tree_at(const std::optional<std::string>& at) const {
    git_oid oid;
    if (at) {
      TRY_ASSIGN(oid, resolve(*at));
    } else {
      TRY_ASSIGN(auto head, head_oid());
      if (!head) return TreePtr();
      oid = *head;
    }
    TRY_ASSIGN(auto commit, commit_at(oid));
    return tree_of(commit.get());
  }

  // Commits reachable from `from`, newest (committer time) first; `visit` returns false to stop.
  Status walk(const git_oid& from,
              const std::function<Result<bool>(const git_commit*)>& visit) const {
    struct Item {
      int64_t time;
      uint64_t order;
      CommitPtr commit;
    };
    auto later = [](const Item& a, const Item& b) {
      return a.time != b.time ? a.time < b.time : a.order > b.order;
    };
    std::vector<Item> heap;
    std::unordered_set<std::string> seen;
    uint64_t order = 0;
    auto push = [&](const git_oid& oid) -> Status {
      if (!seen.insert(hex(oid)).second) return {};
      TRY_ASSIGN(CommitPtr c, commit_at(oid));
      int64_t t = static_cast<int64_t>(git_commit_time(c.get()));
      heap.push_back(Item{t, order++, std::move(c)});
      std::push_heap(heap.begin(), heap.end(), later);
      return {};
    };
    TRY(push(from));
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      Item item = std::move(heap.back());
      heap.pop_back();
      TRY_ASSIGN(bool more, visit(item.commit.get()));
      if (!more) return {};
      for (unsigned k = 0; k < git_commit_parentcount(item.commit.get()); k++) {
        TRY(push(*git_commit_parent_id(item.commit.get(), k)));
      }
    }
    return {};
  }

  Status collect(const git_tree* tree, const std::string& dir, size_t depth, Files* out) const {
    if (depth > kMaxTreeDepth) {
      return fail(damaged(path, "directories nested deeper than " + std::to_string(kMaxTreeDepth) +
                                    " levels at " + dir));
    }
    size_t n = git_tree_entrycount(tree);
    for (size_t i = 0; i < n; i++) {
      const git_tree_entry* e = git_tree_entry_byindex(tree, i);
      std::string name = dir + git_tree_entry_name(e);
      git_object_t type = git_tree_entry_type(e);
      if (type == GIT_OBJECT_TREE) {
        TRY_ASSIGN(TreePtr sub, tree_lookup(*git_tree_entry_id(e), "directory " + name));
        TRY(collect(sub.get(), name + "/", depth + 1, out));
      } else if (type == GIT_OBJECT_BLOB) {
        TRY_ASSIGN(std::string content, blob_content(*git_tree_entry_id(e), name));
        out->emplace(name, std::move(content));
      }
      // Submodule entries (commits) hold no content here.
    }
    return {};
  }

  Result<Files> files_under(const git_tree* root, const std::string& prefix) const {
    Files out;
    if (!root) return out;
    if (prefix.empty()) {
      TRY(collect(root, "", 0, &out));
      return out;
    }
    TRY_ASSIGN(auto e, entry_at(root, prefix));
    if (!e) return out;
    if (e->type == GIT_OBJECT_TREE) {
      TRY_ASSIGN(TreePtr sub, tree_lookup(e->id, "directory " + prefix));
      TRY(collect(sub.get(), prefix + "/", 1, &out));
    } else if (e->type == GIT_OBJECT_BLOB) {
      TRY_ASSIGN(std::string content, blob_content(e->id, prefix));
      out.emplace(prefix, std::move(content));
    }
    return out;
  }

  // Writes the tree `base` + `node`; nullopt when it would be empty (and !is_root).
  Result<std::optional<git_oid>> build(const git_tree* base, const Node& node,
                                       const std::string& dir, bool is_root) {
    git_treebuilder* raw = nullptr;
    if (git_treebuilder_new(&raw, repo.get(), base) < 0) {
      return fail(ErrorKind::kIo, path + ": cannot build a tree: " + git_message());
    }
    BuilderPtr bld(raw);
    for (const auto& [name, child] : node.children) {
      std::string full = dir + name;
      const git_tree_entry* existing = git_treebuilder_get(bld.get(), name.c_str());
      bool existing_is_tree = existing && git_tree_entry_type(existing) == GIT_OBJECT_TREE;
      if (child.put) {
        if (existing_is_tree) {
          return fail(ErrorKind::kInvalidInput,
                      path + ": " + full + " is a directory in the repository, not a file");
        }
        git_oid blob;
        if (git_blob_create_from_buffer(&blob, repo.get(), child.put->data(), child.put->size()) <
                0 ||
            git_treebuilder_insert(nullptr, bld.get(), name.c_str(), &blob, GIT_FILEMODE_BLOB) <
                0) {
          return fail(ErrorKind::kIo, path + ": cannot write " + full + ": " + git_message());
        }
      } else if (child.del) {
        if (existing_is_tree) {
          return fail(ErrorKind::kInvalidInput,
                      path + ": " + full + " is a directory in the repository, not a file");
        }
        if (existing && git_treebuilder_remove(bld.get(), name.c_str()) < 0) {
          return fail(ErrorKind::kIo, path + ": cannot remove " + full + ": " + git_message());
        }
      } else {
        TreePtr sub;
        if (existing) {
          if (!existing_is_tree) {
            return fail(ErrorKind::kInvalidInput,
                        path + ": " + full + " is a file in the repository, not a directory");
          }
          TRY_ASSIGN(sub, tree_lookup(*git_tree_entry_id(existing), "directory " + full));
        }
        TRY_ASSIGN(auto id, build(sub.get(), child, full + "/", false));
        int rc = 0;
        if (id) {
          rc = git_treebuilder_insert(nullptr, bld.get(), name.c_str(), &*id, GIT_FILEMODE_TREE);
        } else if (existing) {
          rc = git_treebuilder_remove(bld.get(), name.c_str());
        }
        if (rc < 0)
          return fail(ErrorKind::kIo, path + ": cannot update " + full + ": " + git_message());
      }
    }
    if (!is_root && git_treebuilder_entrycount(bld.get()) == 0) return std::optional<git_oid>();
    git_oid out;
    if (git_treebuilder_write(&out, bld.get()) < 0) {
      return fail(ErrorKind::kIo, path + ": cannot write a tree: " + git_message());
    }
    return std::optional<git_oid>(out);
  }

  // Waits while a git command holds the index or HEAD: pinata writes neither, but a lock
  // there means someone is committing by hand (or crashed doing so).
  Status wait_for_git(std::chrono::steady_clock::time_point deadline,
                      std::unique_lock<std::mutex>& held) {
    for (const char* name : {"index.lock", "HEAD.lock"}) {
      std::string lock = path_join(git_dir(), name);
      while (::access(lock.c_str(), F_OK) == 0) {
        if (std::chrono::steady_clock::now() >= deadline) return fail(locked(path, lock));
        sleep_unlocked(std::chrono::milliseconds(10), held);
      }
    }
    return {};
  }

  // Sleeps without holding the Store's mutex, so that other threads' reads go on meanwhile.
  // Called only between attempts, when no libgit2 object of the attempt is alive.
  static void sleep_unlocked(std::chrono::microseconds d, std::unique_lock<std::mutex>& held) {
    held.unlock();
    std::this_thread::sleep_for(d);
    held.lock();
  }

  std::chrono::microseconds backoff(int attempt) {
    int cap = std::min(50, 1 << std::min(attempt, 6));
    std::uniform_int_distribution<int> d(0, cap * 1000);
    return std::chrono::microseconds(d(rng));
  }

  Result<CommitResult> update(const ChangeFn& fn, const std::string& message,
                              const std::optional<std::string>& parent,
                              const std::function<Status(const Files&, const Files&)>& check,
                              std::unique_lock<std::mutex>& held) {
    using Clock = std::chrono::steady_clock;
    auto deadline = Clock::now() + options.lock_timeout;  // for index.lock / HEAD.lock
    // The branch lock is "stale" only when it blocks us for lock_timeout with no writer
    // making progress meanwhile (busy but live writers keep moving the head).
    bool blocked = false;
    Clock::time_point blocked_since{};
    std::optional<git_oid> last_head;
    std::optional<git_oid> pin;
    if (parent) {
      git_oid p;
      if (git_oid_fromstrp(&p, parent->c_str()) < 0 || parent->size() != GIT_OID_HEXSZ) {
        return fail(ErrorKind::kInvalidInput,
                    "the parent of a transaction must be a full commit id, got '" + *parent + "'");
      }
      pin = p;
    }
    std::chrono::microseconds pause{0};
    for (int attempt = 1; attempt <= options.max_attempts; attempt++) {
      if (pause.count() > 0) sleep_unlocked(pause, held);
      pause = std::chrono::microseconds(0);
      TRY(wait_for_git(deadline, held));
      TRY_ASSIGN(auto head, head_oid());
      if (!Impl::same(head, last_head)) blocked = false;
      last_head = head;
      if (pin && (!head || git_oid_cmp(&*head, &*pin) != 0)) {
        return fail(conflict(path + ": conflict: the transaction was based on " +
                             short_hex(*parent) + " but master is now " +
                             (head ? short_hex(hex(*head)) : "absent") +
                             "; nothing was committed"));
      }
      CommitPtr head_commit;
      TreePtr base_tree;
      if (head) {
        TRY_ASSIGN(head_commit, commit_at(*head));
        TRY_ASSIGN(base_tree, tree_of(head_commit.get()));
      }
      // Read everything first: a damaged base is reported before anything is written.
      TRY_ASSIGN(Files base, files_under(base_tree.get(), ""));
      TRY_ASSIGN(Change change, fn(base));
      TRY_ASSIGN(Node trie, change_trie(change));
      if (check) TRY(check(base, applied(base, change)));
      std::string msg = with_newline(change.message.empty() ? message : change.message);
      std::string summary = msg.substr(0, msg.find('\n'));
      if (!head && trie.children.empty()) return CommitResult{"", false, attempt};
      TRY_ASSIGN(auto tree_id, build(base_tree.get(), trie, "", true));
      if (base_tree && git_oid_cmp(&*tree_id, git_tree_id(base_tree.get())) == 0) {
        return CommitResult{hex(*head), false, attempt};
      }
      git_tree* tree_raw = nullptr;
      if (git_tree_lookup(&tree_raw, repo.get(), &*tree_id) < 0) {
        return fail(ErrorKind::kIo, path + ": cannot read back the new tree: " + git_message());
      }
      TreePtr tree(tree_raw);
      git_signature* sig_raw = nullptr;
      if (git_signature_now(&sig_raw, kAuthorName, kAuthorEmail) < 0) {
        return fail(ErrorKind::kInternal, "cannot make a signature: " + git_message());
      }
      SigPtr sig(sig_raw);
      const git_commit* parents[1] = {head_commit.get()};
      git_oid commit_id;
      if (git_commit_create(&commit_id, repo.get(), nullptr, sig.get(), sig.get(), nullptr,
                            msg.c_str(), tree.get(), head ? 1 : 0, parents) < 0) {
        return fail(ErrorKind::kIo, path + ": cannot write a commit: " + git_message());
      }
      std::string log = std::string("pinata-db: ") + summary;
      git_reference* ref = nullptr;
      int rc = head
                   ? git_reference_create_matching(&ref, repo.get(), kBranchRef, &commit_id, 1,
                                                   &*head, log.c_str())
                   : git_reference_create(&ref, repo.get(), kBranchRef, &commit_id, 0, log.c_str());
      RefPtr owned(ref);
      if (rc == 0) return CommitResult{hex(commit_id), true, attempt};
      if (rc == GIT_ELOCKED) {
        if (!blocked) {
          blocked = true;
          blocked_since = Clock::now();
        }
        if (Clock::now() - blocked_since >= options.lock_timeout) {
          return fail(locked(path, path_join(git_dir(), std::string(kBranchRef) + ".lock")));
        }
        pause = backoff(attempt);
        continue;
      }
      if (rc == GIT_EMODIFIED || rc == GIT_EEXISTS || rc == GIT_ENOTFOUND) {
        // Another writer won the race; a pinned transaction reports it on the next pass.
        blocked = false;
        if (attempt > 1) pause = backoff(attempt / 4);
        continue;
      }
      return fail(ErrorKind::kIo, path + ": cannot update " + kBranchRef + ": " + git_message());
    }
    return fail(conflict(path + ": gave up after " + std::to_string(options.max_attempts) +
                         " attempts: other writers kept moving master; nothing was committed"));
  }

  Result<CommitInfo> info(const git_commit* c) const {
    CommitInfo i;
    i.id = hex(*git_commit_id(c));
    i.time = static_cast<int64_t>(git_commit_time(c));
    i.offset_minutes = git_commit_time_offset(c);
    const git_signature* a = git_commit_author(c);
    if (a) i.author = std::string(a->name ? a->name : "") + " <" + (a->email ? a->email : "") + ">";
    const char* s = git_commit_summary(const_cast<git_commit*>(c));
    i.summary = s ? s : "";
    const char* m = git_commit_message(c);
    i.message = m ? m : "";
    for (unsigned k = 0; k < git_commit_parentcount(c); k++) {
      i.parents.push_back(hex(*git_commit_parent_id(c, k)));
    }
    return i;
  }

  // `oid` is the head or one of its ancestors.
  Status on_branch(const git_oid& oid, const std::string& revision) const {
    TRY_ASSIGN(auto head, head_oid());
    bool found = false;
    if (head) {
      TRY(walk(*head, [&](const git_commit* c) -> Result<bool> {
        found = git_oid_cmp(git_commit_id(c), &oid) == 0;
        return !found;
      }));
    }
    if (found) return {};
    return fail(ErrorKind::kInvalidInput,
                "commit '" + revision + "' is not on the master branch of " + path);
  }

  Result<std::optional<git_oid>> entry_id(const git_tree* tree, const std::string& p) const {
    TRY_ASSIGN(auto e, entry_at(tree, p));
    if (!e) return std::optional<git_oid>();
    return std::optional<git_oid>(e->id);
  }

  static bool same(const std::optional<git_oid>& a, const std::optional<git_oid>& b) {
    if (!a || !b) return !a && !b;
    return git_oid_cmp(&*a, &*b) == 0;
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Result<Store> Store::open(const std::string& path, StoreOptions options) {
  ensure_libgit2();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return fail(ErrorKind::kNotFound, "no configuration database at " + path);
    return fail_errno(path);
  }
  if (!S_ISDIR(st.st_mode)) {
    return fail(ErrorKind::kInvalidInput,
                path +
                    " is not a directory but should be pinata's configuration database (a git "
                    "repository); move it aside and pinata will create a new one");
  }
  std::error_code ec;
  if (std::filesystem::is_empty(path, ec) && !ec) {
    return fail(ErrorKind::kNotFound,
                "no configuration database at " + path + " (empty directory)");
  }
  git_repository* raw = nullptr;
  int rc = git_repository_open_ext(&raw, path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  if (rc == GIT_ENOTFOUND) {
    return fail(ErrorKind::kInvalidInput,
                path +
                    " is not a git repository but should be pinata's configuration database; "
                    "move it aside and pinata will create a new one");
  }
  if (rc == GIT_EOWNER) {
    return fail(ErrorKind::kInvalidInput, path + " belongs to another user (" + git_message() +
                                              "); run pinata as its owner or set PINATA_HOME");
  }
  if (rc < 0) return fail(damaged(path, git_message()));
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  impl->repo.reset(raw);
  // HEAD is not what pinata reads, but a repository whose HEAD git cannot parse is damaged
  // for its users: refuse it rather than write into it.
  git_reference* head_ref = nullptr;
  if (git_reference_lookup(&head_ref, raw, "HEAD") < 0) {
    return fail(damaged(path, "cannot read HEAD: " + git_message()));
  }
  git_reference_free(head_ref);
  TRY(impl->head_oid());
  return Store(std::move(impl));
}

Result<Store> Store::open_or_init(const std::string& path, const Files& seed,
                                  StoreOptions options) {
  auto opened = open(path, options);
  if (opened || opened.error().kind() != ErrorKind::kNotFound) return opened;

  std::string parent = std::filesystem::path(path).parent_path().string();
  if (parent.empty()) parent = ".";
  TRY(make_dirs(parent, 0700));
  std::string tmp = path_join(parent, ".database.new." + std::to_string(::getpid()) + "." +
                                          std::to_string(std::random_device{}()));
  auto remove_tmp = [&] {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);  // our own temporary directory, never user data
  };
  {
    git_repository_init_options o = GIT_REPOSITORY_INIT_OPTIONS_INIT;
    o.flags = GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
    o.initial_head = "master";
    git_repository* raw = nullptr;
    if (git_repository_init_ext(&raw, tmp.c_str(), &o) < 0) {
      std::string m = git_message();
      remove_tmp();
      return fail(ErrorKind::kIo,
                  "cannot create the configuration database in " + parent + ": " + m);
    }
    auto impl = std::make_unique<Impl>();
    impl->path = tmp;
    impl->options = options;
    impl->repo.reset(raw);
    Store fresh(std::move(impl));
    Transaction t;
    t.change.puts = seed;
    t.message = "initial settings";
    auto made = fresh.commit(t);
    if (!made) {
      remove_tmp();
      return fail(made.error());
    }
    git_checkout_options co = GIT_CHECKOUT_OPTIONS_INIT;
    co.checkout_strategy = GIT_CHECKOUT_FORCE;
    if (git_checkout_head(raw, &co) < 0) {
      std::string m = git_message();
      remove_tmp();
      return fail(ErrorKind::kIo, "cannot check out the new configuration database: " + m);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    remove_tmp();
    if (err != EEXIST && err != ENOTEMPTY) {
      return fail_errno("cannot create the configuration database " + path, err);
    }
    // Another process created it first: use theirs.
  }
  return open(path, options);
}

const std::string& Store::path() const { return impl_->path; }

std::string Store::git_dir() const {
  std::lock_guard lock(impl_->mu);
  return impl_->git_dir();
}

std::vector<std::string> Store::watch_paths() const {
  std::lock_guard lock(impl_->mu);
  std::string g = impl_->git_dir();
  return {path_join(g, "refs/heads"), g};
}

Result<std::optional<std::string>> Store::head() const {
  std::lock_guard lock(impl_->mu);
  TRY_ASSIGN(auto oid, impl_->head_oid());
  if (!oid) return std::optional<std::string>();
  return std::optional<std::string>(hex(*oid));
}

Result<std::optional<std::string>> Store::read(const std::string& path,
                                               const std::optional<std::string>& at) const {
  std::lock_guard lock(impl_->mu);
  TRY_ASSIGN(TreePtr tree, impl_->tree_at(at));
  if (!tree) return std::optional<std::string>();
  TRY_ASSIGN(auto e, impl_->entry_at(tree.get(), path));
  if (!e || e->type != GIT_OBJECT_BLOB) return std::optional<std::string>();
  TRY_ASSIGN(std::string content, impl_->blob_content(e->id, path));
  return std::optional<std::string>(std::move(content));
}

Result<Files> Store::read_tree(const std::string& prefix,
                               const std::optional<std::string>& at) const {
  std::lock_guard lock(impl_->mu);
  TRY_ASSIGN(TreePtr tree, impl_->tree_at(at));
  return impl_->files_under(tree.get(), prefix);
}

Result<CommitResult> Store::commit(const Transaction& txn) {
  std::unique_lock lock(impl_->mu);
  Change change = txn.change;
  return impl_->update([&](const Files&) -> Result<Change> { return change; }, txn.message,
                       txn.parent, txn.check, lock);
}

Result<CommitResult> Store::update(const ChangeFn& fn, const std::string& message,
                                   const std::optional<std::string>& parent) {
  std::unique_lock lock(impl_->mu);
  return impl_->update(fn, message, parent, {}, lock);
}

Result<std::vector<CommitInfo>> Store::history(const std::optional<std::string>& path,
                                               size_t limit) const {
  std::lock_guard lock(impl_->mu);
  std::vector<CommitInfo> out;
  TRY_ASSIGN(auto head, impl_->head_oid());
  if (!head) return out;
  TRY(impl_->walk(*head, [&](const git_commit* c) -> Result<bool> {
    if (path) {
      TRY_ASSIGN(TreePtr tree, impl_->tree_of(c));
      TRY_ASSIGN(auto mine, impl_->entry_id(tree.get(), *path));
      unsigned np = git_commit_parentcount(c);
      // Shown when it differs from every parent (as git log shows a path's history).
      bool changed = np == 0 ? mine.has_value() : true;
      for (unsigned k = 0; k < np && changed; k++) {
        TRY_ASSIGN(CommitPtr parent, impl_->commit_at(*git_commit_parent_id(c, k)));
        TRY_ASSIGN(TreePtr ptree, impl_->tree_of(parent.get()));
        TRY_ASSIGN(auto theirs, impl_->entry_id(ptree.get(), *path));
        if (Impl::same(mine, theirs)) changed = false;
      }
      if (!changed) return true;
    }
    TRY_ASSIGN(auto i, impl_->info(c));
    out.push_back(std::move(i));
    return !(limit && out.size() >= limit);
  }));
  return out;
}

Result<CommitInfo> Store::describe(const std::string& revision) const {
  std::lock_guard lock(impl_->mu);
  TRY_ASSIGN(git_oid oid, impl_->resolve(revision));
  TRY(impl_->on_branch(oid, revision));
  TRY_ASSIGN(CommitPtr c, impl_->commit_at(oid));
  return impl_->info(c.get());
}

Result<std::vector<std::string>> Store::changed_paths(const std::string& revision) const {
  std::lock_guard lock(impl_->mu);
  TRY_ASSIGN(git_oid oid, impl_->resolve(revision));
  TRY_ASSIGN(CommitPtr c, impl_->commit_at(oid));
  TRY_ASSIGN(TreePtr tree, impl_->tree_of(c.get()));
  TRY_ASSIGN(Files after, impl_->files_under(tree.get(), ""));
  Files before;
  if (git_commit_parentcount(c.get()) > 0) {
    TRY_ASSIGN(CommitPtr p, impl_->commit_at(*git_commit_parent_id(c.get(), 0)));
    TRY_ASSIGN(TreePtr ptree, impl_->tree_of(p.get()));
    TRY_ASSIGN(before, impl_->files_under(ptree.get(), ""));
  }
  std::set<std::string> paths;
  for (const auto& [p, v] : after) {
    auto it = before.find(p);
    if (it == before.end() || it->second != v) paths.insert(p);
  }
  for (const auto& [p, v] : before) {
    if (!after.count(p)) paths.insert(p);
  }
  return std::vector<std::string>(paths.begin(), paths.end());
}

Result<CommitResult> Store::revert(
    const std::string& revision, const PathFilter& filter,
    const std::function<Status(const Files& base, const Files& result)>& check) {
  std::unique_lock lock(impl_->mu);
  TRY_ASSIGN(git_oid oid, impl_->resolve(revision));
  TRY(impl_->on_branch(oid, revision));
  std::string id = hex(oid);
  CommitInfo i;
  Files after;
  Files before;
  {
    // libgit2 objects live only in this block, not while update() sleeps unlocked.
    TRY_ASSIGN(CommitPtr c, impl_->commit_at(oid));
    if (git_commit_parentcount(c.get()) == 0) {
      return fail(ErrorKind::kInvalidInput,
                  "commit " + short_hex(id) + " is the initial commit and cannot be reverted");
    }
    TRY_ASSIGN(i, impl_->info(c.get()));
    TRY_ASSIGN(TreePtr tree, impl_->tree_of(c.get()));
    TRY_ASSIGN(after, impl_->files_under(tree.get(), ""));
    TRY_ASSIGN(CommitPtr p, impl_->commit_at(*git_commit_parent_id(c.get(), 0)));
    TRY_ASSIGN(TreePtr ptree, impl_->tree_of(p.get()));
    TRY_ASSIGN(before, impl_->files_under(ptree.get(), ""));
  }
  std::set<std::string> paths;
  for (const auto& [p2, v] : after) {
    auto it = before.find(p2);
    if ((it == before.end() || it->second != v) && (!filter || filter(p2))) paths.insert(p2);
  }
  for (const auto& [p2, v] : before) {
    if (!after.count(p2) && (!filter || filter(p2))) paths.insert(p2);
  }
  if (paths.empty()) {
    return fail(ErrorKind::kInvalidInput, "commit " + short_hex(id) + " (" + i.summary +
                                              ") changed no settings; nothing to revert");
  }
  auto lookup = [](const Files& f, const std::string& k) -> std::optional<std::string> {
    auto it = f.find(k);
    if (it == f.end()) return std::nullopt;
    return it->second;
  };
  ChangeFn fn = [&](const Files& base) -> Result<Change> {
    Change change;
    for (const auto& p2 : paths) {
      auto now = lookup(base, p2);
      auto old = lookup(before, p2);
      auto set_by_commit = lookup(after, p2);
      if (now == old) continue;  // already back to what it was
      if (now != set_by_commit) {
        return fail(conflict(impl_->path + ": cannot revert " + short_hex(id) + ": " + p2 +
                             " was changed again by a later commit; set it directly instead "
                             "(nothing was committed)"));
      }
      if (old) {
        change.puts[p2] = *old;
      } else {
        change.deletes.insert(p2);
      }
    }
    return change;
  };
  std::string message = "Revert \"" + i.summary + "\"\n\nThis reverts commit " + id + ".\n";
  return impl_->update(fn, message, std::nullopt, check, lock);
}

}  // namespace pinata::db
