// Keeps everything the serial console printed in a file of bounded size.
//
// Bytes are appended to the file; when it grows past `max_bytes`, it is rewritten atomically
// to hold only the newest `max_bytes / 2` bytes. `pinata start` quotes its last lines on a
// failure (cli/client.cc console_tail), reading the file so it works after pinatad exited.
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

  explicit ConsoleRing(std::string path, size_t max_bytes = kDefaultMaxBytes);

  // Opens (creating or keeping) the file. Existing content is kept: the ring spans boots.
  Status open();
  Status append(std::string_view data);
  size_t file_size() const;

 private:
  Status trim_file();

  std::string path_;
  size_t max_bytes_;
  mutable std::mutex mutex_;
  UniqueFd fd_;
  size_t size_ = 0;
};

}  // namespace pinata
