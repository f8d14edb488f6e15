#include "ports/relay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "base/event_loop.h"
#include "base/io.h"
#include "base/log.h"
#include "base/splice_proxy.h"
#include "ports/wire.h"

namespace pinata::ports {

// ---- addresses -----------------------------------------------------------------------------

SocketAddress SocketAddress::ipv4(const Ipv4Endpoint& endpoint) {
  SocketAddress a;
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(endpoint.port);
  sin->sin_addr.s_addr = htonl(endpoint.ip);
  a.length = sizeof(sockaddr_in);
  return a;
}

Result<SocketAddress> SocketAddress::parse(std::string_view ip, uint16_t port) {
  std::string text(ip);
  SocketAddress a;
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (::inet_pton(AF_INET, text.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    a.length = sizeof(sockaddr_in);
    return a;
  }
  a.storage = {};
  if (::inet_pton(AF_INET6, text.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    a.length = sizeof(sockaddr_in6);
    return a;
  }
  return fail(ErrorKind::kInvalidInput,
              "\"" + text + "\" is not a numeric IPv4 or IPv6 address");
}

Result<SocketAddress> SocketAddress::local_of(int fd) {
  SocketAddress a;
  a.length = sizeof a.storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length) != 0) {
    return fail_errno("getsockname");
  }
  return a;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

std::string SocketAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf,
                sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  if (family() == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
                sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(port());
  }
  return "(unknown address family " + std::to_string(family()) + ")";
}

std::string SocketAddress::key() const {
  std::string k(1, static_cast<char>(family()));
  uint16_t p = port();
  k.append(reinterpret_cast<const char*>(&p), sizeof p);
  if (family() == AF_INET) {
    const auto& addr = reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr;
    k.append(reinterpret_cast<const char*>(&addr), sizeof addr);
  } else if (family() == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    k.append(reinterpret_cast<const char*>(&sin6->sin6_addr), sizeof sin6->sin6_addr);
    k.append(reinterpret_cast<const char*>(&sin6->sin6_scope_id), sizeof sin6->sin6_scope_id);
  }
  return k;
}

// ---- sockets -------------------------------------------------------------------------------

void set_nodelay(int fd) {
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails on non-TCP
}

Result<UniqueFd> listen_on(Proto proto, const SocketAddress& address) {
  int type = proto == Proto::kTcp ? SOCK_STREAM : SOCK_DGRAM;
  UniqueFd fd(::socket(address.family(), type | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  int one = 1;
  if (proto == Proto::kTcp &&
      ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    return fail_errno("SO_REUSEADDR");
  }
  if (address.family() == AF_INET6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    return fail_errno("IPV6_V6ONLY");
  }
  if (::bind(fd.get(), address.get(), address.length) != 0) {
    return fail_errno("bind " + address.to_string());
  }
  if (proto == Proto::kTcp && ::listen(fd.get(), 512) != 0) {
    return fail_errno("listen " + address.to_string());
  }
  return fd;
}

Result<UniqueFd> connect_tcp(const SocketAddress& address, std::chrono::milliseconds timeout) {
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fail_errno("socket");
  const std::string what = "connect " + address.to_string();
  if (::connect(fd.get(), address.get(), address.length) != 0) {
    if (errno != EINPROGRESS) return fail_errno(what);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return fail(Error(ErrorKind::kTimeout, what + ": timed out", ETIMEDOUT));
      }
      struct pollfd p = {fd.get(), POLLOUT, 0};
      int rc = ::poll(&p, 1, static_cast<int>(left.count()));
      if (rc < 0 && errno != EINTR) return fail_errno("poll");
      if (rc > 0) break;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return fail_errno(what);
    if (err != 0) return fail_errno(what, err);
  }
  TRY(set_nonblocking(fd.get(), false));
  set_nodelay(fd.get());
  return fd;
}

Result<UniqueFd> connect_udp(const SocketAddress& address) {
  UniqueFd fd(::socket(address.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  if (::connect(fd.get(), address.get(), address.length) != 0) {
    return fail_errno("connect udp " + address.to_string());
  }
  return fd;
}

namespace {

// A RateLimitedLog that connection threads can share.
class SharedRateLimitedLog {
 public:
  template <typename... Args>
  void warn(const char* fmt, Args... args) {
    std::lock_guard lock(mu_);
    log_.warn(fmt, args...);
  }

 private:
  std::mutex mu_;
  log::RateLimitedLog log_;
};

SharedRateLimitedLog& connection_log() {
  static SharedRateLimitedLog* log = new SharedRateLimitedLog();  // never destroyed: threads
  return *log;
}

}  // namespace

// ---- StreamAcceptor ------------------------------------------------------------------------

struct StreamAcceptor::Shared {
  Handler handler;
  size_t max_connections = 0;
  std::mutex mu;
  std::condition_variable idle;
  bool stopping = false;
  uint64_t next_id = 1;
  // A duplicate of each live connection's fd: shutting it down makes the handler's reads and
  // writes end even though the handler owns (and will close) the original.
  std::map<uint64_t, UniqueFd> live;
};

Result<std::unique_ptr<StreamAcceptor>> StreamAcceptor::start(UniqueFd listener, Handler handler,
                                                              std::string name,
                                                              size_t max_connections) {
  std::unique_ptr<StreamAcceptor> a(new StreamAcceptor());
  TRY(set_nonblocking(listener.get()));
  a->listener_ = std::move(listener);
  a->stop_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!a->stop_fd_) return fail_errno("eventfd");
  a->name_ = std::move(name);
  a->shared_ = std::make_shared<Shared>();
  a->shared_->handler = std::move(handler);
  a->shared_->max_connections = max_connections;
  a->thread_ = std::thread([p = a.get()] { p->accept_loop(); });
  return a;
}

StreamAcceptor::~StreamAcceptor() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_fd_.get(), &one, sizeof one);
    thread_.join();
  }
  listener_.reset();  // the port is free from here on
  std::unique_lock lock(shared_->mu);
  shared_->stopping = true;
  for (auto& [id, fd] : shared_->live) ::shutdown(fd.get(), SHUT_RDWR);
  shared_->idle.wait_for(lock, std::chrono::seconds(1), [&] { return shared_->live.empty(); });
}

