#include "net/slirp_stack.h"

#include <arpa/inet.h>
#include <libslirp.h>
#include <sys/timerfd.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace pinata::net {

namespace {

uint64_t monotonic_ns() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

struct in_addr to_in_addr(uint32_t host_order) {
  struct in_addr a;
  a.s_addr = htonl(host_order);
  return a;
}

uint32_t slirp_to_epoll(int events) {
  uint32_t e = 0;
  if (events & SLIRP_POLL_IN) e |= EPOLLIN;
  if (events & SLIRP_POLL_OUT) e |= EPOLLOUT;
  if (events & SLIRP_POLL_PRI) e |= EPOLLPRI;
  return e;  // EPOLLERR and EPOLLHUP are always reported
}

int epoll_to_slirp(uint32_t events) {
  int r = 0;
  if (events & EPOLLIN) r |= SLIRP_POLL_IN;
  if (events & EPOLLOUT) r |= SLIRP_POLL_OUT;
  if (events & EPOLLPRI) r |= SLIRP_POLL_PRI;
  if (events & EPOLLERR) r |= SLIRP_POLL_ERR;
  if (events & EPOLLHUP) r |= SLIRP_POLL_HUP;
  return r;
}

Status set_timerfd(int fd, uint64_t deadline_ns) {
  struct itimerspec its {};
  its.it_value.tv_sec = static_cast<time_t>(deadline_ns / 1'000'000'000ull);
  its.it_value.tv_nsec = static_cast<long>(deadline_ns % 1'000'000'000ull);
  // deadline 0 disarms; an absolute time in the past fires at once.
  if (deadline_ns != 0 && its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) {
    its.it_value.tv_nsec = 1;
  }
  if (::timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, nullptr) != 0) {
    return fail_errno("timerfd_settime");
  }
  return {};
}

// What slirp_pollfds_fill returns when no TCP/IP timer is pending (TIMEOUT_DEFAULT in
// libslirp's slirp.c): nothing will happen on a timeout, so we don't wake for it.
constexpr uint32_t kSlirpIdleTimeoutMs = 1000;

}  // namespace

Result<uint32_t> parse_ipv4(std::string_view s) {
  std::string str(s);
  struct in_addr a;
  if (::inet_pton(AF_INET, str.c_str(), &a) != 1) {
    return fail(ErrorKind::kInvalidInput, "'" + str + "' is not an IPv4 address (a.b.c.d)");
  }
  return ntohl(a.s_addr);
}

Status parse_ipv4_prefix(std::string_view s, uint32_t& network, uint32_t& netmask) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) {
    return fail(ErrorKind::kInvalidInput,
                "'" + std::string(s) + "' is not a network (a.b.c.d/len)");
  }
  TRY_ASSIGN(uint32_t addr, parse_ipv4(s.substr(0, slash)));
  std::string_view len_s = s.substr(slash + 1);
  unsigned len = 0;
  if (len_s.empty() || len_s.size() > 2) {
    return fail(ErrorKind::kInvalidInput, "bad prefix length in '" + std::string(s) + "'");
  }
  for (char c : len_s) {
    if (c < '0' || c > '9') {
      return fail(ErrorKind::kInvalidInput, "bad prefix length in '" + std::string(s) + "'");
    }
    len = len * 10 + static_cast<unsigned>(c - '0');
  }
  if (len < 8 || len > 30) {
    return fail(ErrorKind::kInvalidInput,
                "prefix length in '" + std::string(s) + "' must be 8 to 30");
  }
  netmask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
  if (addr & ~netmask) {
    return fail(ErrorKind::kInvalidInput,
                "'" + std::string(s) + "' has host bits set (expected e.g. " +
                    format_ipv4(addr & netmask) + "/" + std::string(len_s) + ")");
  }
  network = addr;
  return {};
}

std::string format_ipv4(uint32_t a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff,
                a & 0xff);
  return buf;
}

Status validate(const SlirpOptions& o) {
  auto inside = [&](uint32_t ip, const char* what) -> Status {
    if ((ip & o.netmask) != o.network || ip == o.network || ip == (o.network | ~o.netmask)) {
      return fail(ErrorKind::kInvalidInput, std::string(what) + " " + format_ipv4(ip) +
                                                " is not a host address in the network " +
                                                format_ipv4(o.network));
    }
    return {};
  };
  TRY(inside(o.host_ip, "host IP"));
  TRY(inside(o.dhcp_start, "guest IP"));
  TRY(inside(o.dns_ip, "DNS IP"));
  if (o.host_ip == o.dhcp_start || o.host_ip == o.dns_ip || o.dhcp_start == o.dns_ip) {
    return fail(ErrorKind::kInvalidInput,
                "host, guest and DNS IPs must be three different addresses");
  }
  if (o.mtu < kMinMtu || o.mtu > kMaxMtu) {
    return fail(ErrorKind::kInvalidInput, "MTU " + std::to_string(o.mtu) + " is not in " +
                                              std::to_string(kMinMtu) + ".." +
                                              std::to_string(kMaxMtu));
  }
  return {};
}

