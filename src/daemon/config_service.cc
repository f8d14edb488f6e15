#include "daemon/config_service.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <unistd.h>

#include "base/io.h"
#include "base/log.h"
#include "db/schema.h"
#include "db/view9p.h"
#include "p9/server.h"

namespace pinata {

constexpr int kMaxSessions = 16;

Status validate_database_change(const db::Files& base, const db::Files& result) {
  for (const auto& [path, content] : result) {
    if (!db::is_schema_path(path)) continue;
    auto it = base.find(path);
    if (it != base.end() && it->second == content) continue;
    const db::KeySpec* key = db::find_key(path);
    if (!key) continue;
    auto ok = db::normalize(*key, db::decode_value(content));
    if (!ok) return fail(ErrorKind::kInvalidInput, ok.error().message());
  }
  db::Values values = db::resolve_values(result);
  if (auto st = db::check_consistency(values); !st) {
    return fail(ErrorKind::kInvalidInput, st.error().message());
  }
  return {};
}

ConfigService::~ConfigService() {
  if (listener_) ::shutdown(listener_.get(), SHUT_RDWR);
}

Result<std::unique_ptr<ConfigService>> ConfigService::open(const std::string& pinata_home) {
  std::unique_ptr<ConfigService> s(new ConfigService());
  std::string path = db::database_path(pinata_home);
  TRY_ASSIGN(db::Store store, db::Store::open_or_init(path, db::seed_files()));
  s->store_ = std::make_unique<db::Store>(std::move(store));
  TRY_ASSIGN(db::DbSettings settings, db::read_settings(*s->store_));
  for (const std::string& w : settings.warnings) log::warn("database: %s", w.c_str());
  s->settings_ = std::move(settings);
  TRY_ASSIGN(s->watcher_, db::HeadWatcher::start(*s->store_));
  db::ViewOptions options;
  options.check = validate_database_change;
  s->fs_ = db::make_db_filesystem(*s->store_, *s->watcher_, options);
  ConfigService* self = s.get();
  s->watcher_->subscribe([self](const std::string& head) {
    auto now = db::read_settings(*self->store_, head);
    if (!now) {
      log::warn("database: reading %s: %s", head.c_str(), now.error().message().c_str());
      return;
    }
    for (const std::string& w : now->warnings) log::warn("database: %s", w.c_str());
    db::DbSettings before;
    ChangeFn fn;
    {
      std::lock_guard lock(self->mu_);
      before = self->settings_;
      self->settings_ = *now;
      fn = self->on_change_;
    }
    log::info("database: new head %s", head.c_str());
    if (fn) fn(before, *now);
  });
  log::info("database %s at %s", path.c_str(), s->settings_.head.c_str());
  return s;
}

db::DbSettings ConfigService::settings() const {
  std::lock_guard lock(mu_);
  return settings_;
}

void ConfigService::on_change(ChangeFn fn) {
  std::lock_guard lock(mu_);
  on_change_ = std::move(fn);
}

Status ConfigService::serve(const std::string& socket_path) {
  TRY_ASSIGN(listener_, unix_listen(socket_path, 0600, 16));
  std::thread([this] { accept_loop(); }).detach();
  log::info("serving the database over 9P on %s", socket_path.c_str());
  return {};
}

void ConfigService::accept_loop() {
  for (;;) {
    int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      return;
    }
    // The guest may connect more than once (a remount); a flood is refused.
    if (sessions_.load() >= kMaxSessions) {
      log::warn("database: %d 9P sessions already: refusing another", kMaxSessions);
      ::close(c);
      continue;
    }
    sessions_++;
    std::thread([this, fs = fs_, c] {
      p9::SessionOptions options;
      options.name = "db-9p";
      p9::Session session(fs, UniqueFd(c), options);
      log::info("database: a 9P client connected");
      if (auto st = session.run(); !st) {
        log::warn("database: 9P session: %s", st.error().message().c_str());
      } else {
        log::info("database: 9P client disconnected");
      }
      sessions_--;
    }).detach();
  }
}

}  // namespace pinata
