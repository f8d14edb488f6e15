#include "base/splice_proxy.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <thread>

namespace pinata {
namespace {

constexpr size_t kBufferSize = 128 * 1024;

// One direction of the copy: bytes read from `from` but not yet written to `to`.
struct Pipe {
  int from;
  int to;
  char* buf;
  size_t start = 0;
  size_t end = 0;
  bool eof = false;   // `from` reached EOF and everything was written
  bool done = false;  // shutdown(to, SHUT_WR) was sent (or the direction failed)
  uint64_t total = 0;
};

// Moves as much as possible without blocking. Returns false on a fatal error.
bool pump(Pipe& p) {
  for (;;) {
    if (p.start == p.end && !p.eof) {
      ssize_t n = ::recv(p.from, p.buf, kBufferSize, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return true;
        return false;
      }
      if (n == 0) {
        p.eof = true;
      } else {
        p.start = 0;
        p.end = static_cast<size_t>(n);
      }
    }
    if (p.start < p.end) {
      ssize_t n = ::send(p.to, p.buf + p.start, p.end - p.start, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return true;
        return false;
      }
      p.start += static_cast<size_t>(n);
      p.total += static_cast<uint64_t>(n);
      continue;
    }
    if (p.eof && !p.done) {
      ::shutdown(p.to, SHUT_WR);
      p.done = true;
    }
    return true;
  }
}

}  // namespace

ProxyStats proxy_streams(UniqueFd a, UniqueFd b) {
  std::unique_ptr<char[]> buf_ab(new char[kBufferSize]);
  std::unique_ptr<char[]> buf_ba(new char[kBufferSize]);
  Pipe ab{a.get(), b.get(), buf_ab.get()};
  Pipe ba{b.get(), a.get(), buf_ba.get()};
  bool hup[2] = {false, false};  // the peer of a (0) / b (1) hung up completely
  for (;;) {
    if (!pump(ab) || !pump(ba)) break;
    // Nothing can be written to a side that hung up: drop that direction.
    if (hup[0]) ba.done = true;
    if (hup[1]) ab.done = true;
    if (ab.done && ba.done) break;
    struct pollfd pfds[2] = {{a.get(), 0, 0}, {b.get(), 0, 0}};
    // Wait to read where a buffer is empty, to write where one is pending.
    if (!ab.done) {
      if (ab.start < ab.end) pfds[1].events |= POLLOUT; else pfds[0].events |= POLLIN;
    }
    if (!ba.done) {
      if (ba.start < ba.end) pfds[0].events |= POLLOUT; else pfds[1].events |= POLLIN;
    }
    // poll() reports POLLHUP even when not asked: leave out a hung-up side we no longer read.
    for (int i = 0; i < 2; i++) {
      if (hup[i] && pfds[i].events == 0) pfds[i].fd = -1;
    }
    int rc = ::poll(pfds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((pfds[0].revents | pfds[1].revents) & (POLLERR | POLLNVAL)) {
      pump(ab);
      pump(ba);
      break;
    }
    for (int i = 0; i < 2; i++) {
      if (pfds[i].revents & POLLHUP) hup[i] = true;
    }
  }
  return ProxyStats{ab.total, ba.total};
}

void proxy_streams_detached(UniqueFd a, UniqueFd b) {
  std::thread([a = std::move(a), b = std::move(b)]() mutable {
    proxy_streams(std::move(a), std::move(b));
  }).detach();
}

}  // namespace pinata
