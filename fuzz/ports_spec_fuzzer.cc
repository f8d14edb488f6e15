// Forward specs (src/ports/spec.h): the names the guest mkdirs and writes to ctl. Whatever is
// accepted must format back to exactly the input (one canonical spelling per forward).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ports/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = pinata::ports::parse_spec(text);
  if (spec) {
    if (pinata::ports::format_spec(*spec) != text) std::abort();
    if (spec->host.port == 0 || spec->container.port == 0) std::abort();
  }
  return 0;
}
