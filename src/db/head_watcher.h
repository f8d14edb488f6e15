// HeadWatcher: notices new commits on the configuration database's branch without polling.
//
// One thread waits on inotify for the branch ref to be replaced (loose ref renamed into
// place, packed-refs rewritten: Store::watch_paths()) and then compares Store::head() with
// the last head it saw; each change runs every subscriber with the new head, in order, on that
// thread. Commits by pinata, by the 9P server and by the git CLI all look the same. A 60 s
// re-check covers events inotify cannot see (a ref directory created after the watch began).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "db/store.h"

namespace pinata::db {

class HeadWatcher {
 public:
  using Callback = std::function<void(const std::string& head)>;

  // Watches `store` (which must outlive the watcher). The thread starts at once.
  static Result<std::unique_ptr<HeadWatcher>> start(const Store& store);
  ~HeadWatcher();
  HeadWatcher(const HeadWatcher&) = delete;
  HeadWatcher& operator=(const HeadWatcher&) = delete;

  // Runs `cb` for every later change of head (not for the current one). Thread-safe.
  void subscribe(Callback cb);
  // The last head seen ("" if the branch does not exist).
  std::string head() const;
  // Re-reads the head now and notifies if it moved (e.g. right after a commit of our own, so
  // subscribers need not wait for inotify). Thread-safe.
  void check();

 private:
  explicit HeadWatcher(const Store& store);
  void run();
  void arm();

  const Store& store_;
  UniqueFd inotify_;
  UniqueFd wake_;  // eventfd: stop
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::mutex check_mu_;  // one check() at a time, so callbacks see heads in order
  std::string head_;
  std::vector<Callback> subscribers_;
  std::thread thread_;
};

}  // namespace pinata::db
