// The vsock muxer: the connection table, the host-side unix listeners of the socket
// directory (hyperkit's layout), the DIR/connect handshake, and the order in which
// connections get RX buffers. No virtqueue knowledge: the device hands it guest packets and
// asks it for the next packet to put on the RX queue.
//
// Socket directory DIR:
//   DIR/connect            host -> guest: write "%08x.%08x\n" (CID.port), then a raw stream
//   DIR/00000003.%08x      host -> guest forward of that guest port (no handshake)
//   DIR/00000002.%08x      guest -> host: the guest's connect to (2, port) connects here
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "base/fd.h"
#include "base/result.h"
#include "vsock/connection.h"
#include "vsock/packet.h"

namespace pinata::vsock {

constexpr size_t kHandshakeSize = 18;  // "%08x.%08x\n"

// Parses a DIR/connect request: exactly 18 bytes "CCCCCCCC.PPPPPPPP\n", 8 hex digits each
// (either case), CID equal to `guest_cid`. Returns the guest port. Pure (fuzzed).
Result<uint32_t> parse_connect_request(std::string_view bytes, uint64_t guest_cid);
// "%08x.%08x\n"
std::string format_connect_request(uint64_t cid, uint32_t port);
// "00000002.%08x" / "00000003.%08x": the socket names for a port of `cid`.
std::string port_socket_name(uint64_t cid, uint32_t port);

struct MuxerConfig {
  std::string dir;  // the socket directory (must exist)
  uint64_t guest_cid = 3;
  std::vector<uint32_t> forwards;   // guest ports forwarded from DIR/00000003.%08x
  uint32_t buf_alloc = 256 * 1024;  // receive buffer advertised per connection
  size_t max_connections = 4096;
  std::chrono::milliseconds handshake_timeout{5000};
  // A host-initiated connection the guest neither accepts nor refuses in this time is closed
  // (and reset in the guest).
  std::chrono::milliseconds connect_timeout{10000};
  // A guest connect that finds the host listener's backlog full is retried for this long
  // (every timer tick) before the guest gets a reset. Linux guests wait 2 s by default.
  std::chrono::milliseconds backlog_retry{1500};
  size_t max_retrying_connects = 1024;
  size_t max_queued_resets = 4096;  // RSTs for unknown connections waiting for RX buffers
};

class Muxer {
 public:
  Muxer(EventLoop& loop, MuxerConfig config);
  ~Muxer();
  Muxer(const Muxer&) = delete;
  Muxer& operator=(const Muxer&) = delete;

  // Creates the listeners (DIR/connect and the forwards).
  Status start();
  const MuxerConfig& config() const { return config_; }

  // Whether a guest driver is attached (both queues running). Host connections arriving
  // while inactive are closed at once; going inactive closes every connection.
  void set_active(bool active);
  bool active() const { return active_; }
  // Called from the event loop when there is new work for the RX queue.
  void set_rx_notify(std::function<void()> notify) { rx_notify_ = std::move(notify); }

  // A guest packet that passed check_guest_packet(). RW payload in `payload`.
  void on_guest_packet(const Header& h, std::span<const uint8_t> payload);
  // Queues an RST in reply to `h` (bounded; beyond the bound it is dropped and logged).
  void reply_reset(const Header& h);

  bool has_rx_work() const { return !resets_.empty() || !rx_order_.empty(); }
  // The next packet for the guest; RW payload goes into `payload` (h.len bytes). False if
  // nothing is ready after all.
  bool next_rx_packet(Header& h, std::span<uint8_t> payload);

  // Closes every connection and pending handshake (no RSTs: the guest is gone).
  void reset_all();

  size_t connection_count() const { return conns_.size(); }
  size_t draining_count() const { return draining_.size(); }
  const Connection* find(uint32_t host_port, uint32_t guest_port) const;

 private:
  struct Entry {
    std::unique_ptr<Connection> conn;
    uint32_t events = 0;
    bool registered = false;
    bool queued = false;
  };
  struct Pending {
    UniqueFd fd;
    std::string buf;
    std::chrono::steady_clock::time_point deadline;
  };
  // A guest connect waiting for room in a host listener's backlog.
  struct Retry {
    Header request;
    std::chrono::steady_clock::time_point deadline;
  };
  using Key = uint64_t;
  static Key key_of(uint32_t host_port, uint32_t guest_port) {
    return (uint64_t{host_port} << 32) | guest_port;
  }

  Status listen_on(const std::string& name, std::function<void(UniqueFd)> on_conn);
  void accept_all(int listen_fd, const std::function<void(UniqueFd)>& on_conn);
  void on_connect_client(UniqueFd fd);
  void on_handshake_readable(int fd);
  void on_timer();
  void arm_timer();
  void open_to_guest(UniqueFd fd, uint32_t guest_port);
  uint32_t allocate_host_port(uint32_t guest_port);
  // Connects a guest REQUEST to its host listener. Returns false (and leaves the guest
  // unanswered) if the listener's backlog is full and `retry_allowed`.
  bool connect_to_host(const Header& request, bool retry_allowed);
  void retry_connects();
  void expire_connects(std::chrono::steady_clock::time_point now);
  bool timer_needed() const;
  void add_connection(std::unique_ptr<Connection> conn);
  void on_socket(Key key, uint32_t events);
  void on_draining_socket(int fd, uint32_t events);
  // Brings the entry's epoll interest and RX queueing in line with its state; finishes it
  // if closed. Returns false if the entry is gone.
  void update(Key key);
  void notify_rx();

  EventLoop& loop_;
  MuxerConfig config_;
  bool active_ = false;
  std::function<void()> rx_notify_;
  std::vector<std::pair<UniqueFd, std::string>> listeners_;  // fd, path
  std::unordered_map<int, Pending> pending_;
  std::deque<Retry> retries_;
  // Host-initiated connections not yet answered by the guest, with their deadlines.
  std::unordered_map<Key, std::chrono::steady_clock::time_point> connecting_;
  UniqueFd timer_;
  bool timer_armed_ = false;
  std::unordered_map<Key, Entry> conns_;
  std::unordered_map<int, std::unique_ptr<Connection>> draining_;  // by fd
  std::deque<Key> rx_order_;
  std::deque<Header> resets_;
  uint32_t next_port_ = kFirstEphemeralPort;
  log::RateLimitedLog log_;

 public:
  static constexpr uint32_t kFirstEphemeralPort = 49152;
};

}  // namespace pinata::vsock
