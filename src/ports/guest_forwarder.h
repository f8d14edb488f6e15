// The guest forwarder: the guest end of the port-forwarding data path (docs/protocols/
// ports.md). pinata-init listens on vsock port 62373 and hands the listener here. Each stream
// the host opens starts with a header naming the destination ("tcp:172.17.0.2:80\n"); the
// forwarder connects there (TCP) or opens a connected UDP socket (UDP) and relays until
// either side closes. Depends only on src/base and libc (pinata-init is linked statically).
//
// Who can reach it: only the host (vsock port 62373 of the guest; on the host, through the
// user's 0600 socket directory), so the destination is not restricted. A header must arrive
// within header_timeout and be at most 64 bytes; anything else closes the stream.
#pragma once

#include <chrono>
#include <memory>

#include "base/fd.h"
#include "base/result.h"
#include "ports/relay.h"

namespace pinata::ports {

struct ForwarderOptions {
  std::chrono::milliseconds header_timeout{5'000};
  // As long as Linux's own SYN retries (about 127 s), as docker-proxy's plain dial has: a
  // container whose accept queue is full (busybox httpd listens with a backlog of 9) drops
  // SYNs, and its clients are retried, not refused (seen with 100 concurrent downloads).
  std::chrono::milliseconds connect_timeout{127'000};
  std::chrono::milliseconds udp_idle{60'000};
  size_t max_connections = 4096;
  size_t udp_pending = 256 * 1024;  // bytes of frames queued towards the host per UDP flow
};

// Serves one accepted stream on the calling thread (header, connect, relay); returns when the
// connection is over. Failures are logged (rate-limited) and close the stream.
void serve_forwarder_connection(UniqueFd stream, const ForwarderOptions& options);

// Accepts on `listener` (an AF_VSOCK socket bound to port 62373 in the guest; any stream
// listener in tests) on a thread of its own; one thread per connection. Destroying it stops
// accepting, closes the listener and shuts down the connections.
class GuestForwarder {
 public:
  [[nodiscard]] static Result<std::unique_ptr<GuestForwarder>> start(UniqueFd listener,
                                                                     ForwarderOptions options = {});
  size_t connection_count() const { return acceptor_->connection_count(); }

 private:
  explicit GuestForwarder(std::unique_ptr<StreamAcceptor> acceptor)
      : acceptor_(std::move(acceptor)) {}
  std::unique_ptr<StreamAcceptor> acceptor_;
};

}  // namespace pinata::ports
