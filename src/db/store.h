// Store: the git-backed configuration database ($PINATA_HOME/database, "com.docker.db").
//
// A non-bare git repository whose branch refs/heads/master is the only state that matters.
// Every change is one commit written straight from blobs and trees (the index and the work
// tree are never touched) and published by a compare-and-swap of refs/heads/master against
// the head it was built on. Reads always go to the branch head, so commits made by the git
// CLI (`git reset --hard; edit; git commit`) are picked up like any other.
//
// Concurrency: writers in any number of threads or processes never lose an update. An
// unpinned change is recomputed on the new head and retried when the branch moved; a change
// pinned to a parent fails with a conflict instead. A git lock file (refs/heads/master.lock,
// index.lock, HEAD.lock) is waited for up to `lock_timeout`, then reported by path.
// A Store object is internally locked: one may be shared between threads (a writer waiting
// for a lock or backing off lets other threads' calls through). Callbacks (ChangeFn, check)
// run with the lock held and must not call back into the same Store.
//
// Errors are one line that names the repository path and says what to do; when a read of
// the current state fails (damaged repository, missing object) nothing is written.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"

namespace pinata::db {

inline constexpr char kBranchRef[] = "refs/heads/master";
inline constexpr char kAuthorName[] = "pinata-db";
inline constexpr char kAuthorEmail[] = "pinata-db@localhost";

// Error::code() of the store failures a caller may want to tell apart.
inline constexpr int kConflictCode = -1001;  // kind kAlreadyExists: the pinned parent is stale
inline constexpr int kLockedCode = -1002;    // kind kTimeout: a git lock file did not go away
bool is_conflict(const Error& e);
bool is_locked(const Error& e);

// $PINATA_HOME/database.
std::string database_path(const std::string& pinata_home);

// Repository paths ('/'-separated, relative to the root) to file contents, exactly as stored.
using Files = std::map<std::string, std::string>;

struct StoreOptions {
  // How long a write waits for a git lock file before failing with kLockedCode.
  std::chrono::milliseconds lock_timeout{3000};
  // Compare-and-swap attempts of an unpinned change while other writers keep winning.
  int max_attempts = 500;
};

// What one commit changes. Puts and deletes must name different paths.
struct Change {
  Files puts;
  std::set<std::string> deletes;  // deleting a missing path is not an error
  // When not empty, the commit message (a ChangeFn can describe what it actually changed).
  std::string message;
};

struct Transaction {
  Change change;
  std::string message;
  // Pin: commit only if the branch head is still this commit (full id); otherwise fail with
  // kConflictCode. Without a pin the change is re-applied to whatever the head is.
  std::optional<std::string> parent;
  // Optional check of the files the commit would contain (`result`) given those of the head
  // it is built on (`base`); called on every attempt, an error aborts without writing.
  std::function<Status(const Files& base, const Files& result)> check;
};

// Computes a change from the files at the head it will be committed on; called again on
// each retry. Returning an empty change (or one that changes nothing) makes no commit.
using ChangeFn = std::function<Result<Change>(const Files& base)>;

struct CommitResult {
  std::string id;        // the new commit, or the unchanged head
  bool created = false;  // false: the change was a no-op and nothing was written
  int attempts = 0;      // compare-and-swap attempts it took
};

struct CommitInfo {
  std::string id;          // full hex id
  int64_t time = 0;        // committer time, seconds since the epoch
  int offset_minutes = 0;  // committer's UTC offset
  std::string author;      // "name <email>"
  std::string summary;     // first line of the message
  std::string message;     // full message
  std::vector<std::string> parents;
};

// Which paths a revert may touch (e.g. only the schema's keys).
using PathFilter = std::function<bool(const std::string& path)>;

class Store {
 public:
  // Opens the repository at `path` (exactly there: parent directories are not searched).
  // kNotFound when `path` does not exist or is an empty directory; a one-line error when it
  // is not a git repository or cannot be read.
  static Result<Store> open(const std::string& path, StoreOptions options = {});
  // Opens the repository, or creates it with one initial commit of `seed` on master (the
  // work tree checked out). Creation is atomic: a temporary repository renamed into place,
  // so concurrent first uses agree on one repository.
  static Result<Store> open_or_init(const std::string& path, const Files& seed,
                                    StoreOptions options = {});

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  const std::string& path() const;
  // The git directory ($path/.git for the repository pinata creates).
  std::string git_dir() const;
  // What to watch with inotify to notice a new head without polling: the directory holding
  // the loose branch ref (IN_MOVED_TO/IN_CREATE of "master") and the git directory
  // (IN_MOVED_TO of "packed-refs"); on an event, call head() and compare.
  std::vector<std::string> watch_paths() const;

  // The branch head (full hex id), or nullopt when the branch does not exist yet. Cheap: one
  // read of the loose ref (or of packed-refs): fine to poll.
  Result<std::optional<std::string>> head() const;

  // File contents at the head (or at commit `at`: a full or abbreviated id, or any git
  // revision expression); nullopt when the path is absent or the branch does not exist.
  Result<std::optional<std::string>> read(const std::string& path,
                                          const std::optional<std::string>& at = {}) const;
  // Every file under `prefix` ("" for all), keyed by full path.
  Result<Files> read_tree(const std::string& prefix,
                          const std::optional<std::string>& at = {}) const;

  // Exactly one commit for the whole transaction (or none when it changes nothing).
  Result<CommitResult> commit(const Transaction& txn);
  // The general form: `fn` computes the change on each attempt's base.
  Result<CommitResult> update(const ChangeFn& fn, const std::string& message,
                              const std::optional<std::string>& parent = {});

  // Commits reachable from the head, newest first, that changed `path` (or every commit);
  // at most `limit` (0: no limit).
  Result<std::vector<CommitInfo>> history(const std::optional<std::string>& path,
                                          size_t limit) const;
  // Resolves a revision to a commit on the branch.
  Result<CommitInfo> describe(const std::string& revision) const;
  // The paths a commit changed relative to its first parent (all of them for a root).
  Result<std::vector<std::string>> changed_paths(const std::string& revision) const;

  // One new commit that undoes `revision`'s changes to the paths `filter` accepts: each
  // such path goes back to its content in the commit's first parent. A path changed again
  // since is a conflict (kConflictCode) naming it; one already back to the old content is
  // left alone. `check` as in Transaction.
  Result<CommitResult> revert(
      const std::string& revision, const PathFilter& filter,
      const std::function<Status(const Files& base, const Files& result)>& check = {});

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pinata::db
