// Data-path headers (src/ports/wire.h): the line the guest forwarder reads before connecting.
// Accepted headers format back to the input plus its newline.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ports/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  auto d = pinata::ports::parse_header(line);
  if (d) {
    std::string again = pinata::ports::format_header(*d);
    if (again != std::string(line) + "\n") std::abort();
    if (again.size() > pinata::ports::kMaxHeaderBytes) std::abort();
  }
  return 0;
}
