#include "db/head_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace pinata::db {

HeadWatcher::HeadWatcher(const Store& store) : store_(store) {}

Result<std::unique_ptr<HeadWatcher>> HeadWatcher::start(const Store& store) {
  std::unique_ptr<HeadWatcher> w(new HeadWatcher(store));
  w->inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!w->inotify_) return fail_errno("inotify_init1");
  w->wake_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!w->wake_) return fail_errno("eventfd");
  w->arm();
  auto head = store.head();
  if (!head) return fail(head.error());
  w->head_ = head->value_or("");
  w->thread_ = std::thread([p = w.get()] { p->run(); });
  return w;
}

HeadWatcher::~HeadWatcher() {
  stop_ = true;
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

void HeadWatcher::arm() {
  for (const std::string& path : store_.watch_paths()) {
    // Refs are replaced by rename (IN_MOVED_TO) or written in place by some tools.
    if (::inotify_add_watch(inotify_.get(), path.c_str(),
                            IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE | IN_DELETE) < 0) {
      log::debug("db: inotify watch of %s: %s", path.c_str(), std::strerror(errno));
    }
  }
}

void HeadWatcher::subscribe(Callback cb) {
  std::lock_guard lock(mu_);
  subscribers_.push_back(std::move(cb));
}

std::string HeadWatcher::head() const {
  std::lock_guard lock(mu_);
  return head_;
}

void HeadWatcher::check() {
  std::lock_guard serial(check_mu_);
  auto head = store_.head();
  if (!head) {
    log::warn("db: reading the branch head: %s", head.error().message().c_str());
    return;
  }
  std::string now = head->value_or("");
  std::vector<Callback> subs;
  {
    std::lock_guard lock(mu_);
    if (now == head_) return;
    head_ = now;
    subs = subscribers_;
  }
  for (auto& cb : subs) cb(now);
}

void HeadWatcher::run() {
  while (!stop_) {
    struct pollfd pfds[2] = {{inotify_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    int rc = ::poll(pfds, 2, 60000);
    if (stop_) return;
    if (rc < 0 && errno != EINTR) {
      log::warn("db: head watcher: poll: %s", std::strerror(errno));
      return;
    }
    if (rc > 0 && (pfds[0].revents & POLLIN)) {
      alignas(struct inotify_event) char buf[4096];
      while (::read(inotify_.get(), buf, sizeof buf) > 0) {
      }
    } else if (rc == 0) {
      arm();  // directories that did not exist at the start (refs/heads before any commit)
    }
    check();
  }
}

}  // namespace pinata::db
