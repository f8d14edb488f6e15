// pinata console: the VM's serial console. Ctrl-] detaches.
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>

#include "base/io.h"
#include "cli/client.h"

namespace pinata::cli {
namespace {

constexpr char kDetach = 0x1d;  // Ctrl-]
constexpr int kQuietMs = 2000;

}  // namespace

int cmd_console(const Paths& paths, const std::vector<std::string>& args) {
  if (!args.empty()) return usage_error("console takes no arguments");
  if (!probe_daemon(paths).running) {
    std::fprintf(stderr, "pinata: pinata is not running\n");
    return kExitFailure;
  }
  auto conn = control_request(paths, "console");
  if (!conn) {
    std::fprintf(stderr, "pinata: %s\n", conn.error().message().c_str());
    return kExitFailure;
  }
  auto ok = read_line(conn->get(), 64);
  if (!ok || *ok != "ok") {
    std::fprintf(stderr, "pinata: pinatad refused the console\n");
    return kExitFailure;
  }
  bool tty = ::isatty(0);
  struct termios saved;
  if (tty) {
    std::fprintf(stderr, "Connected to the pinata console (%s). Press Ctrl-] to detach.\r\n",
                 paths.console_ring.c_str());
    ::tcgetattr(0, &saved);
    struct termios raw = saved;
    ::cfmakeraw(&raw);
    ::tcsetattr(0, TCSANOW, &raw);
  }
  int sock = conn->get();
  bool stdin_open = true;
  char buf[8192];
  for (;;) {
    struct pollfd pfds[2] = {{sock, POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0}};
    // Scripted use (`echo cmd | pinata console`): once stdin is done, print what the console
    // says until it has been quiet for a moment.
    int rc = ::poll(pfds, 2, stdin_open || tty ? -1 : kQuietMs);
    if (rc < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (rc == 0) break;
    if (pfds[0].revents) {
      ssize_t n = ::read(sock, buf, sizeof buf);
      if (n <= 0) break;
      if (!write_all(1, std::string_view(buf, static_cast<size_t>(n)))) break;
    }
    if (pfds[1].revents) {
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n <= 0) {
        stdin_open = false;
        continue;
      }
      std::string_view in(buf, static_cast<size_t>(n));
      size_t detach = tty ? in.find(kDetach) : std::string_view::npos;
      if (!write_all(sock, in.substr(0, detach))) break;
      if (detach != std::string_view::npos) break;
    }
  }
  if (tty) {
    ::tcsetattr(0, TCSANOW, &saved);
    std::fprintf(stderr, "\nDetached from the pinata console.\n");
  }
  return kExitOk;
}

}  // namespace pinata::cli
