#include "daemon/qmp.h"

#include <sys/socket.h>
#include <sys/time.h>

#include "base/io.h"

namespace pinata {
namespace {

// QMP sends one JSON object per line; events may come before the reply we wait for.
Result<std::string> read_reply(int fd) {
  for (int i = 0; i < 32; i++) {
    TRY_ASSIGN(std::string line, read_line(fd, 1 << 16));
    if (line.find("\"return\"") != std::string::npos) return line;
    if (line.find("\"error\"") != std::string::npos) {
      return fail(ErrorKind::kInvalidInput, "QMP error: " + line);
    }
  }
  return fail(ErrorKind::kTimeout, "no QMP reply");
}

}  // namespace

Status qmp_execute(const std::string& socket_path, const std::string& command) {
  TRY_ASSIGN(UniqueFd fd, unix_connect(socket_path));
  struct timeval tv = {5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  TRY_ASSIGN(std::string greeting, read_line(fd.get(), 1 << 16));
  if (greeting.find("\"QMP\"") == std::string::npos) {
    return fail(ErrorKind::kInvalidInput, "not a QMP greeting: " + greeting);
  }
  TRY(write_all(fd.get(), "{\"execute\":\"qmp_capabilities\"}\n"));
  TRY(read_reply(fd.get()));
  TRY(write_all(fd.get(), "{\"execute\":\"" + command + "\"}\n"));
  TRY(read_reply(fd.get()));
  return {};
}

}  // namespace pinata
