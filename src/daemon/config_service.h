// pinatad's side of the configuration database ($PINATA_HOME/database, docs/protocols/
// config-db.md): opens it (creating it with the schema's defaults on first use), serves it to
// the guest over 9P2000.L on vsock port 564 (the guest's connect to host port 564 arrives on
// the unix socket vsock/00000002.00000234, a thread and a p9::Session per connection), and
// tells pinatad when a new head changes the settings.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/fd.h"
#include "base/result.h"
#include "db/head_watcher.h"
#include "db/settings_view.h"
#include "db/store.h"
#include "p9/filesystem.h"

namespace pinata {

constexpr uint32_t kDbVsockPort = 564;

// Whether `result` (the files a commit would contain) is acceptable: every schema key that
// differs from `base` has a valid value, and the keys agree with each other. The error says
// which key and what is accepted.
Status validate_database_change(const db::Files& base, const db::Files& result);

class ConfigService {
 public:
  using ChangeFn = std::function<void(const db::DbSettings& before, const db::DbSettings& now)>;

  static Result<std::unique_ptr<ConfigService>> open(const std::string& pinata_home);
  ~ConfigService();

  // The settings at the current head.
  db::DbSettings settings() const;
  // Runs `fn` (on the watcher's thread) after each new head, with the settings before and
  // after. Set it before serve().
  void on_change(ChangeFn fn);
  // Listens on `socket_path` and serves each connection in its own thread.
  Status serve(const std::string& socket_path);

 private:
  ConfigService() = default;
  void accept_loop();

  std::unique_ptr<db::Store> store_;
  std::unique_ptr<db::HeadWatcher> watcher_;
  std::shared_ptr<p9::FileSystem> fs_;
  UniqueFd listener_;
  std::atomic<int> sessions_{0};
  mutable std::mutex mu_;
  db::DbSettings settings_;
  ChangeFn on_change_;
};

}  // namespace pinata
