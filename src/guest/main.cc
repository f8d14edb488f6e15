// pinata-init: PID 1 of the pinata guest VM. See README.md for the boot sequence.
#include <signal.h>
#include <sys/poll.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <thread>

#include "base/io.h"
#include "base/log.h"
#include "guest/docker_vsock.h"
#include "guest/boot_clock.h"
#include "guest/cmdline.h"
#include "guest/port_forwarding.h"
#include "ports/userland_proxy.h"
#include "guest/config_db.h"
#include "guest/disk_setup.h"
#include "guest/modules.h"
#include "guest/mounts.h"
#include "guest/netconfig.h"
#include "guest/power_button.h"
#include "guest/process.h"
#include "guest/shutdown.h"
#include "guest/supervisor.h"
#include "guest/system_config.h"

namespace pinata::guest {
namespace {

constexpr const char* kDockerdArgsFile = "/etc/pinata/dockerd.args";
constexpr int kSignals[] = {SIGCHLD, SIGTERM, SIGINT, SIGPWR, SIGUSR2, SIGHUP};

void fatal(const std::string& what) {
  log::error("FATAL: %s", what.c_str());
  power_off("fatal boot error");
}

// Signals are handled synchronously through a signalfd by the main loop. They are blocked
// before any thread exists, so every thread inherits the mask and none can swallow one.
int setup_signals() {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  for (int s : kSignals) sigaddset(&set, s);
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0)
    fatal(std::string("sigprocmask: ") + strerror(errno));
  int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) fatal(std::string("signalfd: ") + strerror(errno));
  return fd;
}

std::vector<std::string> dockerd_argv() {
  std::vector<std::string> argv = {"dockerd", "--containerd=/run/containerd/containerd.sock", "-H",
                                   "unix:///var/run/docker.sock", "--userland-proxy=true",
                                   // Containers get 8 s to stop so dockerd itself exits within
                                   // the 10 s that shutdown gives it (its default is 15 s).
                                   "--shutdown-timeout=8"};
  auto extra = read_file(kDockerdArgsFile, 1 << 20);
  if (!extra) return argv;
  size_t pos = 0;
  while (pos < extra->size()) {
    size_t end = extra->find('\n', pos);
    if (end == std::string::npos) end = extra->size();
    std::string line = extra->substr(pos, end - pos);
    pos = end + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    argv.push_back(line);
  }
  log::info("dockerd: extra arguments from %s", kDockerdArgsFile);
  return argv;
}

// `dockerd_restart_fd`: an eventfd that becomes readable when dockerd's configuration changed
// (-1 if none).
[[noreturn]] void main_loop(Supervisor& supervisor, int signal_fd, int dockerd_restart_fd) {
  int trigger = shutdown_trigger_fd();
  for (;;) {
    auto next = supervisor.restart_due();
    struct pollfd pfds[3] = {
        {signal_fd, POLLIN, 0}, {trigger, POLLIN, 0}, {dockerd_restart_fd, POLLIN, 0}};
    int timeout = next ? static_cast<int>(next->count()) + 1 : -1;
    int rc = ::poll(pfds, 3, timeout);
    if (rc < 0 && errno != EINTR) log::error("poll: %s", strerror(errno));
    struct signalfd_siginfo si;
    while (::read(signal_fd, &si, sizeof si) == sizeof si) {
      int sig = static_cast<int>(si.ssi_signo);
      if (sig == SIGCHLD || sig == SIGHUP) continue;
      log::info("received %s from pid %u", strsignal(sig), si.ssi_pid);
      request_shutdown(std::string("signal ") + sigabbrev_np(sig));
    }
    supervisor.reap();
    if (pfds[1].revents & POLLIN) shutdown_vm(supervisor);
    if (pfds[2].revents & POLLIN) {
      uint64_t n;
      (void)!::read(dockerd_restart_fd, &n, sizeof n);
      supervisor.restart("dockerd", std::chrono::seconds(10));
    }
  }
}

