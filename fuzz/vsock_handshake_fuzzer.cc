// Fuzzes the DIR/connect request parser (src/vsock/muxer.h): arbitrary bytes never crash,
// and an accepted request is exactly the canonical form (modulo hex case) for the guest CID.
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "vsock/muxer.h"

using namespace pinata::vsock;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (uint64_t cid : {uint64_t{3}, uint64_t{0xffffffff}}) {
    auto port = parse_connect_request(in, cid);
    if (!port) continue;
    if (size != kHandshakeSize) std::abort();
    std::string canonical = format_connect_request(cid, *port);
    std::string lowered(in);
    for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (canonical != lowered) std::abort();
    auto round = parse_connect_request(canonical, cid);
    if (!round || *round != *port) std::abort();
  }
  return 0;
}
