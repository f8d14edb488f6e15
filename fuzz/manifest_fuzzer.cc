// The guest image MANIFEST and the settings file are files under the user's control.
#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/guest_image.h"
#include "daemon/settings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)pinata::parse_manifest(text);
  (void)pinata::parse_settings(text, 8, 16);
  return 0;
}
