// Reading and writing vhost-user messages on a unix stream socket, with fds as SCM_RIGHTS.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "vhost/message.h"

namespace pinata::vhost {

struct ReceivedMessage {
  Header header;
  std::vector<uint8_t> payload;
  std::vector<UniqueFd> fds;  // at most kMaxFds; extras are closed on receipt
};

// Reads one whole message (blocking; use SO_RCVTIMEO to bound a stalled peer). Received fds
// are close-on-exec. Returns nullopt on an orderly EOF before the first byte. A bad header
// (version, oversize payload) or EOF inside a message is an error: the stream can't be
// resynchronised, so the caller should drop the connection.
Result<std::optional<ReceivedMessage>> receive_message(int fd);

// Sends `bytes` (a whole encoded message) with `fds` attached to the first byte.
Status send_message(int fd, std::span<const uint8_t> bytes, std::span<const int> fds = {});

// receive_message + decode_request, fds attached.
Result<std::optional<Message>> receive_request(int fd);

}  // namespace pinata::vhost
