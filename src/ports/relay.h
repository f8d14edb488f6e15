// Socket plumbing shared by both ends of port forwarding (and by the userland-proxy hook):
// addresses, listeners, connects, a threaded stream acceptor, a UDP relay. Depends only on
// src/base and libc, so the guest side (pinata-init, linked statically) can use it.
//
// Threads and memory (docs/protocols/ports.md, "Bounds"):
//   StreamAcceptor  one accept thread; one thread per connection (at most max_connections,
//                   more are accepted and closed at once). A TCP connection is spliced by
//                   proxy_streams(): two 128 KiB buffers, never more.
//   UdpRelay        one thread with an EventLoop per listening UDP socket; one flow per client
//                   address (at most max_flows, datagrams from more clients are dropped); at most
//                   flow_buffer bytes queued towards a flow's stream, beyond that datagrams are
//                   dropped (UDP may drop; buffering without bound may not happen); flows idle
//                   for udp_idle are closed.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "base/fd.h"
#include "base/result.h"
#include "ports/spec.h"

namespace pinata::ports {

// An IPv4 or IPv6 socket address.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  static SocketAddress ipv4(const Ipv4Endpoint& endpoint);
  // A numeric IPv4 or IPv6 address ("0.0.0.0", "::", "172.17.0.2"), no names.
  static Result<SocketAddress> parse(std::string_view ip, uint16_t port);
  // What getsockname() says for `fd`.
  static Result<SocketAddress> local_of(int fd);

  int family() const { return storage.ss_family; }
  uint16_t port() const;
  // "127.0.0.1:8080" or "[::1]:8080".
  std::string to_string() const;
  // Bytes that identify the address (family, address, port), for use as a map key.
  std::string key() const;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// A TCP listener (SO_REUSEADDR, as docker-proxy: a port in TIME_WAIT can be reused, a port
// that is listened on cannot) or a bound UDP socket. IPv6 sockets are IPV6_V6ONLY so that
// "::" and "0.0.0.0" can be bound side by side, as dockerd does. The error reads
// "bind 127.0.0.1:8080: Address already in use".
[[nodiscard]] Result<UniqueFd> listen_on(Proto proto, const SocketAddress& address);
// A TCP connection (TCP_NODELAY, like Go's default) or a failure within `timeout`.
[[nodiscard]] Result<UniqueFd> connect_tcp(const SocketAddress& address,
                                           std::chrono::milliseconds timeout);
// A UDP socket connected to `address` (send/recv reach only it).
[[nodiscard]] Result<UniqueFd> connect_udp(const SocketAddress& address);
// Sets TCP_NODELAY on a TCP socket; does nothing to other sockets.
void set_nodelay(int fd);

struct RelayLimits {
  size_t max_connections = 1024;  // StreamAcceptor: connections at once
  size_t max_flows = 1024;        // UdpRelay: client addresses at once
  std::chrono::milliseconds udp_idle{60'000};
  size_t flow_buffer = 256 * 1024;  // bytes queued towards one flow's stream
};

// Accepts stream connections on its own thread and runs `handler` for each on a thread of its
// own. Stopping (the destructor) closes the listener before returning (the port is free
// again), shuts down every connection still open (so handlers blocked on them return) and
// waits up to one second for the handlers to finish.
class StreamAcceptor {
 public:
  // Owns `conn`; runs on the connection's thread. Must not outlive what it captures by
  // reference: capture by value.
  using Handler = std::function<void(UniqueFd conn)>;

  [[nodiscard]] static Result<std::unique_ptr<StreamAcceptor>> start(UniqueFd listener,
                                                                     Handler handler,
                                                                     std::string name,
                                                                     size_t max_connections);
  ~StreamAcceptor();
  StreamAcceptor(const StreamAcceptor&) = delete;
  StreamAcceptor& operator=(const StreamAcceptor&) = delete;

  size_t connection_count() const;

  struct Shared;  // connection registry, shared with the connection threads

 private:
  StreamAcceptor() = default;
  void accept_loop();

  UniqueFd listener_;
  UniqueFd stop_fd_;  // eventfd: wakes the accept thread
  std::string name_;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

// A TCP forward: every accepted connection is spliced to the stream `dial` returns (called on
// the connection's thread); if dial fails the client is closed.
using Dial = std::function<Result<UniqueFd>()>;
[[nodiscard]] Result<std::unique_ptr<StreamAcceptor>> start_tcp_relay(UniqueFd listener, Dial dial,
                                                                      std::string name,
                                                                      const RelayLimits& limits);

// How a UDP flow carries the datagrams of one client.
enum class FlowFraming {
  kDatagram,  // a connected UDP socket: one send per datagram
  kStream,    // a stream (the vsock data path): [u16 BE length][payload] frames
};
struct UdpFlow {
  UniqueFd fd;
  FlowFraming framing = FlowFraming::kDatagram;
};

// Relays datagrams arriving on the bound UDP socket `socket`: each client address gets its own
// flow from `open` (called on the relay's thread for the client's first datagram; an error
// drops that datagram); what comes back on a flow is sent to its client from `socket`.
class UdpRelay {
 public:
  using OpenFlow = std::function<Result<UdpFlow>(const SocketAddress& client)>;

  [[nodiscard]] static Result<std::unique_ptr<UdpRelay>> start(UniqueFd socket, OpenFlow open,
                                                               std::string name,
                                                               const RelayLimits& limits);
  // Stops the thread and closes the socket and every flow before returning.
  ~UdpRelay();
  UdpRelay(const UdpRelay&) = delete;
  UdpRelay& operator=(const UdpRelay&) = delete;

  size_t flow_count() const { return flow_count_.load(); }

  struct Impl;

 private:
  UdpRelay() = default;
  std::unique_ptr<Impl> impl_;
  std::atomic<size_t> flow_count_{0};
  std::thread thread_;
};

// The guest forwarder's half of a UDP flow: frames from `stream` are sent on the connected UDP
// socket `udp`, datagrams received on `udp` go back as frames. At most `max_pending` bytes wait
// to be written to the stream (beyond that, datagrams wait in the kernel and are dropped
// there). Returns when the stream closes or fails, or when no datagram moved for `idle`.
void relay_frames_to_udp(UniqueFd stream, UniqueFd udp, std::chrono::milliseconds idle,
                         size_t max_pending = 256 * 1024);

}  // namespace pinata::ports
