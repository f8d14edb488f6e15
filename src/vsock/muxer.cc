#include "vsock/muxer.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "base/io.h"
#include "base/log.h"

namespace pinata::vsock {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Exactly 8 hex digits.
bool parse_hex8(std::string_view s, uint32_t& out) {
  if (s.size() != 8) return false;
  uint32_t v = 0;
  for (char c : s) {
    int d = hex_value(c);
    if (d < 0) return false;
    v = (v << 4) | static_cast<uint32_t>(d);
  }
  out = v;
  return true;
}

constexpr int kAcceptBatch = 64;

}  // namespace

Result<uint32_t> parse_connect_request(std::string_view bytes, uint64_t guest_cid) {
  if (bytes.size() != kHandshakeSize) {
    return fail(ErrorKind::kInvalidInput,
                "connect request must be 18 bytes, got " + std::to_string(bytes.size()));
  }
  if (bytes[17] != '\n') return fail(ErrorKind::kInvalidInput, "connect request lacks its newline");
  if (bytes[8] != '.') return fail(ErrorKind::kInvalidInput, "connect request lacks the '.'");
  uint32_t cid, port;
  if (!parse_hex8(bytes.substr(0, 8), cid) || !parse_hex8(bytes.substr(9, 8), port)) {
    return fail(ErrorKind::kInvalidInput, "connect request is not CCCCCCCC.PPPPPPPP in hex");
  }
  if (cid != guest_cid) {
    return fail(ErrorKind::kInvalidInput, "connect request for CID " + std::to_string(cid) +
                                              ", the guest is " + std::to_string(guest_cid));
  }
  return port;
}

std::string format_connect_request(uint64_t cid, uint32_t port) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08x.%08x\n", static_cast<uint32_t>(cid), port);
  return buf;
}

std::string port_socket_name(uint64_t cid, uint32_t port) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08x.%08x", static_cast<uint32_t>(cid), port);
  return buf;
}

Muxer::Muxer(EventLoop& loop, MuxerConfig config) : loop_(loop), config_(std::move(config)) {}

Muxer::~Muxer() {
  reset_all();
  for (auto& [fd, conn] : draining_) (void)loop_.remove(fd);
  draining_.clear();
  for (auto& [fd, path] : listeners_) {
    (void)loop_.remove(fd.get());
    ::unlink(path.c_str());
  }
  if (timer_) (void)loop_.remove(timer_.get());
}

Status Muxer::start() {
  timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer_) return fail_errno("timerfd_create");
  TRY(loop_.add(timer_.get(), EPOLLIN, [this](uint32_t) { on_timer(); }));
  TRY(listen_on("connect", [this](UniqueFd fd) { on_connect_client(std::move(fd)); }));
  for (uint32_t port : config_.forwards) {
    TRY(listen_on(port_socket_name(config_.guest_cid, port),
                  [this, port](UniqueFd fd) { open_to_guest(std::move(fd), port); }));
  }
  return {};
}

Status Muxer::listen_on(const std::string& name, std::function<void(UniqueFd)> on_conn) {
  std::string path = path_join(config_.dir, name);
  auto fd = unix_listen(path, 0600, 512);
  if (!fd) return fail(fd.error().context("listen on " + path));
  TRY(set_nonblocking(fd->get()));
  int raw = fd->get();
  TRY(loop_.add(raw, EPOLLIN,
                [this, raw, on_conn = std::move(on_conn)](uint32_t) { accept_all(raw, on_conn); }));
  listeners_.emplace_back(std::move(*fd), path);
  log::info("listening on %s", path.c_str());
  return {};
}

void Muxer::accept_all(int listen_fd, const std::function<void(UniqueFd)>& on_conn) {
  for (int i = 0; i < kAcceptBatch; i++) {
    UniqueFd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        log_.warn("accept: %s", std::strerror(errno));
      }
      break;
    }
    if (!active_) {
      log_.warn("no guest vsock driver yet: closing a host connection");
      continue;
    }
    on_conn(std::move(fd));
  }
  notify_rx();
}

