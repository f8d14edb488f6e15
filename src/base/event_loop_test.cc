#include "base/event_loop.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace pinata {
namespace {

std::unique_ptr<EventLoop> make_loop() {
  auto loop = EventLoop::create();
  EXPECT_TRUE(loop.has_value());
  return std::move(*loop);
}

UniqueFd make_eventfd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }

void signal(int fd) {
  uint64_t one = 1;
  ASSERT_EQ(::write(fd, &one, sizeof one), 8);
}

void drain(int fd) {
  uint64_t v;
  [[maybe_unused]] ssize_t n = ::read(fd, &v, sizeof v);
}

TEST(EventLoop, DispatchesReadableFdToItsCallback) {
  auto loop = make_loop();
  UniqueFd efd = make_eventfd();
  uint32_t seen = 0;
  int calls = 0;
  ASSERT_TRUE(loop->add(efd.get(), EPOLLIN, [&](uint32_t ev) {
    seen = ev;
    calls++;
    drain(efd.get());
  }));
  signal(efd.get());

  auto n = loop->run_once(1000);

  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(seen & EPOLLIN);
}

TEST(EventLoop, IdleFdDoesNotFire) {
  auto loop = make_loop();
  UniqueFd efd = make_eventfd();
  int calls = 0;
  ASSERT_TRUE(loop->add(efd.get(), EPOLLIN, [&](uint32_t) { calls++; }));

  auto n = loop->run_once(0);

  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 0);
  EXPECT_EQ(calls, 0);
}

TEST(EventLoop, RejectsDuplicateAddAndUnknownRemove) {
  auto loop = make_loop();
  UniqueFd efd = make_eventfd();
  ASSERT_TRUE(loop->add(efd.get(), EPOLLIN, [](uint32_t) {}));

  auto dup = loop->add(efd.get(), EPOLLIN, [](uint32_t) {});
  ASSERT_TRUE(loop->remove(efd.get()));
  auto again = loop->remove(efd.get());

  EXPECT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_FALSE(again.has_value());
  EXPECT_EQ(again.error().kind(), ErrorKind::kNotFound);
}

TEST(EventLoop, ModifyChangesWatchedEvents) {
  auto loop = make_loop();
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  uint32_t seen = 0;
  ASSERT_TRUE(loop->add(a.get(), EPOLLIN, [&](uint32_t ev) { seen |= ev; }));
  ASSERT_TRUE(loop->run_once(0).has_value());
  EXPECT_EQ(seen, 0u);

  ASSERT_TRUE(loop->modify(a.get(), EPOLLOUT));
  ASSERT_TRUE(loop->run_once(1000).has_value());

  EXPECT_TRUE(seen & EPOLLOUT);
}

TEST(EventLoop, CallbackCanRemoveItsOwnFd) {
  auto loop = make_loop();
  UniqueFd efd = make_eventfd();
  int calls = 0;
  ASSERT_TRUE(loop->add(efd.get(), EPOLLIN, [&, fd = efd.get()](uint32_t) {
    calls++;
    EXPECT_TRUE(loop->remove(fd));
  }));
  signal(efd.get());

  ASSERT_TRUE(loop->run_once(1000).has_value());
  ASSERT_TRUE(loop->run_once(0).has_value());  // still readable, but no longer watched

  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(loop->contains(efd.get()));
}

TEST(EventLoop, CallbackRemovingAnotherReadyFdSuppressesItsPendingEvent) {
  auto loop = make_loop();
  UniqueFd a = make_eventfd(), b = make_eventfd();
  int a_calls = 0, b_calls = 0;
  ASSERT_TRUE(loop->add(a.get(), EPOLLIN, [&](uint32_t) {
    a_calls++;
    if (loop->contains(b.get())) {
      EXPECT_TRUE(loop->remove(b.get()));
    }
    drain(a.get());
  }));
  ASSERT_TRUE(loop->add(b.get(), EPOLLIN, [&](uint32_t) {
    b_calls++;
    if (loop->contains(a.get())) {
      EXPECT_TRUE(loop->remove(a.get()));
    }
    drain(b.get());
  }));
  signal(a.get());
  signal(b.get());

  ASSERT_TRUE(loop->run_once(1000).has_value());

  // Whichever ran first removed the other before its event was dispatched.
  EXPECT_EQ(a_calls + b_calls, 1);
}

TEST(EventLoop, CallbackCanReplaceItsOwnRegistration) {
  auto loop = make_loop();
  UniqueFd efd = make_eventfd();
  int first = 0, second = 0;
  ASSERT_TRUE(loop->add(efd.get(), EPOLLIN, [&, fd = efd.get()](uint32_t) {
    first++;
    ASSERT_TRUE(loop->remove(fd));
    ASSERT_TRUE(loop->add(fd, EPOLLIN, [&second, fd](uint32_t) {
      second++;
      drain(fd);
    }));
  }));
  signal(efd.get());

  ASSERT_TRUE(loop->run_once(1000).has_value());
  ASSERT_TRUE(loop->run_once(1000).has_value());

  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
}

TEST(EventLoop, StopFromAnotherThreadEndsRun) {
  auto loop = make_loop();
  std::thread stopper([&] { loop->stop(); });

  auto status = loop->run();
  stopper.join();

  EXPECT_TRUE(status.has_value());
}

TEST(EventLoop, PostedTaskRunsOnLoopThread) {
  auto loop = make_loop();
  std::thread::id ran_on;
  std::thread poster([&] {
    loop->post([&] {
      ran_on = std::this_thread::get_id();
      loop->stop();
    });
  });

  ASSERT_TRUE(loop->run().has_value());
  poster.join();

  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(EventLoop, WakeInterruptsBlockingWait) {
  auto loop = make_loop();
  std::thread waker([&] { loop->wake(); });

  auto n = loop->run_once(10000);
  waker.join();

  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 0);
}

}  // namespace
}  // namespace pinata
