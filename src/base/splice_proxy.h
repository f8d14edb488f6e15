// A bidirectional byte proxy between two connected stream sockets.
//
// Each direction is copied until EOF, which is passed on as shutdown(SHUT_WR) so half-closed
// streams (docker attach, docker build's context upload) keep working. Returns when both
// directions have finished or either side fails; both fds are closed on return.
#pragma once

#include <cstdint>

#include "base/fd.h"

namespace pinata {

struct ProxyStats {
  uint64_t a_to_b = 0;
  uint64_t b_to_a = 0;
};

ProxyStats proxy_streams(UniqueFd a, UniqueFd b);

// Runs proxy_streams on a detached thread.
void proxy_streams_detached(UniqueFd a, UniqueFd b);

}  // namespace pinata
