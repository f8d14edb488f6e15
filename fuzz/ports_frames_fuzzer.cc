// UDP frames on a stream (src/ports/wire.h). The input is split into chunks (the first byte
// picks the chunk size) and fed to a FrameDecoder; every frame it returns must re-encode to
// exactly the bytes consumed, and what it holds must stay below one frame plus one chunk.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ports/wire.h"

using pinata::ports::FrameDecoder;
using pinata::ports::kFrameHeaderBytes;
using pinata::ports::kMaxFramePayload;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = static_cast<size_t>(data[0]) + 1;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  FrameDecoder decoder;
  std::string reencoded;
  for (size_t at = 0; at < input.size(); at += chunk) {
    decoder.feed(input.substr(at, chunk));
    while (auto payload = decoder.next()) {
      if (!pinata::ports::append_frame(reencoded, *payload)) std::abort();
    }
    if (decoder.buffered() > kFrameHeaderBytes + kMaxFramePayload + chunk) std::abort();
  }
  if (reencoded != input.substr(0, reencoded.size())) std::abort();
  if (reencoded.size() + decoder.buffered() != input.size()) std::abort();
  return 0;
}