struct SlirpStack::AppTimer {
  SlirpStack* stack;
  UniqueFd fd;
  bool opaque_api;           // timer_new_opaque (id + slirp_handle_timer) or timer_new (cb)
  SlirpTimerId id;
  SlirpTimerCb cb;
  void* cb_opaque;
};

struct SlirpCallbacks {
  static SlirpStack* self(void* opaque) { return static_cast<SlirpStack*>(opaque); }

  static ssize_t send_packet(const void* buf, size_t len, void* opaque) {
    SlirpStack* s = self(opaque);
    s->stats_.to_guest_frames++;
    s->to_guest_({static_cast<const uint8_t*>(buf), len});
    // Frames the guest has no room for are queued or dropped by the device; either way
    // libslirp must not retry (TCP does).
    return static_cast<ssize_t>(len);
  }
  static void guest_error(const char* msg, void* opaque) {
    self(opaque)->log_.warn("net: slirp: guest error: %s", msg);
  }
  static int64_t clock_get_ns(void*) { return static_cast<int64_t>(monotonic_ns()); }

  static void* new_timer(SlirpStack* s, bool opaque_api, SlirpTimerId id, SlirpTimerCb cb,
                         void* cb_opaque) {
    UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!fd) {
      log::error("net: timerfd_create: %s", std::strerror(errno));
      return nullptr;
    }
    auto t = std::make_unique<SlirpStack::AppTimer>(
        SlirpStack::AppTimer{s, std::move(fd), opaque_api, id, cb, cb_opaque});
    SlirpStack::AppTimer* raw = t.get();
    auto added = s->loop_.add(raw->fd.get(), EPOLLIN, [raw, s](uint32_t) {
      uint64_t n;
      [[maybe_unused]] ssize_t r = ::read(raw->fd.get(), &n, sizeof n);
      if (!s->slirp_) return;
      s->stats_.timer_runs++;
      // Copied first: the handler may free this timer (timer_free).
      const bool opaque_api = raw->opaque_api;
      const SlirpTimerId id = raw->id;
      const SlirpTimerCb cb = raw->cb;
      void* const cb_opaque = raw->cb_opaque;
      if (opaque_api) {
        slirp_handle_timer(s->slirp_, id, cb_opaque);
      } else {
        cb(cb_opaque);
      }
      s->settle();
    });
    if (!added) {
      log::error("net: %s", added.error().message().c_str());
      return nullptr;
    }
    s->timers_.push_back(std::move(t));
    return raw;
  }
  static void* timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque) {
    return new_timer(self(opaque), false, SLIRP_TIMER_RA, cb, cb_opaque);
  }
  static void* timer_new_opaque(SlirpTimerId id, void* cb_opaque, void* opaque) {
    return new_timer(self(opaque), true, id, nullptr, cb_opaque);
  }
  static void timer_free(void* timer, void* opaque) {
    SlirpStack* s = self(opaque);
    auto it = std::find_if(s->timers_.begin(), s->timers_.end(),
                           [timer](const auto& t) { return t.get() == timer; });
    if (it == s->timers_.end()) return;
    (void)s->loop_.remove((*it)->fd.get());
    s->timers_.erase(it);
  }
  static void timer_mod(void* timer, int64_t expire_ms, void*) {
    if (!timer) return;
    auto* t = static_cast<SlirpStack::AppTimer*>(timer);
    uint64_t ns = expire_ms <= 0 ? 1 : static_cast<uint64_t>(expire_ms) * 1'000'000ull;
    if (auto st = set_timerfd(t->fd.get(), ns); !st) log::error("net: %s", st.error().message().c_str());
  }
  static void register_poll_fd(int fd, void* opaque) {
    // A new libslirp socket got this fd number. If a registration for the number survives
    // from a socket libslirp closed without telling us, it is stale: forget it so that the
    // next settle() adds the new socket.
    self(opaque)->unwatch(fd);
  }
  static void unregister_poll_fd(int fd, void* opaque) { self(opaque)->unwatch(fd); }
  static void notify(void*) {
    // libslirp says a socket buffer has room again. Nothing to do: every call into libslirp
    // is followed by settle(), which re-reads the interest set.
  }
  static int add_poll(int fd, int events, void* opaque) {
    SlirpStack* s = self(opaque);
    s->polls_.push_back({fd, events, 0});
    return static_cast<int>(s->polls_.size() - 1);
  }
  static int get_revents(int index, void* opaque) {
    SlirpStack* s = self(opaque);
    if (index < 0 || static_cast<size_t>(index) >= s->polls_.size()) return 0;
    return s->polls_[static_cast<size_t>(index)].revents;
  }
};

