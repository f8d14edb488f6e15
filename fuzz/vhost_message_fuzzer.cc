// Fuzzes the vhost-user message codec: arbitrary bytes as one message plus an fd count.
// Input: byte 0 = number of fds that "arrived" (mod 9), then header + payload bytes.
// Properties: decoding never crashes; a decoded request re-encodes to bytes that decode
// again (with the same fd count) to the same request.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "vhost/message.h"

using namespace pinata::vhost;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t num_fds = data[0] % (kMaxFds + 1);
  std::span<const uint8_t> bytes(data + 1, size - 1);

  auto header = decode_header(bytes);
  if (!header) return 0;
  auto payload = bytes.subspan(kHeaderSize);
  if (payload.size() > header->size) payload = payload.first(header->size);

  // Replies (what a frontend would parse) must not crash either.
  (void)decode_reply(*header, payload, header->request);

  auto message = decode_request(*header, payload, num_fds);
  if (!message) return 0;
  (void)message->vring_index();
  (void)message->vring_has_fd();

  auto encoded = encode(header->request, header->flags, message->payload);
  auto header2 = decode_header(encoded);
  if (!header2) {
    std::fprintf(stderr, "re-encoded header does not decode: %s\n",
                 header2.error().message().c_str());
    std::abort();
  }
  auto again =
      decode_request(*header2, std::span<const uint8_t>(encoded).subspan(kHeaderSize), num_fds);
  if (!again) {
    std::fprintf(stderr, "re-encoded %s does not decode: %s\n", request_name(header->request),
                 again.error().message().c_str());
    std::abort();
  }
  if (again->payload.index() != message->payload.index()) {
    std::fprintf(stderr, "re-encoded %s changed payload type\n", request_name(header->request));
    std::abort();
  }
  return 0;
}
