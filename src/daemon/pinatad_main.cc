// pinatad: the pinata backend. Normally started by `pinata start`, which passes --ready-fd
// to learn whether start-up worked; it can also run in the foreground for debugging.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "base/io.h"
#include "base/log.h"
#include "daemon/daemon.h"
#include "daemon/paths.h"

int main(int argc, char** argv) {
  int ready_fd = -1;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--ready-fd" && i + 1 < argc) {
      ready_fd = std::atoi(argv[++i]);
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: pinatad [--ready-fd N]\n"
                  "Runs the pinata VM for $PINATA_HOME (default ~/.pinata). Use `pinata start`.\n");
      return 0;
    } else {
      std::fprintf(stderr, "pinatad: unknown argument '%s'\n", a.c_str());
      return 2;
    }
  }
  pinata::log::init("pinatad");
  // Signals are handled by a dedicated thread (sigwait); block them everywhere else.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto report = [&](const std::string& line) {
    if (ready_fd >= 0) {
      (void)pinata::write_all(ready_fd, line + "\n");
      ::close(ready_fd);
      ready_fd = -1;
    }
  };
  pinata::Daemon daemon(pinata::Paths::from_env());
  auto prepared = daemon.prepare();
  if (!prepared) {
    pinata::log::error("%s", prepared.error().message().c_str());
    report("error " + prepared.error().message());
    _exit(prepared.error().kind() == pinata::ErrorKind::kAlreadyExists ? 3 : 1);
  }
  report("ok");
  int code = daemon.run();
  _exit(code);
}