size_t StreamAcceptor::connection_count() const {
  std::lock_guard lock(shared_->mu);
  return shared_->live.size();
}

void StreamAcceptor::accept_loop() {
  log::RateLimitedLog rate_limited;
  for (;;) {
    struct pollfd p[2] = {{listener_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::error("%s: poll: %s", name_.c_str(), std::strerror(errno));
      return;
    }
    if (p[1].revents) return;
    int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        rate_limited.warn("%s: accept: %s", name_.c_str(), std::strerror(errno));
        struct pollfd s = {stop_fd_.get(), POLLIN, 0};
        if (::poll(&s, 1, 100) > 0) return;
        continue;
      }
      log::error("%s: accept: %s; no longer accepting", name_.c_str(), std::strerror(errno));
      return;
    }
    UniqueFd conn(c);
    set_nodelay(c);
    UniqueFd dup(::fcntl(c, F_DUPFD_CLOEXEC, 0));
    if (!dup) {
      rate_limited.warn("%s: dup: %s", name_.c_str(), std::strerror(errno));
      continue;
    }
    uint64_t id;
    {
      std::lock_guard lock(shared_->mu);
      if (shared_->live.size() >= shared_->max_connections) {
        rate_limited.warn("%s: %zu connections already: closing a new one", name_.c_str(),
                          shared_->live.size());
        continue;
      }
      id = shared_->next_id++;
      shared_->live.emplace(id, std::move(dup));
    }
    auto done = [shared = shared_, id] {
      std::lock_guard lock(shared->mu);
      shared->live.erase(id);
      if (shared->live.empty()) shared->idle.notify_all();
    };
    try {
      std::thread([shared = shared_, conn = std::move(conn), done]() mutable {
        shared->handler(std::move(conn));
        done();
      }).detach();
    } catch (const std::system_error& e) {
      rate_limited.warn("%s: no thread for a connection: %s", name_.c_str(), e.what());
      done();
    }
  }
}

Result<std::unique_ptr<StreamAcceptor>> start_tcp_relay(UniqueFd listener, Dial dial,
                                                        std::string name,
                                                        const RelayLimits& limits) {
  auto handler = [dial = std::move(dial), name](UniqueFd client) {
    auto upstream = dial();
    if (!upstream) {
      connection_log().warn("%s: %s; closing the client", name.c_str(),
                            upstream.error().message().c_str());
      return;
    }
    proxy_streams(std::move(client), std::move(*upstream));
  };
  return StreamAcceptor::start(std::move(listener), std::move(handler), std::move(name),
                               limits.max_connections);
}

// ---- UdpRelay ------------------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kDatagramBuffer = 65536;
constexpr int kBurst = 64;  // datagrams or reads handled per callback, for fairness

// Sends the queued bytes of `out` from `offset` without blocking. False on a fatal error.
bool flush_stream(int fd, std::string& out, size_t& offset) {
  while (offset < out.size()) {
    ssize_t n = ::send(fd, out.data() + offset, out.size() - offset, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    offset += static_cast<size_t>(n);
  }
  out.clear();
  offset = 0;
  return true;
}

}  // namespace

