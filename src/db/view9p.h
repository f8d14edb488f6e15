// The configuration database as a 9P tree, datakit's layout (docs/protocols/config-db.md):
//
//   /branch/master/head               the head commit id and a newline
//   /branch/master/head.live          stream: the current head, then a line per new head
//   /branch/master/ro/<path>          the files at the head (read-only, always the current head)
//   /branch/master/transactions/<T>/  mkdir T starts a transaction on the current head:
//        rw/<path>                    the files, writable (create, write, truncate, unlink, mkdir)
//        msg                          the commit message (default "transaction T")
//        ctl                          write "commit": one commit pinned to the transaction's
//                                     base (a head that moved meanwhile is a conflict, ESTALE);
//                                     write "close" (or rmdir T) drops it; read: its state
//   /branch/master/watch/<a>.node/<b>.node/tree.live
//                                     stream: a hash of what is under a/b now, then a line each
//                                     time a new head changes it (an empty line: nothing there)
//
// Commits are checked by ViewOptions::check (pinatad passes the schema's validation): a bad
// value fails the write of "commit" with EINVAL and `cat ctl` says why. Nothing is written.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/result.h"
#include "db/head_watcher.h"
#include "db/store.h"
#include "p9/filesystem.h"

namespace pinata::db {

struct ViewOptions {
  std::function<Status(const Files& base, const Files& result)> check;
  size_t max_transactions = 64;     // open at once; more → ENOSPC
  size_t max_watched_paths = 1024;  // distinct watch paths with a stream; unread ones are reused
};

// A hash of the files at `path` ("" = everything; a file, or a directory's files), for
// tree.live. "" when nothing is there.
std::string tree_hash(const Files& files, const std::string& path);

// The tree over `store`, fed by `watcher` (both must outlive every session using it).
std::shared_ptr<p9::FileSystem> make_db_filesystem(Store& store, HeadWatcher& watcher,
                                                   ViewOptions options = {});

}  // namespace pinata::db
