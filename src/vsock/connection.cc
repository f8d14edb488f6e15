#include "vsock/connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace pinata::vsock {

Connection::Connection(Origin origin, uint64_t guest_cid, uint32_t host_port, uint32_t guest_port,
                       UniqueFd fd, uint32_t buf_alloc)
    : origin_(origin),
      guest_cid_(guest_cid),
      host_port_(host_port),
      guest_port_(guest_port),
      fd_(std::move(fd)),
      state_(origin == Origin::kHost ? State::kRequestPending : State::kConnected) {
  credit_.buf_alloc = buf_alloc;
  response_pending_ = origin == Origin::kGuest;
}

Connection Connection::accept_guest(const Header& request, uint64_t guest_cid, UniqueFd fd,
                                    uint32_t buf_alloc) {
  Connection c(Origin::kGuest, guest_cid, request.dst_port, request.src_port, std::move(fd),
               buf_alloc);
  c.credit_.on_peer_header(request);
  return c;
}

Header Connection::make_header(uint16_t op) const {
  Header h;
  h.src_cid = kHostCid;
  h.dst_cid = guest_cid_;
  h.src_port = host_port_;
  h.dst_port = guest_port_;
  h.type = VIRTIO_VSOCK_TYPE_STREAM;
  h.op = op;
  h.buf_alloc = credit_.buf_alloc;
  h.fwd_cnt = credit_.fwd_cnt;
  return h;
}

Header Connection::reset_header() const { return make_header(VIRTIO_VSOCK_OP_RST); }

void Connection::close(bool rst, std::string reason) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  rst_to_guest_ = rst;
  reason_ = std::move(reason);
  // The fd stays open until the Connection is destroyed, so the muxer can still take it out
  // of the event loop.
  txbuf_.clear();
  txoff_ = 0;
}

void Connection::abort() { close(false, "aborted"); }

void Connection::give_up(std::string reason) {
  close(state_ != State::kRequestPending, std::move(reason));
}

void Connection::on_guest_packet(const Header& h, std::span<const uint8_t> payload) {
  if (state_ == State::kClosed || state_ == State::kDraining) return;
  credit_.on_peer_header(h);
  switch (h.op) {
    case VIRTIO_VSOCK_OP_RESPONSE:
      if (state_ != State::kAwaitingResponse) {
        close(true, "unexpected RESPONSE");
        return;
      }
      state_ = State::kConnected;
      return;
    case VIRTIO_VSOCK_OP_REQUEST:
      close(true, "REQUEST on an existing connection");
      return;
    case VIRTIO_VSOCK_OP_RST:
      if (state_ == State::kConnected && (guest_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_SEND) &&
          buffered_bytes() > 0 && !write_done_) {
        state_ = State::kDraining;  // the guest finished cleanly; deliver what it sent
        return;
      }
      close(false,
            state_ == State::kAwaitingResponse ? "refused by the guest" : "reset by the guest");
      return;
    case VIRTIO_VSOCK_OP_RW:
      on_rw(h, payload.first(std::min<size_t>(payload.size(), h.len)));
      return;
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
      return;  // credit taken above
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
      credit_update_wanted_ = true;
      return;
    case VIRTIO_VSOCK_OP_SHUTDOWN:
      if (state_ != State::kConnected) {
        close(true, "SHUTDOWN before the connection was established");
        return;
      }
      on_shutdown(h.flags & kShutdownBoth);
      return;
    default:
      close(true, "unknown op");
      return;
  }
}

