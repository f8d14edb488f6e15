// pinata: the command-line interface. One file per subcommand; they talk to pinatad over
// $PINATA_HOME/pinatad.sock.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/client.h"
#include "cli/config_cmds.h"

namespace {

void print_help() {
  std::printf(
      "usage: pinata COMMAND [OPTIONS]\n\n"
      "Runs Docker in a lightweight VM; the docker CLI talks to it through\n"
      "$PINATA_HOME/docker.sock (PINATA_HOME defaults to ~/.pinata).\n\n"
      "Commands:\n"
      "  start [--timeout S] [--memory GiB] [--cpus N]\n"
      "                  start the VM (if needed) and wait until Docker responds\n"
      "  stop [--timeout S]\n"
      "                  shut the guest down cleanly (killed after S seconds, default 30)\n"
      "  status          whether pinata is running (exit 3 when it is not)\n"
      "  logs [-f] [--console]\n"
      "                  pinatad's log, or everything the serial console printed\n"
      "  console         attach to the VM's serial console (Ctrl-] detaches)\n"
      "  help            this text\n"
      "  disk info [--json] | disk compact\n"
      "                  the data disk's sizes; give its free space back (VM stopped)\n"
      "\nSettings (the git repository $PINATA_HOME/database; pinatad need not run):\n"
      "  list [--json] [--all]\n"
      "                  every setting with its value, parameters and options\n"
      "  get KEY         a setting's value (KEY: memory, daemon, hostname, sysctl, ...)\n"
      "  set KEY VALUE [PARAM=VALUE ...]\n"
      "                  change settings in one commit, e.g. 'set hypervisor qemu memory=4';\n"
      "                  VALUE '-' reads standard input, '@FILE' a file\n"
      "  history [KEY] [-n N]\n"
      "                  the commits that changed the settings (or KEY), newest first\n"
      "  revert COMMIT   undo one commit's changes in a new commit\n");
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    print_help();
    return pinata::cli::kExitUsage;
  }
  std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  pinata::Paths paths = pinata::Paths::from_env();
  using namespace pinata::cli;
  if (cmd == "start") return cmd_start(paths, args);
  if (cmd == "stop") return cmd_stop(paths, args);
  if (cmd == "status") return cmd_status(paths, args);
  if (cmd == "logs") return cmd_logs(paths, args);
  if (cmd == "console") return cmd_console(paths, args);
  if (cmd == "disk") return cmd_disk(paths, args);
  if (cmd == "list") return cmd_list(paths, args);
  if (cmd == "get") return cmd_get(paths, args);
  if (cmd == "set") return cmd_set(paths, args);
  if (cmd == "history") return cmd_history(paths, args);
  if (cmd == "revert") return cmd_revert(paths, args);
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    print_help();
    return kExitOk;
  }
  return usage_error("unknown command '" + cmd + "'");
}
