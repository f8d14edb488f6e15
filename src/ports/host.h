// The host side of port forwarding (docs/protocols/ports.md), for pinata-net: the 9P control
// tree the guest's userland-proxy hook uses to ask for a forward, and the forwards themselves
// (a host listener per forward; each TCP connection or UDP client becomes a vsock stream to the
// guest forwarder, opened through pinata-vsock's socket directory).
//
//   /                              mkdir <spec> (EINVAL if the name is not a valid spec)
//   /<spec>/ctl                    write the spec, read back "OK <ip>:<port>\n" or
//                                  "ERROR <reason>\n"; the forward lives while that open lives
//
// Threads: each 9P connection is served by a p9::Session on a thread of its own (at most 16
// connections); each forward has its own accept thread (TCP) or event-loop thread (UDP), and
// each TCP connection a thread (relay.h has the bounds). A forward is started and stopped
// synchronously inside the ctl write and the ctl clunk, so "clunk, then bind the port again"
// never races with a listener that is still open.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "p9/filesystem.h"
#include "ports/relay.h"
#include "ports/spec.h"
#include "ports/wire.h"

namespace pinata::ports {

struct HostOptions {
  std::string vsock_dir;           // $PINATA_HOME/vsock (pinata-vsock's --dir)
  uint32_t guest_cid = kGuestCid;  // what the handshake on <vsock_dir>/connect names
  uint32_t data_port = kDataVsockPort;
  // Listen on 0.0.0.0 when the guest asks for it; otherwise 0.0.0.0 becomes 127.0.0.1 (the
  // database's `network` key, external-bind=true). Other addresses are bound as asked.
  bool external_bind = false;
  size_t max_forwards = 1024;
  RelayLimits limits;
};

// "<vsock_dir>/00000002.00000235": where pinata-vsock delivers the guest's connects to host
// port 565, i.e. where serve() listens.
std::string control_socket_path(const std::string& vsock_dir);

// A stream to the guest forwarder: connects to <vsock_dir>/connect, sends the 18-byte
// handshake "%08x.%08x\n" (cid, port) and the header for `destination`. If the guest refuses,
// pinata-vsock closes the stream (the caller sees EOF).
[[nodiscard]] Result<UniqueFd> dial_guest(const std::string& vsock_dir, uint32_t cid,
                                          uint32_t port, const Destination& destination);

// One active forward. Destroying it stops listening (the port is free when the destructor
// returns) and closes its connections and flows.
class HostForward {
 public:
  virtual ~HostForward() = default;
  // The address actually bound, "127.0.0.1:8080".
  virtual std::string bound() const = 0;
};
using StartForward = std::function<Result<std::unique_ptr<HostForward>>(const ForwardSpec&)>;

// The real forward: listen on the spec's host address (0.0.0.0 → 127.0.0.1 unless
// `external_bind`), relay to the guest with dial_guest.
[[nodiscard]] Result<std::unique_ptr<HostForward>> start_host_forward(const ForwardSpec& spec,
                                                                      const HostOptions& options,
                                                                      bool external_bind);

// The control tree over any way of starting forwards (tests pass fakes). At most
// `max_forwards` directories at once (mkdir beyond: ENOSPC).
[[nodiscard]] std::shared_ptr<p9::FileSystem> make_port_tree(StartForward start,
                                                             size_t max_forwards = 1024);

// The tree with real forwards, served on a unix socket.
class PortService {
 public:
  [[nodiscard]] static Result<std::unique_ptr<PortService>> create(HostOptions options);
  // Stops serving: every 9P connection is shut down, which clunks its fids and so stops every
  // forward.
  ~PortService();
  PortService(const PortService&) = delete;
  PortService& operator=(const PortService&) = delete;

  // The tree (to serve it some other way, or to inspect it).
  std::shared_ptr<p9::FileSystem> filesystem() const { return fs_; }
  // Applies to forwards started from now on (a config database change); running forwards keep
  // their address.
  void set_external_bind(bool on) { external_bind_->store(on); }
  bool external_bind() const { return external_bind_->load(); }
  // Listens on `socket_path` (normally control_socket_path(vsock_dir), mode 0600) and serves
  // each connection with a p9::Session on its own thread. Call once.
  [[nodiscard]] Status serve(const std::string& socket_path);
  // Connections being served.
  size_t session_count() const;

 private:
  PortService() = default;
  HostOptions options_;
  std::shared_ptr<std::atomic<bool>> external_bind_;
  std::shared_ptr<p9::FileSystem> fs_;
  std::unique_ptr<StreamAcceptor> acceptor_;
};

}  // namespace pinata::ports
