// Small I/O helpers over raw file descriptors: whole reads/writes, files, unix sockets.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/fd.h"
#include "base/result.h"

namespace pinata {

// Writes all of `data`, retrying on EINTR and short writes.
Status write_all(int fd, std::string_view data);
// Reads up to `max` bytes until EOF.
Result<std::string> read_all(int fd, size_t max = 64 << 20);
// Reads one line ("\n" stripped) of at most `max` bytes; EOF before a newline is an error.
Result<std::string> read_line(int fd, size_t max = 4096);

Result<std::string> read_file(const std::string& path, size_t max = 64 << 20);
// Writes `path` atomically (temp file + fsync + rename) with `mode`.
Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode = 0644);

// Creates the directory and its parents (like mkdir -p).
Status make_dirs(const std::string& path, mode_t mode = 0755);

// A listening unix stream socket at `path` (any stale socket file is removed first), mode `mode`.
Result<UniqueFd> unix_listen(const std::string& path, mode_t mode = 0600, int backlog = 512);
// Connects to a unix stream socket.
Result<UniqueFd> unix_connect(const std::string& path);

// Sets O_NONBLOCK.
Status set_nonblocking(int fd, bool on = true);

// A pinata program installed next to the running one, or where the build tree puts it
// (<build>/src/<build_subdir>/<name>); otherwise `name`, to be found on PATH.
std::string find_program(const std::string& name, const std::string& build_subdir);

// Joins a directory and a name with exactly one '/'.
std::string path_join(std::string_view dir, std::string_view name);

}  // namespace pinata