namespace {

const SlirpCb kCallbacks = {
    .send_packet = SlirpCallbacks::send_packet,
    .guest_error = SlirpCallbacks::guest_error,
    .clock_get_ns = SlirpCallbacks::clock_get_ns,
    .timer_new = SlirpCallbacks::timer_new,
    .timer_free = SlirpCallbacks::timer_free,
    .timer_mod = SlirpCallbacks::timer_mod,
    .register_poll_fd = SlirpCallbacks::register_poll_fd,
    .unregister_poll_fd = SlirpCallbacks::unregister_poll_fd,
    .notify = SlirpCallbacks::notify,
    .init_completed = nullptr,
    .timer_new_opaque = SlirpCallbacks::timer_new_opaque,
};

}  // namespace

SlirpStack::SlirpStack(EventLoop& loop, SlirpOptions options, FrameSink to_guest, UniqueFd tick)
    : loop_(loop), options_(options), to_guest_(std::move(to_guest)), tick_(std::move(tick)) {}

Result<std::unique_ptr<SlirpStack>> SlirpStack::create(EventLoop& loop, SlirpOptions options,
                                                       FrameSink to_guest) {
  TRY(validate(options));
  UniqueFd tick(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!tick) return fail_errno("timerfd_create");
  std::unique_ptr<SlirpStack> s(
      new SlirpStack(loop, options, std::move(to_guest), std::move(tick)));
  SlirpStack* raw = s.get();
  TRY(loop.add(s->tick_.get(), EPOLLIN, [raw](uint32_t) { raw->on_tick(); }));
  TRY(s->start());
  return s;
}

SlirpStack::~SlirpStack() {
  stop();
  (void)loop_.remove(tick_.get());
}

Status SlirpStack::start() {
  SlirpConfig cfg{};
  cfg.version = 4;
  cfg.restricted = 0;
  cfg.in_enabled = true;
  cfg.vnetwork = to_in_addr(options_.network);
  cfg.vnetmask = to_in_addr(options_.netmask);
  cfg.vhost = to_in_addr(options_.host_ip);
  cfg.in6_enabled = options_.ipv6;
  if (options_.ipv6) {
    // fd00::/64 with the host at ::2 and DNS at ::3, as QEMU's defaults.
    ::inet_pton(AF_INET6, "fd00::", &cfg.vprefix_addr6);
    cfg.vprefix_len = 64;
    ::inet_pton(AF_INET6, "fd00::2", &cfg.vhost6);
    ::inet_pton(AF_INET6, "fd00::3", &cfg.vnameserver6);
  }
  cfg.vhostname = nullptr;
  cfg.vdhcp_start = to_in_addr(options_.dhcp_start);
  cfg.vnameserver = to_in_addr(options_.dns_ip);
  cfg.if_mtu = options_.mtu;
  cfg.if_mru = options_.mtu;
  // Guest traffic to host_ip reaches the host's 127.0.0.1 (host.docker.internal).
  cfg.disable_host_loopback = false;
  cfg.enable_emu = false;
  cfg.disable_dns = false;
  cfg.disable_dhcp = false;
  slirp_ = slirp_new(&cfg, &kCallbacks, this);
  if (!slirp_) return fail(ErrorKind::kInternal, "slirp_new refused the configuration");
  settle();
  return {};
}

void SlirpStack::stop() {
  if (!slirp_) return;
  for (auto& [fd, w] : watched_) (void)loop_.remove(fd);
  watched_.clear();
  polls_.clear();
  Slirp* s = slirp_;
  slirp_ = nullptr;
  slirp_cleanup(s);
  for (auto& t : timers_) (void)loop_.remove(t->fd.get());
  timers_.clear();
  tick_deadline_ns_ = 0;
  (void)set_timerfd(tick_.get(), 0);
}

void SlirpStack::reset() {
  log::info("net: resetting the network stack (%llu frames in, %llu out so far)",
            static_cast<unsigned long long>(stats_.from_guest_frames),
            static_cast<unsigned long long>(stats_.to_guest_frames));
  stop();
  if (auto s = start(); !s) log::error("net: %s", s.error().message().c_str());
}

