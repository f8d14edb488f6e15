// EventLoop: a small epoll loop.
//
// Register an fd with a callback; run() dispatches readiness until stop(). Callbacks run on
// the thread that calls run(). An fd may be removed (or re-added) from inside any callback,
// including its own: a removed fd's pending events in the current batch are dropped, and the
// callback object stays alive until the callback that is running returns.
//
// Thread safety: add/modify/remove/run are for the loop thread; post(), wake() and stop()
// may be called from any thread (they use an eventfd to wake the loop).
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace pinata {

class EventLoop {
 public:
  using Callback = std::function<void(uint32_t events)>;
  using Task = std::function<void()>;

  static Result<std::unique_ptr<EventLoop>> create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Watches `fd` for `events` (EPOLLIN, EPOLLOUT, ...; level-triggered unless EPOLLET).
  // The fd is not owned. Adding an fd that is already registered is an error.
  Status add(int fd, uint32_t events, Callback callback);
  Status modify(int fd, uint32_t events);
  // Stops watching `fd`. Removing an fd that is not registered is an error (kNotFound).
  Status remove(int fd);
  bool contains(int fd) const { return ids_.count(fd) != 0; }

  // Runs callbacks until stop(). Returns an error only if epoll itself fails.
  Status run();
  // Waits up to `timeout_ms` (-1 = forever) for one batch of events and dispatches it.
  // Returns the number of callbacks and tasks run.
  Result<int> run_once(int timeout_ms);

  // Thread-safe: runs `task` on the loop thread soon.
  void post(Task task);
  // Thread-safe: makes a blocked run()/run_once() return.
  void wake();
  // Thread-safe: makes run() return after the current batch.
  void stop();
  bool stopped() const { return stop_.load(); }

 private:
  struct Entry {
    int fd;
    Callback callback;
  };
  EventLoop(UniqueFd epoll_fd, UniqueFd wake_fd);
  int run_tasks();

  UniqueFd epoll_fd_;
  UniqueFd wake_fd_;
  uint64_t next_id_ = 1;
  // epoll_event.data.u64 carries an id, never reused, so that an event for an fd that was
  // removed (and maybe re-added as a new registration) in the same batch is recognised.
  std::unordered_map<int, uint64_t> ids_;                         // fd -> id
  std::unordered_map<uint64_t, std::shared_ptr<Entry>> entries_;  // id -> entry
  std::atomic<bool> stop_{false};
  std::mutex tasks_mutex_;
  std::vector<Task> tasks_;
};

// Blocks SIGINT and SIGTERM and makes either one stop `loop` (logging it), through a signalfd
// that the returned fd owns: keep it for as long as the loop runs. For backend main()s that
// clean up after run() returns.
Result<UniqueFd> stop_on_termination_signals(EventLoop& loop);

}  // namespace pinata
