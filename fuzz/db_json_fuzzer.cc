// validate_json on arbitrary text, both as any value and as daemon.json's top-level object;
// what it accepts must also be accepted when quoted as a JSON string (json_quote round trip).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "db/json.h"

using namespace pinata::db;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)validate_json(text);
  JsonLimits object;
  object.top = JsonTop::kObject;
  (void)validate_json(text, object);
  if (!validate_json(json_quote(text))) std::abort();  // any bytes quote to a valid string
  return 0;
}
