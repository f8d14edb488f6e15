// The guest's other parsers of outside bytes: disk superblocks (a disk image is a file the
// user controls), the kernel command line and the configuration database's files (a user can
// commit anything with plain git). The first byte picks the parser.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "guest/cmdline.h"
#include "guest/db_config.h"
#include "guest/disks.h"

using namespace pinata::guest;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::span<const uint8_t> bytes(data + 1, size - 1);
  switch (data[0] % 3) {
    case 2: {
      std::vector<std::string> errors;
      (void)parse_sysctl_conf(text, &errors);
      (void)parse_registry_list(text);
      (void)json_mentions_key(text, "insecure-registries");
      break;
    }
    case 1:
      (void)parse_ext4_superblock(bytes);
      break;
    case 0:
      (void)hostname_from_cmdline(text);
      (void)split_cmdline(text);
      break;
  }
  return 0;
}