void SlirpStack::begin_input() {
  if (!slirp_ || depth_++ > 0) return;
  // slirp_pollfds_poll refreshes libslirp's clock (only it does): timestamps taken while it
  // handles the frames (UDP socket expiry, TCP timers) must not be from the last event hours
  // ago. With no revents recorded it touches no socket.
  for (auto& p : polls_) p.revents = 0;
  slirp_pollfds_poll(slirp_, 0, SlirpCallbacks::get_revents, this);
}

void SlirpStack::input(std::span<const uint8_t> frame) {
  if (!slirp_) return;
  stats_.from_guest_frames++;
  if (depth_ == 0) {
    begin_input();
    slirp_input(slirp_, frame.data(), static_cast<int>(frame.size()));
    end_input();
    return;
  }
  slirp_input(slirp_, frame.data(), static_cast<int>(frame.size()));
}

void SlirpStack::end_input() {
  if (!slirp_ || depth_ == 0 || --depth_ > 0) return;
  // Polling again sends what waited for an ARP reply that just came in (if_start runs only
  // from slirp_pollfds_poll and new output), then settle() re-reads the fds and timeout.
  poll();
}

void SlirpStack::poll() {
  if (!slirp_) return;
  stats_.polls++;
  slirp_pollfds_poll(slirp_, 0, SlirpCallbacks::get_revents, this);
  settle();
}

void SlirpStack::on_fd(int fd, uint32_t events) {
  if (!slirp_) return;
  auto it = watched_.find(fd);
  if (it == watched_.end() || it->second.index < 0) return;
  for (auto& p : polls_) p.revents = 0;
  polls_[static_cast<size_t>(it->second.index)].revents = epoll_to_slirp(events);
  poll();
}

void SlirpStack::on_tick() {
  uint64_t n;
  [[maybe_unused]] ssize_t r = ::read(tick_.get(), &n, sizeof n);
  tick_deadline_ns_ = 0;
  if (!slirp_) return;
  stats_.timer_runs++;
  for (auto& p : polls_) p.revents = 0;
  poll();
}

void SlirpStack::unwatch(int fd) {
  auto it = watched_.find(fd);
  if (it == watched_.end()) return;
  (void)loop_.remove(fd);  // EBADF/ENOENT (already closed) are fine
  // Its slot in polls_ must not receive revents meant for a new socket with the same number.
  if (it->second.index >= 0) polls_[static_cast<size_t>(it->second.index)].fd = -1;
  watched_.erase(it);
}

void SlirpStack::settle() {
  if (!slirp_) return;
  polls_.clear();
  uint32_t timeout = UINT32_MAX;
  slirp_pollfds_fill(slirp_, &timeout, SlirpCallbacks::add_poll, this);
  const uint64_t gen = ++generation_;
  for (size_t i = 0; i < polls_.size(); i++) {
    const int fd = polls_[i].fd;
    const uint32_t events = slirp_to_epoll(polls_[i].events);
    auto it = watched_.find(fd);
    if (it == watched_.end()) {
      auto added = loop_.add(fd, events, [this, fd](uint32_t ev) { on_fd(fd, ev); });
      if (!added) {
        log_.warn("net: cannot watch slirp fd %d: %s", fd, added.error().message().c_str());
        continue;
      }
      it = watched_.emplace(fd, Watched{events, -1, 0}).first;
    } else if (it->second.events != events) {
      if (!loop_.modify(fd, events)) {
        // The registration died with a socket closed behind our back: register again.
        (void)loop_.remove(fd);
        if (!loop_.add(fd, events, [this, fd](uint32_t ev) { on_fd(fd, ev); })) {
          watched_.erase(it);
          continue;
        }
      }
      it->second.events = events;
    }
    it->second.index = static_cast<int>(i);
    it->second.generation = gen;
  }
  for (auto it = watched_.begin(); it != watched_.end();) {
    if (it->second.generation != gen) {
      (void)loop_.remove(it->first);
      it = watched_.erase(it);
    } else {
      ++it;
    }
  }
  arm_tick(timeout);
}

void SlirpStack::arm_tick(uint32_t timeout_ms) {
  if (timeout_ms >= kSlirpIdleTimeoutMs) return;  // nothing timed; an armed tick just runs once
  const uint64_t deadline = monotonic_ns() + uint64_t{timeout_ms} * 1'000'000ull;
  // Only ever move the deadline earlier: under steady traffic every settle() asks for "499 ms
  // from now", and re-arming each time would postpone libslirp's timers forever.
  if (tick_deadline_ns_ != 0 && tick_deadline_ns_ <= deadline) return;
  if (auto s = set_timerfd(tick_.get(), deadline); !s) {
    log::error("net: %s", s.error().message().c_str());
    return;
  }
  tick_deadline_ns_ = deadline;
}

}  // namespace pinata::net