void Connection::on_rw(const Header& h, std::span<const uint8_t> data) {
  if (state_ != State::kConnected) {
    close(true, "RW before the connection was established");
    return;
  }
  if (guest_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_SEND) {
    close(true, "RW after SHUTDOWN SEND");
    return;
  }
  const uint32_t len = h.len;
  if (!credit_.fits(len)) {
    close(true, "guest exceeded our credit (" + std::to_string(len) + " bytes, " +
                    std::to_string(credit_.buf_alloc - credit_.buffered()) + " free)");
    return;
  }
  credit_.rx_cnt += len;
  if (write_done_) {
    credit_.fwd_cnt += len;  // the socket is gone: discard, but keep the credit flowing
    return;
  }
  size_t written = 0;
  if (buffered_bytes() == 0) {
    while (written < data.size()) {
      ssize_t n = ::send(fd_.get(), data.data() + written, data.size() - written,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        written += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      write_failed(n < 0 ? errno : EPIPE);  // counts everything received as consumed
      return;
    }
    credit_.fwd_cnt += static_cast<uint32_t>(written);
  }
  if (written < data.size()) {
    if (txoff_ > 0 && txoff_ == txbuf_.size()) {
      txbuf_.clear();
      txoff_ = 0;
    }
    txbuf_.append(reinterpret_cast<const char*>(data.data()) + written, data.size() - written);
  }
}

void Connection::on_shutdown(uint32_t flags) {
  uint32_t fresh = flags & ~guest_shutdown_;
  guest_shutdown_ |= flags;
  if ((fresh & VIRTIO_VSOCK_SHUTDOWN_RCV) && !read_done_) {
    ::shutdown(fd_.get(), SHUT_RD);
    read_done_ = true;
    readable_ = false;
  }
  if ((fresh & VIRTIO_VSOCK_SHUTDOWN_SEND) && buffered_bytes() == 0 && !write_done_) {
    ::shutdown(fd_.get(), SHUT_WR);
    write_done_ = true;
  }
  maybe_finish();
}

void Connection::write_failed(int err) {
  write_done_ = true;
  txbuf_.clear();
  txoff_ = 0;
  // Everything received so far counts as consumed: the guest may keep sending (discarded).
  credit_.fwd_cnt = credit_.rx_cnt;
  if (state_ == State::kDraining) {
    close(false, std::string("socket write failed while draining: ") + std::strerror(err));
    return;
  }
  if (!(shutdown_sent_ & VIRTIO_VSOCK_SHUTDOWN_RCV)) shutdown_pending_ |= VIRTIO_VSOCK_SHUTDOWN_RCV;
}

void Connection::flush() {
  while (buffered_bytes() > 0 && !write_done_) {
    ssize_t n =
        ::send(fd_.get(), txbuf_.data() + txoff_, buffered_bytes(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      txoff_ += static_cast<size_t>(n);
      credit_.fwd_cnt += static_cast<uint32_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    write_failed(n < 0 ? errno : EPIPE);
    break;
  }
  if (buffered_bytes() == 0) {
    txbuf_.clear();
    txoff_ = 0;
    if (state_ == State::kDraining) {
      if (!write_done_) ::shutdown(fd_.get(), SHUT_WR);
      close(false, "drained after the guest closed");
      return;
    }
    if ((guest_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_SEND) && !write_done_) {
      ::shutdown(fd_.get(), SHUT_WR);
      write_done_ = true;
    }
  }
  maybe_finish();
}

void Connection::maybe_finish() {
  if (state_ != State::kConnected) return;
  // The guest will neither send nor receive and everything it sent is delivered: the spec
  // (and Linux) expect the other side to reset the connection now.
  if (guest_shutdown_ == kShutdownBoth && (buffered_bytes() == 0 || write_done_)) {
    close(true, "guest shut down both directions");
  }
}

void Connection::on_socket_events(uint32_t events) {
  if (state_ == State::kClosed) return;
  if (events & (EPOLLHUP | EPOLLERR)) hup_ = true;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) flush();
}

bool Connection::can_read() const {
  return state_ == State::kConnected && !read_done_ && readable_ && credit_.peer_free() > 0;
}

bool Connection::wants_rx() const {
  switch (state_) {
    case State::kRequestPending:
      return true;
    case State::kConnected:
      return response_pending_ || can_read() || shutdown_pending_ != 0 || credit_update_wanted_ ||
             credit_.update_due();
    default:
      return false;
  }
}

uint32_t Connection::epoll_events() const {
  if (hup_ || state_ == State::kClosed || !fd_) return 0;
  uint32_t ev = 0;
  if (state_ == State::kConnected && !read_done_ && !readable_ && credit_.peer_free() > 0) {
    ev |= EPOLLIN;
  }
  if (buffered_bytes() > 0 && !write_done_) ev |= EPOLLOUT;
  return ev;
}

bool Connection::next_packet(Header& h, std::span<uint8_t> payload) {
  auto finish = [&](uint16_t op) {
    h = make_header(op);
    credit_.last_reported_fwd = credit_.fwd_cnt;  // every packet carries our credit
    credit_update_wanted_ = false;
    return true;
  };
  if (state_ == State::kRequestPending) {
    state_ = State::kAwaitingResponse;
    return finish(VIRTIO_VSOCK_OP_REQUEST);
  }
  if (state_ != State::kConnected) return false;
  if (response_pending_) {
    response_pending_ = false;
    return finish(VIRTIO_VSOCK_OP_RESPONSE);
  }
  if (can_read() && !payload.empty()) {
    size_t want = std::min<size_t>(payload.size(), credit_.peer_free());
    ssize_t n;
    do {
      n = ::recv(fd_.get(), payload.data(), want, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      // A short read usually means the socket is drained: let epoll say when there is more
      // (after a hang-up there is no epoll; keep reading until EOF).
      if (static_cast<size_t>(n) < want && !hup_) readable_ = false;
      credit_.tx_cnt += static_cast<uint32_t>(n);
      finish(VIRTIO_VSOCK_OP_RW);
      h.len = static_cast<uint32_t>(n);
      return true;
    }
    if (n == 0) {
      read_done_ = true;
      readable_ = false;
      shutdown_pending_ |= VIRTIO_VSOCK_SHUTDOWN_SEND;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
    } else {
      close(false, std::string("socket read failed: ") + std::strerror(errno));
      h = reset_header();  // sent here, so not again by the muxer
      return true;
    }
  }
  if (shutdown_pending_) {
    shutdown_sent_ |= shutdown_pending_;
    shutdown_pending_ = 0;
    finish(VIRTIO_VSOCK_OP_SHUTDOWN);
    h.flags = shutdown_sent_;
    return true;
  }
  if (credit_update_wanted_ || credit_.update_due()) return finish(VIRTIO_VSOCK_OP_CREDIT_UPDATE);
  return false;
}

}  // namespace pinata::vsock
