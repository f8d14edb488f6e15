// pinata logs [-f] [--console]: pinatad's log, or what the serial console printed.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "base/io.h"
#include "cli/client.h"

namespace pinata::cli {

int cmd_logs(const Paths& paths, const std::vector<std::string>& args) {
  bool follow = false;
  std::string path = paths.daemon_log;
  for (const auto& a : args) {
    if (a == "-f" || a == "--follow") {
      follow = true;
    } else if (a == "--console") {
      path = paths.console_ring;
    } else {
      return usage_error("logs: expected [-f|--follow] [--console], got '" + a + "'");
    }
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    std::fprintf(stderr, "pinata: no log yet (%s: %s)\n", path.c_str(), std::strerror(errno));
    return kExitFailure;
  }
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::fprintf(stderr, "pinata: %s: %s\n", path.c_str(), std::strerror(errno));
      return kExitFailure;
    }
    if (n > 0) {
      if (!write_all(1, std::string_view(buf, static_cast<size_t>(n)))) return kExitFailure;
      continue;
    }
    if (!follow) return kExitOk;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace pinata::cli
