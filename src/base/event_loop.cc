#include "base/event_loop.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace pinata {

namespace {
constexpr uint64_t kWakeId = 0;  // epoll data for the wake eventfd
constexpr int kMaxEvents = 64;
}  // namespace

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  UniqueFd epoll_fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd) return fail_errno("epoll_create1");
  UniqueFd wake_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd) return fail_errno("eventfd");
  struct epoll_event ev {};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, wake_fd.get(), &ev) != 0) {
    return fail_errno("epoll_ctl add eventfd");
  }
  return std::unique_ptr<EventLoop>(new EventLoop(std::move(epoll_fd), std::move(wake_fd)));
}

EventLoop::EventLoop(UniqueFd epoll_fd, UniqueFd wake_fd)
    : epoll_fd_(std::move(epoll_fd)), wake_fd_(std::move(wake_fd)) {}

EventLoop::~EventLoop() = default;

Status EventLoop::add(int fd, uint32_t events, Callback callback) {
  if (fd < 0) return fail(ErrorKind::kInvalidInput, "event loop: negative fd");
  if (ids_.count(fd)) {
    return fail(ErrorKind::kAlreadyExists,
                "event loop: fd " + std::to_string(fd) + " already added");
  }
  uint64_t id = next_id_++;
  struct epoll_event ev {};
  ev.events = events;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return fail_errno("epoll_ctl add fd " + std::to_string(fd));
  }
  ids_[fd] = id;
  entries_[id] = std::make_shared<Entry>(Entry{fd, std::move(callback)});
  return {};
}

Status EventLoop::modify(int fd, uint32_t events) {
  auto it = ids_.find(fd);
  if (it == ids_.end()) {
    return fail(ErrorKind::kNotFound, "event loop: fd " + std::to_string(fd) + " not added");
  }
  struct epoll_event ev {};
  ev.events = events;
  ev.data.u64 = it->second;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
    return fail_errno("epoll_ctl mod fd " + std::to_string(fd));
  }
  return {};
}

Status EventLoop::remove(int fd) {
  auto it = ids_.find(fd);
  if (it == ids_.end()) {
    return fail(ErrorKind::kNotFound, "event loop: fd " + std::to_string(fd) + " not added");
  }
  entries_.erase(it->second);
  ids_.erase(it);
  // The fd may already be closed by its owner (EBADF) or gone from the epoll set: either way
  // it no longer produces events.
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr) != 0 && errno != EBADF &&
      errno != ENOENT) {
    return fail_errno("epoll_ctl del fd " + std::to_string(fd));
  }
  return {};
}

void EventLoop::post(Task task) {
  {
    std::lock_guard<std::mutex> lock(tasks_mutex_);
    tasks_.push_back(std::move(task));
  }
  wake();
}

void EventLoop::wake() {
  uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the loop will wake anyway.
  [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);
}

void EventLoop::stop() {
  stop_.store(true);
  wake();
}

int EventLoop::run_tasks() {
  std::vector<Task> tasks;
  {
    std::lock_guard<std::mutex> lock(tasks_mutex_);
    tasks.swap(tasks_);
  }
  for (auto& task : tasks) task();
  return static_cast<int>(tasks.size());
}

Result<int> EventLoop::run_once(int timeout_ms) {
  struct epoll_event events[kMaxEvents];
  int n = ::epoll_wait(epoll_fd_.get(), events, kMaxEvents, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return fail_errno("epoll_wait");
  }
  int dispatched = 0;
  for (int i = 0; i < n; i++) {
    uint64_t id = events[i].data.u64;
    if (id == kWakeId) {
      uint64_t value;
      [[maybe_unused]] ssize_t r = ::read(wake_fd_.get(), &value, sizeof value);
      continue;
    }
    auto it = entries_.find(id);
    if (it == entries_.end()) continue;  // removed earlier in this batch
    // Hold a reference: the callback may remove its own entry.
    std::shared_ptr<Entry> entry = it->second;
    entry->callback(events[i].events);
    dispatched++;
  }
  dispatched += run_tasks();
  return dispatched;
}

Status EventLoop::run() {
  while (!stop_.load()) {
    TRY(run_once(-1));
  }
  stop_.store(false);
  return {};
}

Result<UniqueFd> stop_on_termination_signals(EventLoop& loop) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) return fail_errno("sigprocmask");
  UniqueFd fd(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd) return fail_errno("signalfd");
  int raw = fd.get();
  TRY(loop.add(raw, EPOLLIN, [&loop, raw](uint32_t) {
    struct signalfd_siginfo si;
    if (::read(raw, &si, sizeof si) == sizeof si) {
      log::info("%s received; exiting", strsignal(static_cast<int>(si.ssi_signo)));
    }
    loop.stop();
  }));
  return fd;
}

}  // namespace pinata
