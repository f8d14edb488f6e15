// The guest image: kernel, initramfs and read-only root image, built by guest/build.sh.
//
// The directory holds a MANIFEST in sha256sum format. A missing file, a missing MANIFEST or
// a checksum mismatch (a partial or corrupt build) is refused with a message saying how to
// rebuild; a corrupt image is never booted.
#pragma once

#include <string>

#include "base/result.h"

namespace pinata {

struct GuestImage {
  std::string dir;
  std::string kernel;  // vmlinux
  std::string initrd;  // initrd.img
  std::string root;    // root.img
};

struct ManifestEntry {
  std::string sha256;  // lowercase hex
  std::string name;
};

// Parses sha256sum output ("<64 hex>  <name>" per line). Names must be plain file names.
Result<std::vector<ManifestEntry>> parse_manifest(const std::string& text);

// Lowercase hex SHA-256 of a file.
Result<std::string> sha256_file(const std::string& path);

// Checks that `dir` holds a complete image whose files match the MANIFEST.
Result<GuestImage> verify_guest_image(const std::string& dir);

}  // namespace pinata
