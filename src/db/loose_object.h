// A check of git loose objects before libgit2 reads them.
//
// libgit2 1.5 (Debian's) loops forever inflating a truncated loose object (libgit2 issue
// #7342, fixed upstream in 2026) and can write past a buffer when an object's header
// declares a smaller size than its content (#7177). A power cut or a full disk leaves exactly
// such objects, so the store verifies each loose object it is about to read: a complete zlib
// stream that inflates to "<type> <size>\0" followed by exactly <size> bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.h"

namespace pinata::db {

inline constexpr size_t kMaxLooseObjectSize = size_t{256} << 20;

// Checks the bytes of a loose object file; an error (kCorrupt) says what is wrong.
Status verify_loose_object(std::string_view compressed, size_t max_size = kMaxLooseObjectSize);

// Checks the loose object file at `path`: kNotFound when there is no such file (the object
// may be packed, or missing, which libgit2 reports cleanly).
Status verify_loose_object_file(const std::string& path);

}  // namespace pinata::db