[[noreturn]] void run() {
  // 1. The kernel gave us no console (the initramfs has no /dev/console): mount, then attach.
  auto early = mount_early();
  attach_console();
  log::init("pinata-init");
  if (!early) fatal(early.error().message());
  ::umask(022);
  ::setenv("PATH", kPath, 1);
  ::setenv("HOME", "/root", 1);
  ::reboot(RB_DISABLE_CAD);  // Ctrl-Alt-Del becomes SIGINT
  std::set_terminate([]() { fatal("uncaught exception"); });
  int signal_fd = setup_signals();
  struct utsname uts;
  ::uname(&uts);
  step("pinata-init started (kernel %s)", uts.release);

  std::string cmdline = read_file("/proc/cmdline", 65536).value_or("");

  // 2. Modules: what the root and the services need now, the rest in the background.
  // pinata.modules=sync loads everything before going on (for measurements).
  bool sync_modules = cmdline_value(cmdline, "pinata.modules") == "sync";
  auto mods = load_modules(kModulesList,
                           sync_modules ? std::vector<std::string>{} : kBootCriticalModules,
                           kSoonModules);
  step(
      "modules: %d loaded, %d already present, %d without hardware, %d failed in %lld ms; "
      "%d more loading in the background",
      mods.loaded, mods.already, mods.not_applicable, mods.failed,
      static_cast<long long>(mods.elapsed.count()), mods.deferred);

  // 3. Disks.
  DiskLayout disks = find_disks(std::chrono::seconds(10));
  for (const std::string& w : disks.warnings) log::warn("disks: %s", w.c_str());
  if (!disks.root) fatal("no disk with an ext4 file system labelled " + std::string(kRootLabel));
  if (!disks.data) log::warn("no data disk: /var/lib/docker will be a tmpfs");
  step("disks: root /dev/%s, data %s", disks.root->c_str(),
       disks.data ? ("/dev/" + *disks.data).c_str() : "none");

  // 4. Root.
  if (auto st = mount_root("/dev/" + *disks.root); !st) {
    // Perhaps a module the root needs wasn't in the boot-critical group: wait for them all.
    log::warn("%s; retrying once every module is loaded", st.error().message().c_str());
    wait_for_background_modules();
    if (auto again = mount_root("/dev/" + *disks.root); !again) fatal(again.error().message());
  }
  if (auto st = switch_root(); !st) fatal(st.error().message());
  step("switched to the root file system");

  // 5. Mounts, sysctl, host name.
  if (auto st = mount_late(); !st) fatal(st.error().message());
  if (auto st = set_sysctl("net.ipv4.ip_forward", "1"); !st)
    log::error("%s", st.error().message().c_str());
  std::string bad_hostname;
  std::string hostname = hostname_from_cmdline(cmdline, &bad_hostname);
  if (!bad_hostname.empty()) {
    log::warn("ignoring invalid %s=%s (want 1-63 of [A-Za-z0-9-]); using %s",
              std::string(kHostnameParam).c_str(), bad_hostname.c_str(), hostname.c_str());
  }
  if (auto st = apply_hostname(hostname); !st)
    log::error("hostname: %s", st.error().message().c_str());
  step("mounts and host name (%s) ready", hostname.c_str());

  // 6. Network, in the background: nothing below waits for an address. The configuration
  // database (over vsock) is read meanwhile; dockerd waits for it.
  std::thread(configure_network, hostname).detach();
  // The port-forwarding tree is mounted alongside, for the hook dockerd runs on `-p`.
  auto db_future = std::async(std::launch::async, [] {
    DbBootConfig db = mount_and_apply_db(std::chrono::seconds(15));
    mount_port_tree(std::chrono::seconds(5));
    return db;
  });
  start_port_forwarder();
  bool proxy_installed = install_userland_proxy();

  // 8 (early). containerd needs nothing more; dockerd needs the data disk.
  Supervisor supervisor;
  // dockerd needs containerd's runtime services only: without the CRI plugin (Kubernetes'
  // interface) containerd starts sooner and stops waking up the idle VM.
  const char* containerd_config = "/run/pinata-containerd.toml";
  if (auto st = write_file_atomic(containerd_config,
                                  "version = 2\n"
                                  "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n");
      !st) {
    log::warn("containerd config: %s", st.error().message().c_str());
  }
  supervisor.start("containerd", {"containerd", "--config", containerd_config});

  // 7. Data disk.
  std::string bad_trim;
  TrimPolicy trim = trim_policy_from_cmdline(cmdline, &bad_trim);
  if (!bad_trim.empty())
    log::warn("%s=%s: expected 'mount' or seconds; using -o discard and fstrim every %d s", std::string(kTrimParam).c_str(),
              bad_trim.c_str(), kDefaultTrimSeconds);
  if (setup_data_disk(disks.data.value_or(""), trim) && trim.fstrim_interval_seconds > 0)
    start_periodic_trim(std::chrono::seconds(trim.fstrim_interval_seconds));

  DbBootConfig db = db_future.get();
  if (db.hostname && *db.hostname != hostname) {
    if (auto st = apply_hostname(*db.hostname); !st)
      log::error("hostname: %s", st.error().message().c_str());
    else
      log::info("db: host name %s", db.hostname->c_str());
  }
  std::vector<std::string> dockerd = dockerd_argv();
  // Published ports: dockerd runs our hook instead of docker-proxy (it also proxies inside the
  // VM, as docker-proxy does, and asks pinata-net for the host side).
  if (proxy_installed) dockerd.push_back(std::string("--userland-proxy-path=") + kUserlandProxyPath);
  dockerd.insert(dockerd.end(), db.dockerd_args.begin(), db.dockerd_args.end());
  supervisor.start("dockerd", dockerd);
  int dockerd_restart_fd = db.mounted ? start_daemon_json_watch() : -1;

  // 9, 11. Host-facing services.
  start_docker_vsock_service(DockerVsockConfig{});
  start_power_button_watch();
  // A root shell on the serial console (`pinata console`; the host side is pinatad's 0600
  // control socket). Restarted when the user exits it. setsid forks (the supervisor made us
  // a process-group leader): -w keeps it waiting, so its exit is the shell's exit.
  supervisor.start("console-shell",
                   {"/bin/sh", "-c",
                    "exec env TERM=linux HOME=/root setsid -w -c /bin/bash --login "
                    "<>/dev/ttyS0 >&0 2>&0"});

  // 10. PID 1 duties until shutdown.
  main_loop(supervisor, signal_fd, dockerd_restart_fd);
}

}  // namespace
}  // namespace pinata::guest

int main(int argc, char** argv) {
  // Multi-call: dockerd runs this binary as its userland proxy (see port_forwarding.h).
  std::string_view self = argc > 0 ? argv[0] : "";
  if (self.substr(self.rfind('/') + 1) == "pinata-proxy") return pinata::ports::userland_proxy_main(argc, argv);
  if (::getpid() != 1) {
    std::fprintf(stderr,
                 "pinata-init: this is the init (PID 1) of the pinata guest VM; it mounts, "
                 "formats disks and powers off, so it refuses to run as PID %d\n",
                 static_cast<int>(::getpid()));
    return 2;
  }
  pinata::guest::run();
}
