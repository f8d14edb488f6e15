#include "base/io.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pinata {

Status write_all(int fd, std::string_view data) {
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        ::poll(&pfd, 1, -1);
        continue;
      }
      return fail_errno("write");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return {};
}

Result<std::string> read_all(int fd, size_t max) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("read");
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max) {
      return fail(ErrorKind::kInvalidInput, "input larger than " + std::to_string(max) + " bytes");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<std::string> read_line(int fd, size_t max) {
  std::string line;
  for (;;) {
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("read");
    }
    if (n == 0) return fail(ErrorKind::kInvalidInput, "end of stream before a newline");
    if (c == '\n') return line;
    if (line.size() >= max) return fail(ErrorKind::kInvalidInput, "line too long");
    line.push_back(c);
  }
}

Result<std::string> read_file(const std::string& path, size_t max) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno(path);
  auto data = read_all(fd.get(), max);
  if (!data) return fail(data.error().context(path));
  return data;
}

Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) return fail_errno(tmp);
  if (::fchmod(fd.get(), mode) != 0) return fail_errno("chmod " + tmp);
  auto st = write_all(fd.get(), data);
  if (!st) {
    ::unlink(tmp.c_str());
    return fail(st.error().context(tmp));
  }
  if (::fsync(fd.get()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail_errno("fsync " + tmp, err);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail_errno("rename " + tmp, err);
  }
  return {};
}

Status make_dirs(const std::string& path, mode_t mode) {
  if (path.empty()) return {};
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = path.find('/', pos + 1);
    cur = path.substr(0, next);
    pos = next;
    if (cur.empty() || cur == "/") continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return fail_errno("mkdir " + cur);
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return fail_errno(path);
  if (!S_ISDIR(st.st_mode)) return fail(Error::from_errno(path, ENOTDIR));
  return {};
}

static Result<struct sockaddr_un> unix_address(const std::string& path) {
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return fail(ErrorKind::kInvalidInput,
                "socket path too long (" + std::to_string(path.size()) + " bytes, at most " +
                    std::to_string(sizeof addr.sun_path - 1) + "): " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

Result<UniqueFd> unix_listen(const std::string& path, mode_t mode, int backlog) {
  TRY_ASSIGN(auto addr, unix_address(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  ::unlink(path.c_str());
  // Create with restrictive permissions from the start, then set the final mode.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::umask(old);
  if (rc != 0) return fail_errno("bind " + path, err);
  if (::chmod(path.c_str(), mode) != 0) return fail_errno("chmod " + path);
  if (::listen(fd.get(), backlog) != 0) return fail_errno("listen " + path);
  return fd;
}

Result<UniqueFd> unix_connect(const std::string& path) {
  TRY_ASSIGN(auto addr, unix_address(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return fail_errno("connect " + path);
  return fd;
}

Status set_nonblocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return fail_errno("fcntl");
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) != 0) return fail_errno("fcntl");
  return {};
}

std::string find_program(const std::string& name, const std::string& build_subdir) {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    std::string dir(buf, static_cast<size_t>(n));
    dir.resize(dir.rfind('/'));
    for (const std::string& candidate :
         {dir + "/" + name, dir + "/../" + build_subdir + "/" + name}) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return name;
}

std::string path_join(std::string_view dir, std::string_view name) {
  std::string out(dir);
  while (!out.empty() && out.back() == '/') out.pop_back();
  while (!name.empty() && name.front() == '/') name.remove_prefix(1);
  out += '/';
  out += name;
  return out;
}

}  // namespace pinata
