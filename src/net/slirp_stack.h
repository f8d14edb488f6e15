// SlirpStack: libslirp (the user-mode TCP/IP stack QEMU's -netdev user uses) driven by an
// EventLoop, as the Network behind the virtio-net Device.
//
// libslirp is not thread-safe, so every call into it happens on the loop thread. It is driven
// with slirp_pollfds_fill/slirp_pollfds_poll rather than a poll() loop of its own:
//   - after every call into libslirp (a guest frame batch, a socket event, a timer), "settle"
//     asks it for the fds it wants watched (slirp_pollfds_fill) and brings the EventLoop's
//     epoll set in line: new fds added, changed interest modified, dropped fds removed. libslirp's
//     register_poll_fd/unregister_poll_fd callbacks tell us when an fd number starts or stops
//     naming one of its sockets, so a closed-and-reused number is never mistaken for the old
//     registration;
//   - an epoll event on one of those fds runs slirp_pollfds_poll with that fd's revents;
//   - slirp_pollfds_fill's timeout says when libslirp's TCP timers want to run: 2 ms (delayed
//     ACK), 499 ms (retransmit/keepalive/TIME_WAIT, IP reassembly, UDP socket expiry) or 1000
//     ms, which it returns when none of those is pending. We arm one timerfd for the first two
//     and nothing for the third: when nothing is going on, the process sleeps in epoll_wait
//     until the guest or a host socket has something (no 1 Hz tick).
//   - application timers (timer_new_opaque; only IPv6 router advertisements use them) get a
//     timerfd each.
// Frames libslirp sends to the guest go to the `to_guest` callback, on the loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/event_loop.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/result.h"
#include "net/device.h"

struct Slirp;

namespace pinata::net {

struct SlirpOptions {
  // All addresses in host byte order.
  uint32_t network = 0xc0a84100;     // 192.168.65.0
  uint32_t netmask = 0xffffff00;     // /24
  uint32_t host_ip = 0xc0a84101;     // 192.168.65.1: the host (its 127.0.0.1 for the guest)
  uint32_t dhcp_start = 0xc0a84102;  // 192.168.65.2: the guest's DHCP lease
  // 192.168.65.7: libslirp sends everything addressed here to the host's DNS server, so it
  // must not be host_ip (that would break guest → host loopback connections).
  uint32_t dns_ip = 0xc0a84107;
  uint32_t mtu = kDefaultMtu;  // if_mtu and if_mru
  bool ipv6 = false;
};

// Parses "a.b.c.d" (host byte order result) and "a.b.c.d/len".
[[nodiscard]] Result<uint32_t> parse_ipv4(std::string_view s);
[[nodiscard]] Status parse_ipv4_prefix(std::string_view s, uint32_t& network, uint32_t& netmask);
std::string format_ipv4(uint32_t host_order);
// The addresses must be distinct, host_ip/dhcp_start/dns_ip inside the network and not its
// network or broadcast address, mtu in [kMinMtu, kMaxMtu].
[[nodiscard]] Status validate(const SlirpOptions& options);

class SlirpStack final : public Network {
 public:
  using FrameSink = std::function<void(std::span<const uint8_t> frame)>;

  static Result<std::unique_ptr<SlirpStack>> create(EventLoop& loop, SlirpOptions options,
                                                    FrameSink to_guest);
  ~SlirpStack() override;
  SlirpStack(const SlirpStack&) = delete;
  SlirpStack& operator=(const SlirpStack&) = delete;

  // ---- Network
  void begin_input() override;
  void input(std::span<const uint8_t> frame) override;
  void end_input() override;
  // Drops every connection and starts a fresh libslirp instance (the frontend went away).
  void reset() override;

  const SlirpOptions& options() const { return options_; }
  // Fds currently in the loop's epoll set for libslirp, and whether its timer is armed.
  size_t watched_fds() const { return watched_.size(); }
  bool timer_armed() const { return tick_deadline_ns_ != 0; }

  struct Stats {
    uint64_t to_guest_frames = 0, from_guest_frames = 0, polls = 0, timer_runs = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Watched {
    uint32_t events = 0;  // epoll interest
    int index = -1;       // its slot in polls_ (the last fill), -1 if not in it
    uint64_t generation = 0;
  };
  struct PollEntry {
    int fd;
    int events;   // SLIRP_POLL_*
    int revents;  // SLIRP_POLL_*
  };
  struct AppTimer;

  SlirpStack(EventLoop& loop, SlirpOptions options, FrameSink to_guest, UniqueFd tick);
  Status start();
  void stop();
  // Asks libslirp what to watch and when to wake, and applies it to the loop.
  void settle();
  // Runs slirp_pollfds_poll (revents as recorded in polls_), then settle().
  void poll();
  void on_fd(int fd, uint32_t events);
  void on_tick();
  void unwatch(int fd);
  void arm_tick(uint32_t timeout_ms);

  friend struct SlirpCallbacks;  // the libslirp callbacks (slirp_stack.cc)

  EventLoop& loop_;
  SlirpOptions options_;
  FrameSink to_guest_;
  Slirp* slirp_ = nullptr;
  UniqueFd tick_;
  uint64_t tick_deadline_ns_ = 0;  // CLOCK_MONOTONIC; 0 = disarmed
  std::vector<PollEntry> polls_;
  std::unordered_map<int, Watched> watched_;
  uint64_t generation_ = 0;
  std::vector<std::unique_ptr<AppTimer>> timers_;
  int depth_ = 0;  // nesting of begin_input/end_input
  log::RateLimitedLog log_;
  Stats stats_;
};

}  // namespace pinata::net