void Muxer::on_connect_client(UniqueFd fd) {
  int raw = fd.get();
  if (auto s = loop_.add(raw, EPOLLIN, [this, raw](uint32_t) { on_handshake_readable(raw); }); !s) {
    log_.warn("connect: %s", s.error().message().c_str());
    return;
  }
  pending_[raw] =
      Pending{std::move(fd), {}, std::chrono::steady_clock::now() + config_.handshake_timeout};
  arm_timer();
}

void Muxer::on_handshake_readable(int fd) {
  auto it = pending_.find(fd);
  if (it == pending_.end()) return;
  Pending& p = it->second;
  char buf[kHandshakeSize];
  // Read no further than the handshake: what follows is stream data for the guest.
  ssize_t n = ::recv(fd, buf, kHandshakeSize - p.buf.size(), MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  auto drop = [&](const std::string& why) {
    log_.warn("DIR/connect: %s; closing the connection", why.c_str());
    (void)loop_.remove(fd);
    pending_.erase(it);
  };
  if (n <= 0) {
    drop(n == 0 ? "EOF before a complete connect request" : std::strerror(errno));
    return;
  }
  p.buf.append(buf, static_cast<size_t>(n));
  // A newline before 18 bytes means the request is already malformed.
  if (p.buf.size() < kHandshakeSize && p.buf.find('\n') == std::string::npos) return;
  auto port = parse_connect_request(p.buf, config_.guest_cid);
  if (!port) {
    drop(port.error().message());
    return;
  }
  UniqueFd conn = std::move(p.fd);
  (void)loop_.remove(fd);
  pending_.erase(it);
  open_to_guest(std::move(conn), *port);
  notify_rx();
}

void Muxer::arm_timer() {
  if (timer_armed_ || !timer_) return;
  struct itimerspec its {};
  its.it_interval.tv_nsec = 250'000'000;
  its.it_value.tv_nsec = 250'000'000;
  ::timerfd_settime(timer_.get(), 0, &its, nullptr);
  timer_armed_ = true;
}

void Muxer::on_timer() {
  uint64_t ticks;
  (void)!::read(timer_.get(), &ticks, sizeof ticks);
  auto now = std::chrono::steady_clock::now();
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (now >= it->second.deadline) {
      log_.warn("DIR/connect: no complete connect request within %lld ms; closing",
                static_cast<long long>(config_.handshake_timeout.count()));
      (void)loop_.remove(it->first);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  retry_connects();
  expire_connects(now);
  notify_rx();
  if (!timer_needed() && timer_armed_) {
    struct itimerspec its {};
    ::timerfd_settime(timer_.get(), 0, &its, nullptr);
    timer_armed_ = false;
  }
}

uint32_t Muxer::allocate_host_port(uint32_t guest_port) {
  for (;;) {
    uint32_t port = next_port_;
    next_port_ = next_port_ >= 0xfffffffeu ? kFirstEphemeralPort : next_port_ + 1;
    if (!conns_.count(key_of(port, guest_port))) return port;
  }
}

void Muxer::open_to_guest(UniqueFd fd, uint32_t guest_port) {
  if (!active_) return;
  if (conns_.size() >= config_.max_connections) {
    log_.warn("connection limit (%zu) reached: closing a host connection to guest port %u",
              config_.max_connections, guest_port);
    return;
  }
  uint32_t host_port = allocate_host_port(guest_port);
  add_connection(std::make_unique<Connection>(Connection::Origin::kHost, config_.guest_cid,
                                              host_port, guest_port, std::move(fd),
                                              config_.buf_alloc));
  connecting_[key_of(host_port, guest_port)] =
      std::chrono::steady_clock::now() + config_.connect_timeout;
  arm_timer();
  log::debug("host -> guest port %u (host port %u)", guest_port, host_port);
}

void Muxer::add_connection(std::unique_ptr<Connection> conn) {
  Key key = key_of(conn->host_port(), conn->guest_port());
  int fd = conn->fd();
  Entry& e = conns_[key];
  e.conn = std::move(conn);
  e.events = e.conn->epoll_events();
  if (auto s = loop_.add(fd, e.events, [this, key](uint32_t ev) { on_socket(key, ev); }); !s) {
    log_.warn("vsock: %s", s.error().message().c_str());
    e.conn->abort();
  } else {
    e.registered = true;
  }
  update(key);
}

bool Muxer::connect_to_host(const Header& request, bool retry_allowed) {
  if (conns_.size() >= config_.max_connections) {
    log_.warn("connection limit (%zu) reached: refusing guest connect to port %u",
              config_.max_connections, request.dst_port);
    reply_reset(request);
    return true;
  }
  std::string path = path_join(config_.dir, port_socket_name(kHostCid, request.dst_port));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  int err = 0;
  if (!fd) {
    err = errno;
  } else if (path.size() >= sizeof addr.sun_path) {
    err = ENAMETOOLONG;
  } else {
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    // AF_UNIX connects complete (or fail) at once. EAGAIN means the listener's backlog is
    // full: the caller retries from the timer rather than stall the loop.
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) err = errno;
  }
  if (err == EAGAIN && retry_allowed) return false;
  if (err != 0) {
    log_.warn("guest connect to host port %u (%s): %s; resetting", request.dst_port, path.c_str(),
              std::strerror(err));
    reply_reset(request);
    return true;
  }
  log::debug("guest port %u -> host port %u", request.src_port, request.dst_port);
  add_connection(std::make_unique<Connection>(
      Connection::accept_guest(request, config_.guest_cid, std::move(fd), config_.buf_alloc)));
  return true;
}

void Muxer::retry_connects() {
  auto now = std::chrono::steady_clock::now();
  for (size_t n = retries_.size(); n > 0; n--) {
    Retry r = retries_.front();
    retries_.pop_front();
    if (!connect_to_host(r.request, now < r.deadline)) retries_.push_back(r);
  }
}

void Muxer::expire_connects(std::chrono::steady_clock::time_point now) {
  for (auto it = connecting_.begin(); it != connecting_.end();) {
    auto c = conns_.find(it->first);
    bool waiting = c != conns_.end() &&
                   (c->second.conn->state() == Connection::State::kRequestPending ||
                    c->second.conn->state() == Connection::State::kAwaitingResponse);
    if (!waiting) {
      it = connecting_.erase(it);
      continue;
    }
    if (now < it->second) {
      ++it;
      continue;
    }
    log_.warn("guest port %u did not answer a connect within %lld ms; closing it",
              c->second.conn->guest_port(), static_cast<long long>(config_.connect_timeout.count()));
    c->second.conn->give_up("connect timed out");
    Key key = it->first;
    it = connecting_.erase(it);
    update(key);
  }
}

bool Muxer::timer_needed() const {
  return !pending_.empty() || !retries_.empty() || !connecting_.empty();
}

void Muxer::on_guest_packet(const Header& h, std::span<const uint8_t> payload) {
  Key key = key_of(h.dst_port, h.src_port);
  if (conns_.find(key) == conns_.end()) {
    if (h.op == VIRTIO_VSOCK_OP_REQUEST) {
      for (const Retry& r : retries_) {
        if (r.request.src_port == h.src_port && r.request.dst_port == h.dst_port) return;
      }
      if (connect_to_host(h, true)) return;
      if (retries_.size() >= config_.max_retrying_connects) {
        log_.warn("host port %u: backlog full and %zu connects waiting; resetting", h.dst_port,
                  retries_.size());
        reply_reset(h);
        return;
      }
      retries_.push_back({h, std::chrono::steady_clock::now() + config_.backlog_retry});
      arm_timer();
    } else if (h.op == VIRTIO_VSOCK_OP_RST) {
      // The guest gave up on a connect still waiting for backlog room.
      std::erase_if(retries_, [&](const Retry& r) {
        return r.request.src_port == h.src_port && r.request.dst_port == h.dst_port;
      });
    } else {
      log::debug("%s for no connection (%u -> %u): RST", op_name(h.op), h.src_port, h.dst_port);
      reply_reset(h);
    }
    return;
  }
  conns_[key].conn->on_guest_packet(h, payload);
  update(key);
}

void Muxer::reply_reset(const Header& h) {
  if (resets_.size() >= config_.max_queued_resets) {
    log_.warn("RST queue full (%zu): dropping an RST to guest port %u", resets_.size(), h.src_port);
    return;
  }
  resets_.push_back(reset_reply(h));
}

void Muxer::on_socket(Key key, uint32_t events) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return;
  it->second.conn->on_socket_events(events);
  update(key);
  notify_rx();
}

