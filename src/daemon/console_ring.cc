#include "daemon/console_ring.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/io.h"

namespace pinata {

ConsoleRing::ConsoleRing(std::string path, size_t max_bytes, size_t tail_bytes)
    : path_(std::move(path)), max_bytes_(max_bytes), tail_bytes_(tail_bytes) {}

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
  tail_.append(data);
  if (tail_.size() > tail_bytes_) tail_.erase(0, tail_.size() - tail_bytes_);
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

std::string ConsoleRing::last_lines(size_t n) const {
  std::lock_guard lock(mutex_);
  std::string_view t = tail_;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.remove_suffix(1);
  size_t pos = t.size();
  size_t lines = 0;
  while (pos > 0) {
    size_t nl = t.rfind('\n', pos - 1);
    lines++;
    if (nl == std::string_view::npos) {
      pos = 0;
      break;
    }
    if (lines == n) {
      pos = nl + 1;
      break;
    }
    pos = nl;
  }
  std::string out(t.substr(pos));
  // Serial consoles print CRLF; the report is for humans.
  std::string clean;
  for (char c : out) {
    if (c != '\r') clean += c;
  }
  return clean;
}

size_t ConsoleRing::file_size() const {
  std::lock_guard lock(mutex_);
  return size_;
}

}  // namespace pinata
