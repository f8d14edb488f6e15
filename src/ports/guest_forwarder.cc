#include "ports/guest_forwarder.h"

#include <mutex>

#include "base/log.h"
#include "base/splice_proxy.h"
#include "ports/wire.h"

namespace pinata::ports {
namespace {

// Connection threads share one rate limit: a misbehaving peer can open many streams.
void warn_limited(const std::string& message) {
  static std::mutex mu;
  static log::RateLimitedLog* limited = new log::RateLimitedLog();  // outlives every thread
  std::lock_guard lock(mu);
  limited->warn("port forwarder: %s", message.c_str());
}

}  // namespace

void serve_forwarder_connection(UniqueFd stream, const ForwarderOptions& options) {
  auto destination = read_header(stream.get(), options.header_timeout);
  if (!destination) {
    warn_limited("bad header: " + destination.error().message());
    return;
  }
  SocketAddress address = SocketAddress::ipv4(destination->endpoint);
  if (destination->proto == Proto::kTcp) {
    auto upstream = connect_tcp(address, options.connect_timeout);
    if (!upstream) {
      // Closing the stream tells the host, which closes its client.
      warn_limited(upstream.error().message());
      return;
    }
    proxy_streams(std::move(stream), std::move(*upstream));
    return;
  }
  auto udp = connect_udp(address);
  if (!udp) {
    warn_limited(udp.error().message());
    return;
  }
  relay_frames_to_udp(std::move(stream), std::move(*udp), options.udp_idle, options.udp_pending);
}

Result<std::unique_ptr<GuestForwarder>> GuestForwarder::start(UniqueFd listener,
                                                              ForwarderOptions options) {
  TRY_ASSIGN(auto acceptor,
             StreamAcceptor::start(
                 std::move(listener),
                 [options](UniqueFd conn) { serve_forwarder_connection(std::move(conn), options); },
                 "port forwarder", options.max_connections));
  return std::unique_ptr<GuestForwarder>(new GuestForwarder(std::move(acceptor)));
}

}  // namespace pinata::ports