void Muxer::on_draining_socket(int fd, uint32_t events) {
  auto it = draining_.find(fd);
  if (it == draining_.end()) return;
  it->second->on_socket_events(events);
  if (it->second->closed()) {
    (void)loop_.remove(fd);
    draining_.erase(it);
  }
}

void Muxer::update(Key key) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return;
  Entry& e = it->second;
  Connection& c = *e.conn;
  if (c.state() == Connection::State::kDraining) {
    int fd = c.fd();
    if (e.registered) (void)loop_.remove(fd);
    if (!c.hung_up() &&
        loop_.add(fd, EPOLLOUT, [this, fd](uint32_t ev) { on_draining_socket(fd, ev); })) {
      draining_[fd] = std::move(e.conn);
    }
    conns_.erase(it);  // a draining connection without a watch is simply closed
    return;
  }
  if (c.closed()) {
    if (c.reset_to_guest()) resets_.push_back(c.reset_header());
    if (!c.reason().empty()) {
      log::debug("connection %u <-> guest %u closed: %s", c.host_port(), c.guest_port(),
                 c.reason().c_str());
    }
    if (e.registered) (void)loop_.remove(c.fd());  // the fd closes with the Connection
    conns_.erase(it);
    return;
  }
  if (e.registered) {
    if (c.hung_up()) {
      (void)loop_.remove(c.fd());
      e.registered = false;
    } else if (uint32_t want = c.epoll_events(); want != e.events) {
      (void)loop_.modify(c.fd(), want);
      e.events = want;
    }
  }
  if (!e.queued && c.wants_rx()) {
    e.queued = true;
    rx_order_.push_back(key);
  }
}