struct UdpRelay::Impl {
  struct Flow {
    UniqueFd fd;
    FlowFraming framing;
    SocketAddress client;
    std::string out;  // frames not yet written to the stream (kStream), <= flow_buffer
    size_t out_offset = 0;
    bool want_out = false;
    FrameDecoder decoder;
    Clock::time_point last;
  };

  UniqueFd socket;
  OpenFlow open;
  std::string name;
  RelayLimits limits;
  std::atomic<size_t>* flow_count = nullptr;
  std::unique_ptr<EventLoop> loop;
  UniqueFd timer;
  std::map<std::string, std::unique_ptr<Flow>> flows;  // by SocketAddress::key()
  log::RateLimitedLog rate_limited;
  std::vector<char> buf = std::vector<char>(kDatagramBuffer);

  void close_flow(const std::string& key) {
    auto it = flows.find(key);
    if (it == flows.end()) return;
    (void)loop->remove(it->second->fd.get());
    flows.erase(it);
    flow_count->store(flows.size());
  }

  void update_interest(Flow& f, const std::string& key) {
    bool want = f.out_offset < f.out.size();
    if (want == f.want_out) return;
    f.want_out = want;
    if (!loop->modify(f.fd.get(), static_cast<uint32_t>(EPOLLIN) | (want ? static_cast<uint32_t>(EPOLLOUT) : 0u))) close_flow(key);
  }

  Flow* flow_for(const SocketAddress& client) {
    std::string key = client.key();
    if (auto it = flows.find(key); it != flows.end()) return it->second.get();
    if (flows.size() >= limits.max_flows) {
      rate_limited.warn("%s: %zu UDP flows already: dropping a datagram from %s", name.c_str(),
                        flows.size(), client.to_string().c_str());
      return nullptr;
    }
    auto opened = open(client);
    if (!opened) {
      rate_limited.warn("%s: datagram from %s dropped: %s", name.c_str(),
                        client.to_string().c_str(), opened.error().message().c_str());
      return nullptr;
    }
    auto f = std::make_unique<Flow>();
    f->fd = std::move(opened->fd);
    f->framing = opened->framing;
    f->client = client;
    f->last = Clock::now();
    if (!set_nonblocking(f->fd.get())) return nullptr;
    int fd = f->fd.get();
    if (!loop->add(fd, EPOLLIN, [this, key](uint32_t events) { on_flow(key, events); })) {
      return nullptr;
    }
    Flow* raw = f.get();
    flows.emplace(key, std::move(f));
    flow_count->store(flows.size());
    return raw;
  }

  void on_socket() {
    for (int i = 0; i < kBurst; i++) {
      SocketAddress client;
      client.length = sizeof client.storage;
      ssize_t n = ::recvfrom(socket.get(), buf.data(), buf.size(), MSG_DONTWAIT,
                             reinterpret_cast<sockaddr*>(&client.storage), &client.length);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          rate_limited.warn("%s: recvfrom: %s", name.c_str(), std::strerror(errno));
        }
        return;
      }
      Flow* f = flow_for(client);
      if (!f) continue;
      f->last = Clock::now();
      std::string_view payload(buf.data(), static_cast<size_t>(n));
      if (f->framing == FlowFraming::kDatagram) {
        (void)::send(f->fd.get(), payload.data(), payload.size(), MSG_DONTWAIT);  // may drop
        continue;
      }
      if (f->out.size() + kFrameHeaderBytes + payload.size() > limits.flow_buffer) continue;
      (void)append_frame(f->out, payload);
      std::string key = client.key();
      if (!flush_stream(f->fd.get(), f->out, f->out_offset)) {
        close_flow(key);
        continue;
      }
      update_interest(*f, key);
    }
  }

  void send_to_client(const Flow& f, std::string_view payload) {
    // The client socket may be full: dropping is what UDP does.
    (void)::sendto(socket.get(), payload.data(), payload.size(), MSG_DONTWAIT, f.client.get(),
                   f.client.length);
  }

  void on_flow(const std::string& key, uint32_t events) {
    auto it = flows.find(key);
    if (it == flows.end()) return;
    Flow& f = *it->second;
    if (events & EPOLLOUT) {
      if (!flush_stream(f.fd.get(), f.out, f.out_offset)) return close_flow(key);
      update_interest(f, key);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    for (int i = 0; i < kBurst; i++) {
      ssize_t n = ::recv(f.fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        // A connected UDP socket reports an ICMP "port unreachable" as ECONNREFUSED on the
        // next call: the container is not listening (yet); keep the flow.
        if (f.framing == FlowFraming::kDatagram && errno == ECONNREFUSED) continue;
        return close_flow(key);
      }
      f.last = Clock::now();
      if (f.framing == FlowFraming::kDatagram) {
        send_to_client(f, std::string_view(buf.data(), static_cast<size_t>(n)));
        continue;
      }
      if (n == 0) return close_flow(key);  // the guest closed the flow
      f.decoder.feed(std::string_view(buf.data(), static_cast<size_t>(n)));
      while (auto payload = f.decoder.next()) send_to_client(f, *payload);
    }
  }

  void on_timer() {
    uint64_t ticks;
    (void)!::read(timer.get(), &ticks, sizeof ticks);
    auto now = Clock::now();
    std::vector<std::string> idle;
    for (auto& [key, f] : flows) {
      if (now - f->last >= limits.udp_idle) idle.push_back(key);
    }
    for (const auto& key : idle) close_flow(key);
  }
};

