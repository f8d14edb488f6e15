// The port-forwarding data path (docs/protocols/ports.md): what the host sends on a vsock
// stream to the guest forwarder (vsock port 62373), and how UDP datagrams travel on a stream.
//
//   header   "tcp:172.17.0.2:80\n" or "udp:172.17.0.2:53\n": proto:ipv4:port and a newline,
//            at most kMaxHeaderBytes bytes with the newline; nothing is sent back. For TCP the
//            stream then carries the connection's bytes both ways; for UDP it carries frames.
//   frame    [u16 big-endian length][payload]: one datagram (0-65535 bytes), both ways.
//
// The header and the frames come from the other side of a trust boundary (the guest reads the
// host's; the host reads the guest's frames), so they are parsed by pure functions with fuzz
// targets (`ports_header`, `ports_frames`).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "ports/spec.h"

namespace pinata::ports {

// The guest forwarder's vsock port (the port map in design.md).
constexpr uint32_t kDataVsockPort = 62373;
// The control tree's vsock port (9P, the guest mounts it at /run/pinata/port).
constexpr uint32_t kControlVsockPort = 565;
constexpr uint32_t kGuestCid = 3;

constexpr size_t kMaxHeaderBytes = 64;  // including the newline

struct Destination {
  Proto proto = Proto::kTcp;
  Ipv4Endpoint endpoint;
  bool operator==(const Destination&) const = default;
};

// "tcp:172.17.0.2:80\n".
[[nodiscard]] std::string format_header(const Destination& destination);
// Parses one header line without its newline.
[[nodiscard]] Result<Destination> parse_header(std::string_view line);
// Reads a header from the stream `fd` (blocking or not): one byte at a time, so that no byte
// after the newline is consumed (they belong to the connection). Fails on EOF, on more than
// kMaxHeaderBytes without a newline, on a malformed line, or after `timeout` (kTimeout).
[[nodiscard]] Result<Destination> read_header(int fd, std::chrono::milliseconds timeout);

// ---- UDP frames ----------------------------------------------------------------------------

constexpr size_t kFrameHeaderBytes = 2;
constexpr size_t kMaxFramePayload = 65535;

// Appends one frame; false (and nothing appended) if `payload` is longer than 65535 bytes.
[[nodiscard]] bool append_frame(std::string& out, std::string_view payload);

// Splits a byte stream into frames. Every u16 length is valid, so the only state is a frame
// not complete yet: the decoder holds at most one partial frame plus what it was last fed.
class FrameDecoder {
 public:
  // Appends bytes read from the stream.
  void feed(std::string_view bytes);
  // The next complete frame's payload, or nullopt if none is complete. The view is valid until
  // the next call to feed() or next().
  std::optional<std::string_view> next();
  // Bytes held (a partial frame, or frames not taken yet).
  size_t buffered() const { return buf_.size() - start_; }

 private:
  std::string buf_;
  size_t start_ = 0;  // first byte not yet returned
};

}  // namespace pinata::ports