bool Muxer::next_rx_packet(Header& h, std::span<uint8_t> payload) {
  if (!resets_.empty()) {
    h = resets_.front();
    resets_.pop_front();
    return true;
  }
  // Each connection gets at most one try per call (round robin; a connection that has
  // nothing after all drops out of the order until its state changes).
  for (size_t n = rx_order_.size(); n > 0 && !rx_order_.empty(); n--) {
    Key key = rx_order_.front();
    rx_order_.pop_front();
    auto it = conns_.find(key);
    if (it == conns_.end()) continue;
    it->second.queued = false;
    bool got = it->second.conn->next_packet(h, payload);
    update(key);
    if (got) return true;
  }
  return false;
}

void Muxer::set_active(bool active) {
  if (active_ == active) return;
  active_ = active;
  if (!active) reset_all();
  log::info("guest vsock driver %s", active ? "attached" : "detached");
}

void Muxer::reset_all() {
  size_t n = conns_.size();
  for (auto& [key, e] : conns_) {
    if (e.registered) (void)loop_.remove(e.conn->fd());
    e.conn->abort();
  }
  conns_.clear();
  rx_order_.clear();
  resets_.clear();
  for (auto& [fd, p] : pending_) (void)loop_.remove(fd);
  pending_.clear();
  retries_.clear();
  connecting_.clear();
  if (n > 0) log::info("closed %zu vsock connections", n);
}

const Connection* Muxer::find(uint32_t host_port, uint32_t guest_port) const {
  auto it = conns_.find(key_of(host_port, guest_port));
  return it == conns_.end() ? nullptr : it->second.conn.get();
}

void Muxer::notify_rx() {
  if (has_rx_work() && rx_notify_) rx_notify_();
}

}  // namespace pinata::vsock
