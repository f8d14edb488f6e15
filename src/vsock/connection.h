// One vsock stream between a guest port and a host unix socket: the per-connection state
// machine and the credit accounting (virtio 1.2 §5.10.6.3), with no knowledge of virtqueues
// or of the event loop. The muxer feeds it guest packets and socket readiness, asks it for the
// next packet to put on the RX queue, and keeps its epoll interest in sync with
// epoll_events(). Unit-testable with a socketpair.
//
// Shutdown mapping (both directions):
//   guest SHUTDOWN SEND  -> shutdown(SHUT_WR) once the data already received is written
//   guest SHUTDOWN RCV   -> shutdown(SHUT_RD); nothing more is read from the socket
//   socket EOF           -> SHUTDOWN SEND to the guest (after all data before it)
//   socket write EPIPE   -> SHUTDOWN RCV to the guest; later guest data is discarded (counted)
//   guest SHUTDOWN with both flags, our buffer flushed -> RST to the guest, connection closed
//   guest RST            -> connection closed (a buffer left after a clean SHUTDOWN SEND is
//                           still flushed: state kDraining)
//   socket error on read -> RST to the guest
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/fd.h"
#include "vsock/packet.h"

namespace pinata::vsock {

// Credit accounting for both directions of one stream. Counters are free-running u32s,
// compared with wrap-around arithmetic as the spec does.
struct Credit {
  // Guest -> host (what we advertise).
  uint32_t buf_alloc = 0;          // our receive buffer size
  uint32_t rx_cnt = 0;             // payload bytes received from the guest
  uint32_t fwd_cnt = 0;            // of those, written to the socket (or discarded)
  uint32_t last_reported_fwd = 0;  // fwd_cnt in the last packet we sent
  // Host -> guest (what the guest advertises).
  uint32_t peer_buf_alloc = 0;
  uint32_t peer_fwd_cnt = 0;
  uint32_t tx_cnt = 0;  // payload bytes sent to the guest

  // Bytes received but not yet forwarded.
  uint32_t buffered() const { return rx_cnt - fwd_cnt; }
  // Whether a further `len` payload bytes from the guest fit our advertised buffer.
  bool fits(uint32_t len) const { return uint64_t{buffered()} + len <= buf_alloc; }
  // How much more we may send to the guest: peer_buf_alloc - (tx_cnt - peer_fwd_cnt), or 0
  // if the guest's numbers say it is over-committed.
  uint32_t peer_free() const {
    uint32_t in_flight = tx_cnt - peer_fwd_cnt;
    return in_flight >= peer_buf_alloc ? 0 : peer_buf_alloc - in_flight;
  }
  // Forwarded bytes the guest has not been told about.
  uint32_t unreported() const { return fwd_cnt - last_reported_fwd; }
  // Time for an unsolicited CREDIT_UPDATE: a quarter of the buffer was consumed unreported.
  bool update_due() const { return unreported() > 0 && unreported() >= buf_alloc / 4; }
  // Takes buf_alloc/fwd_cnt from any packet the guest sent.
  void on_peer_header(const Header& h) {
    peer_buf_alloc = h.buf_alloc;
    peer_fwd_cnt = h.fwd_cnt;
  }
};

class Connection {
 public:
  enum class State {
    kRequestPending,    // host-initiated: REQUEST not yet on the RX queue
    kAwaitingResponse,  // host-initiated: REQUEST sent, waiting for RESPONSE or RST
    kConnected,
    kDraining,  // guest is gone after a clean SHUTDOWN SEND; flushing our buffer
    kClosed,    // finished: destroy (after sending reset_to_guest()'s RST if wanted)
  };
  enum class Origin { kHost, kGuest };

  // kHost: the unix side connected (DIR/connect handshake or a forward); a REQUEST goes to
  // the guest. kGuest: the guest's REQUEST `request` was accepted and `fd` connected; a
  // RESPONSE goes to the guest.
  Connection(Origin origin, uint64_t guest_cid, uint32_t host_port, uint32_t guest_port,
             UniqueFd fd, uint32_t buf_alloc);
  static Connection accept_guest(const Header& request, uint64_t guest_cid, UniqueFd fd,
                                 uint32_t buf_alloc);

  // A packet from the guest addressed to this connection; payload is the RW data (ignored
  // for other ops). The caller has already run check_guest_packet().
  void on_guest_packet(const Header& h, std::span<const uint8_t> payload);
  // Readiness of the unix socket (EPOLLIN/OUT/HUP/ERR).
  void on_socket_events(uint32_t events);
  // The frontend or guest went away: close without telling the guest anything.
  void abort();
  // Gives up on a host-initiated connection the guest has not answered: closes the socket
  // and, if the REQUEST already went out, resets the guest's half.
  void give_up(std::string reason);

  // Whether next_packet() has something to send.
  bool wants_rx() const;
  // Fills `h` (and `payload`'s first h.len bytes for RW) with the next packet for the guest.
  // Returns false if there turned out to be nothing (e.g. the socket had no data after all).
  bool next_packet(Header& h, std::span<uint8_t> payload);
  // The epoll events the muxer should watch (0: none). Once hung_up(), the fd must not be
  // watched at all (EPOLLHUP can't be masked); the connection then reads until EOF on demand.
  uint32_t epoll_events() const;
  bool hung_up() const { return hup_; }

  State state() const { return state_; }
  bool closed() const { return state_ == State::kClosed; }
  // For a closed connection: whether the guest must be sent reset_header().
  bool reset_to_guest() const { return rst_to_guest_; }
  Header reset_header() const;

  Origin origin() const { return origin_; }
  uint32_t host_port() const { return host_port_; }
  uint32_t guest_port() const { return guest_port_; }
  int fd() const { return fd_.get(); }
  const Credit& credit() const { return credit_; }
  size_t buffered_bytes() const { return txbuf_.size() - txoff_; }
  uint32_t shutdown_sent() const { return shutdown_sent_; }
  uint32_t guest_shutdown() const { return guest_shutdown_; }
  // Last reason the connection was reset or closed (for logs).
  const std::string& reason() const { return reason_; }

 private:
  Header make_header(uint16_t op) const;
  void close(bool rst, std::string reason);
  void on_rw(const Header& h, std::span<const uint8_t> payload);
  void on_shutdown(uint32_t flags);
  // Writes buffered data; returns false if the socket failed.
  void flush();
  void write_failed(int err);
  void maybe_finish();
  bool can_read() const;

  Origin origin_;
  uint64_t guest_cid_;
  uint32_t host_port_;
  uint32_t guest_port_;
  UniqueFd fd_;
  State state_;
  Credit credit_;

  bool response_pending_ = false;      // guest-initiated: RESPONSE not yet sent
  bool credit_update_wanted_ = false;  // the guest asked (CREDIT_REQUEST)
  uint32_t shutdown_pending_ = 0;      // SHUTDOWN flags to send
  uint32_t shutdown_sent_ = 0;         // SHUTDOWN flags sent so far
  uint32_t guest_shutdown_ = 0;        // SHUTDOWN flags received
  bool read_done_ = false;             // no more reading from the socket (EOF, SHUT_RD, error)
  bool write_done_ = false;            // no more writing to the socket (SHUT_WR, EPIPE)
  bool readable_ = false;              // epoll said readable and we have not seen EAGAIN since
  bool hup_ = false;                   // EPOLLHUP/ERR seen: fd no longer watched
  bool rst_to_guest_ = false;
  std::string txbuf_;  // guest data not yet written; size <= buf_alloc
  size_t txoff_ = 0;
  std::string reason_;
};

}  // namespace pinata::vsock
