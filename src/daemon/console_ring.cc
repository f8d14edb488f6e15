#include "daemon/console_ring.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/io.h"

namespace pinata {

ConsoleRing::ConsoleRing(std::string path, size_t max_bytes)
    : path_(std::move(path)), max_bytes_(max_bytes) {}

Status ConsoleRing::open() {
  std::lock_guard lock(mutex_);
  fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd_) return fail_errno(path_);
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) return fail_errno(path_);
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > max_bytes_) return trim_file();
  return {};
}

Status ConsoleRing::append(std::string_view data) {
  std::lock_guard lock(mutex_);
  if (!fd_) return fail(ErrorKind::kInternal, "console ring not open");
  TRY(write_all(fd_.get(), data));
  size_ += data.size();
  if (size_ > max_bytes_) return trim_file();
  return {};
}

Status ConsoleRing::trim_file() {
  // Keep the newest half, starting at a line boundary when there is one.
  TRY_ASSIGN(std::string content, read_file(path_, max_bytes_ * 4));
  size_t keep = max_bytes_ / 2;
  size_t start = content.size() > keep ? content.size() - keep : 0;
  size_t nl = content.find('\n', start);
  if (nl != std::string::npos && nl + 1 < content.size()) start = nl + 1;
  TRY(write_file_atomic(path_, std::string_view(content).substr(start), 0600));
  fd_.reset(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  if (!fd_) return fail_errno(path_);
  size_ = content.size() - start;
  return {};
}

size_t ConsoleRing::file_size() const {
  std::lock_guard lock(mutex_);
  return size_;
}

}  // namespace pinata
