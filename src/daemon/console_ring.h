// Keeps everything the serial console printed in a file of bounded size.
//
// Bytes are appended to the file; when it grows past `max_bytes`, it is rewritten atomically
// to hold only the newest `max_bytes / 2` bytes. The newest `tail_bytes` are also kept in
// memory so a failure report can quote the last console lines without reading the file.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>

#include "base/fd.h"
#include "base/result.h"

namespace pinata {

class ConsoleRing {
 public:
  static constexpr size_t kDefaultMaxBytes = 1 << 20;

  ConsoleRing(std::string path, size_t max_bytes = kDefaultMaxBytes, size_t tail_bytes = 16384);

  // Opens (creating or keeping) the file. Existing content is kept: the ring spans boots.
  Status open();
  Status append(std::string_view data);
  // The last `n` lines printed (from memory).
  std::string last_lines(size_t n) const;
  size_t file_size() const;

 private:
  Status trim_file();

  std::string path_;
  size_t max_bytes_;
  size_t tail_bytes_;
  mutable std::mutex mutex_;
  UniqueFd fd_;
  size_t size_ = 0;
  std::string tail_;
};

}  // namespace pinata