Result<std::unique_ptr<UdpRelay>> UdpRelay::start(UniqueFd socket, OpenFlow open, std::string name,
                                                  const RelayLimits& limits) {
  std::unique_ptr<UdpRelay> r(new UdpRelay());
  r->impl_ = std::make_unique<Impl>();
  Impl& impl = *r->impl_;
  TRY(set_nonblocking(socket.get()));
  impl.socket = std::move(socket);
  impl.open = std::move(open);
  impl.name = std::move(name);
  impl.limits = limits;
  impl.flow_count = &r->flow_count_;
  TRY_ASSIGN(impl.loop, EventLoop::create());
  impl.timer = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!impl.timer) return fail_errno("timerfd_create");
  // Idle flows are noticed within a quarter of the idle time (10 ms - 1 s).
  auto period = std::clamp<std::chrono::milliseconds>(limits.udp_idle / 4,
                                                       std::chrono::milliseconds(10),
                                                       std::chrono::milliseconds(1000));
  struct itimerspec spec = {};
  spec.it_interval.tv_sec = period.count() / 1000;
  spec.it_interval.tv_nsec = (period.count() % 1000) * 1000000;
  spec.it_value = spec.it_interval;
  if (::timerfd_settime(impl.timer.get(), 0, &spec, nullptr) != 0) {
    return fail_errno("timerfd_settime");
  }
  Impl* p = &impl;
  TRY(impl.loop->add(impl.socket.get(), EPOLLIN, [p](uint32_t) { p->on_socket(); }));
  TRY(impl.loop->add(impl.timer.get(), EPOLLIN, [p](uint32_t) { p->on_timer(); }));
  r->thread_ = std::thread([p] {
    if (auto st = p->loop->run(); !st) {
      log::error("%s: event loop: %s", p->name.c_str(), st.error().message().c_str());
    }
  });
  return r;
}

UdpRelay::~UdpRelay() {
  if (thread_.joinable()) {
    impl_->loop->stop();
    thread_.join();
  }
}

// ---- relay_frames_to_udp -------------------------------------------------------------------

void relay_frames_to_udp(UniqueFd stream, UniqueFd udp, std::chrono::milliseconds idle,
                         size_t max_pending) {
  if (!set_nonblocking(stream.get()) || !set_nonblocking(udp.get())) return;
  std::vector<char> buf(kDatagramBuffer);
  FrameDecoder decoder;
  std::string out;
  size_t out_offset = 0;
  auto last = Clock::now();
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(last + idle - Clock::now());
    if (left.count() <= 0) return;
    bool pending = out_offset < out.size();
    struct pollfd p[2] = {
        {stream.get(), static_cast<short>(POLLIN | (pending ? POLLOUT : 0)), 0},
        // Full: leave datagrams in the socket's buffer (the kernel drops beyond it).
        {udp.get(), static_cast<short>(out.size() < max_pending ? POLLIN : 0), 0},
    };
    int rc = ::poll(p, 2, static_cast<int>(left.count()));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(stream.get(), buf.data(), buf.size(), MSG_DONTWAIT);
      if (n == 0) return;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
      if (n > 0) {
        decoder.feed(std::string_view(buf.data(), static_cast<size_t>(n)));
        while (auto payload = decoder.next()) {
          (void)::send(udp.get(), payload->data(), payload->size(), MSG_DONTWAIT);
          last = Clock::now();
        }
      }
    }
    if (p[1].revents & (POLLIN | POLLERR)) {
      for (int i = 0; i < kBurst; i++) {
        ssize_t n = ::recv(udp.get(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) {
          if (errno == EINTR || errno == ECONNREFUSED) continue;  // ICMP unreachable: keep going
          break;
        }
        last = Clock::now();
        if (out.size() + kFrameHeaderBytes + static_cast<size_t>(n) > max_pending) continue;
        (void)append_frame(out, std::string_view(buf.data(), static_cast<size_t>(n)));
      }
    }
    if (!flush_stream(stream.get(), out, out_offset)) return;
  }
}

}  // namespace pinata::ports
