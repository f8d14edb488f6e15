// verify_loose_object on arbitrary bytes: the check that stands between a damaged or hostile
// .git/objects file and libgit2's inflater.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "db/loose_object.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)pinata::db::verify_loose_object(
      std::string_view(reinterpret_cast<const char*>(data), size), 1 << 20);
  return 0;
}
