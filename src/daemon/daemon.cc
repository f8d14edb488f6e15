#include "daemon/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "base/io.h"
#include "base/log.h"
#include "daemon/guest_image.h"
#include "daemon/qmp.h"
#include "daemon/settings.h"
#include "daemon/vm_builder.h"

extern char** environ;

namespace pinata {
namespace {

constexpr auto kPingInterval = std::chrono::milliseconds(500);
constexpr auto kHealthInterval = std::chrono::seconds(10);
constexpr const char* kDiskSize = "64G";

// Runs a command, returning its exit status (stdout/stderr inherited).
Result<int> run_command(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ);
  if (rc != 0) return fail(Error::from_errno("cannot run " + argv[0], rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return fail_errno("waitpid");
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

}  // namespace

const char* vm_state_name(VmState s) {
  switch (s) {
    case VmState::kStarting: return "starting";
    case VmState::kRunning: return "running";
    case VmState::kStopping: return "stopping";
    case VmState::kStopped: return "stopped";
    case VmState::kFailed: return "failed";
  }
  return "unknown";
}

Daemon::Daemon(Paths paths) : paths_(std::move(paths)), ring_(paths_.console_ring) {}

Daemon::~Daemon() = default;

Status Daemon::acquire_lock() {
  lock_fd_.reset(::open(paths_.lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_fd_) return fail_errno("cannot open " + paths_.lock_file);
  if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return fail(ErrorKind::kAlreadyExists, "pinatad is already running for " + paths_.home);
    }
    return fail_errno("flock " + paths_.lock_file);
  }
  // Whatever pid file is there is stale: the lock proves no pinatad owns this home.
  auto old = read_file(paths_.pid_file, 64);
  if (old) log::warn("removing stale pid file %s (pid %s)", paths_.pid_file.c_str(), old->c_str());
  TRY(write_file_atomic(paths_.pid_file, std::to_string(getpid()), 0644));
  return {};
}

Status Daemon::ensure_disk() {
  if (::access(paths_.disk.c_str(), F_OK) == 0) return {};
  log::info("creating %s (%s, qcow2)", paths_.disk.c_str(), kDiskSize);
  TRY_ASSIGN(int rc, run_command({"qemu-img", "create", "-q", "-f", "qcow2", paths_.disk,
                                  kDiskSize}));
  if (rc != 0) {
    ::unlink(paths_.disk.c_str());
    return fail(ErrorKind::kIo, "qemu-img create " + paths_.disk + " failed (exit " +
                                    std::to_string(rc) + ")");
  }
  ::chmod(paths_.disk.c_str(), 0600);
  return {};
}

// The database's VM settings (memory, ncpu, hostname) over the settings file's.
static void apply_database(VmSettings& settings, const db::DbSettings& db) {
  settings.memory_gib = db.memory_gib;
  settings.ncpu = db.ncpu;
  settings.hostname = db.hostname;
}

Status Daemon::prepare() {
  started_at_ = std::chrono::steady_clock::now();
  TRY(ensure_home_writable(paths_));
  TRY(acquire_lock());
  TRY_ASSIGN(VmSettings settings, load_settings(paths_.settings));
  auto config = ConfigService::open(paths_.home);
  if (!config) return fail(config.error().context("configuration database"));
  config_ = std::move(*config);
  apply_database(settings, config_->settings());
  external_bind_ = config_->settings().external_bind;
  slirp_docker_ = config_->settings().slirp_docker;
  slirp_host_ = config_->settings().slirp_host;
  auto image = verify_guest_image(paths_.guest_dir);
  if (!image) return fail(image.error());
  log::info("guest image %s verified", paths_.guest_dir.c_str());
  const char* forced = std::getenv("PINATA_ACCEL");
  accel_ = choose_accel(forced ? forced : "");
  log::info("%s", accel_.reason.c_str());
  TRY(ensure_disk());
  TRY(make_dirs(paths_.vsock_dir, 0700));
  guest_ = std::make_unique<GuestLink>(vsock_forward_path(paths_.vsock_dir, kDockerVsockPort));
  image_ = *image;
  forwards_ = settings.guest_forwards;
  TRY(configure_vm(settings));
  TRY(ring_.open());
  TRY_ASSIGN(control_fd_, unix_listen(paths_.control_sock, 0600));
  return {};
}

Status Daemon::configure_vm(const VmSettings& settings) {
  VmConfig config;
  config.hostname = settings.hostname;
  config.accel = accel_.accel;
  config.memory_mib = settings.memory_gib * 1024;
  config.ncpu = settings.ncpu;
  config.kernel = image_.kernel;
  config.initrd = image_.initrd;
  config.root_image = image_.root;
  config.data_disk = paths_.disk;
  config.qmp_socket = paths_.qmp_sock;
  config.vsock_socket = paths_.vsock_vhost;
  if (settings.disk_driver == VmSettings::DiskDriver::kPinataBlk) config.data_disk_socket = paths_.blk_vhost;
  if (settings.net_driver == VmSettings::NetDriver::kPinataNet) config.net_socket = paths_.net_vhost;
  if (!settings.trim.empty()) config.extra_cmdline.push_back("pinata.trim=" + settings.trim);
  config.tsc_khz = host_tsc_khz();
  argv_ = QemuBuilder(config).argv();
  TRY(write_file_atomic(paths_.vm_args, shell_join(argv_) + "\n", 0600));
  settings_ = settings;
  log::info("VM: %d MiB, %d CPUs, accel %s; command line in %s", config.memory_mib, config.ncpu,
            accel_name(accel_.accel), paths_.vm_args.c_str());
  return {};
}

// Starts a child that dies with pinatad (PR_SET_PDEATHSIG), whatever kills pinatad, with
// signals unblocked, `stdio_fd` as its stdin and stdout (/dev/null and pinatad's log when
// -1), and stderr left as pinatad's log.
static Result<pid_t> spawn_supervised(const std::vector<std::string>& argv, int stdio_fd) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (stdio_fd >= 0) {
      ::dup2(stdio_fd, 0);
      ::dup2(stdio_fd, 1);
    } else {
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
    }
    ::execvp(args[0], args.data());
    dprintf(2, "cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  return pid;
}

Result<pid_t> Daemon::spawn_backend(const std::string& name, const std::vector<std::string>& argv,
                                    const std::string& socket) {
  ::unlink(socket.c_str());
  TRY_ASSIGN(pid_t pid, spawn_supervised(argv, -1));
  // QEMU needs the backend's socket when it starts.
  for (int i = 0; i < 400; i++) {
    if (::access(socket.c_str(), F_OK) == 0) {
      log::info("%s started (pid %d): %s", name.c_str(), pid, socket.c_str());
      return pid;
    }
    int status;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      return fail(ErrorKind::kIo, name + " (" + argv[0] + ") exited at start (" +
                                      describe_exit(status) + "); see " + paths_.daemon_log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ::kill(pid, SIGKILL);
  return fail(ErrorKind::kTimeout, name + " did not create " + socket);
}

Status Daemon::spawn_backends(const std::vector<uint32_t>& forwards) {
  std::vector<std::string> vsock = {find_program("pinata-vsock", "vsock"), "--socket",
                                    paths_.vsock_vhost, "--dir", paths_.vsock_dir, "--cid", "3"};
  for (uint32_t port : forwards) vsock.insert(vsock.end(), {"--forward", std::to_string(port)});
  TRY_ASSIGN(vsock_pid_, spawn_backend("pinata-vsock", vsock, paths_.vsock_vhost));
  std::thread([this] { watch_backend("pinata-vsock", vsock_pid_); }).detach();
  // The network and port forwarding. Published ports bind 127.0.0.1 unless the database's
  // `network` setting has external-bind=true.
  if (settings_.net_driver == VmSettings::NetDriver::kPinataNet) {
    std::vector<std::string> net = {find_program("pinata-net", "net"), "--socket", paths_.net_vhost,
                                    "--vsock-dir", paths_.vsock_dir, "--mtu", "65520"};
    if (external_bind_) net.push_back("--external-bind");
    // Addresses from the database (slirp/docker, slirp/host): a /24 around the guest's
    // address, and the guest's DNS server at .7 of it (.8 if that is taken).
    size_t dot = slirp_docker_.rfind('.');
    if (!slirp_docker_.empty() && !slirp_host_.empty() && dot != std::string::npos) {
      std::string prefix = slirp_docker_.substr(0, dot + 1);
      std::string dns = prefix + "7";
      if (dns == slirp_docker_ || dns == slirp_host_) dns = prefix + "8";
      if (dns == slirp_docker_ || dns == slirp_host_) dns = prefix + "9";
      net.insert(net.end(), {"--net", prefix + "0/24", "--guest-ip", slirp_docker_, "--host-ip",
                             slirp_host_, "--dns-ip", dns});
    }
    TRY_ASSIGN(net_pid_, spawn_backend("pinata-net", net, paths_.net_vhost));
    std::thread([this] { watch_backend("pinata-net", net_pid_); }).detach();
  }
  // QEMU opens the image itself (settings disk_driver=qemu, for comparisons).
  if (settings_.disk_driver == VmSettings::DiskDriver::kQemu) return {};
  // The data disk, through our qcow2 library. A fixed serial: the guest can tell it apart.
  std::vector<std::string> blk = {find_program("pinata-blk", "blk"), "--socket", paths_.blk_vhost,
                                  "--image", paths_.disk, "--format", "qcow2", "--queues", "1",
                                  "--serial", "pinata-docker", "--control", paths_.blk_control};
  TRY_ASSIGN(blk_pid_, spawn_backend("pinata-blk", blk, paths_.blk_vhost));
  std::thread([this] { watch_backend("pinata-blk", blk_pid_); }).detach();
  return {};
}

void Daemon::watch_backend(const std::string& name, pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return;
  }
  std::lock_guard lock(mutex_);
  if (qemu_exited_ || stop_requested_) return;
  // Without its device backends the VM has no Docker API or no disk: fail loudly rather than
  // limp on.
  log::error("%s exited unexpectedly (%s): stopping the VM", name.c_str(),
             describe_exit(status).c_str());
  failure_ = name + " exited unexpectedly (" + describe_exit(status) + ")";
  ::kill(qemu_pid_, SIGKILL);
}

Status Daemon::spawn_hypervisor() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return fail_errno("socketpair");
  console_fd_.reset(sv[0]);
  // The serial console is QEMU's stdio.
  auto pid = spawn_supervised(argv_, sv[1]);
  ::close(sv[1]);
  if (!pid) return fail(pid.error());
  {
    std::lock_guard lock(mutex_);
    qemu_pid_ = *pid;
  }
  log::info("hypervisor started (pid %d)", qemu_pid_);
  return {};
}

void Daemon::set_state(VmState s, const std::string& reason) {
  std::lock_guard lock(mutex_);
  state_ = s;
  if (!reason.empty()) failure_ = reason;
  changed_.notify_all();
}

void Daemon::console_loop() {
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(console_fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::string_view data(buf, static_cast<size_t>(n));
    auto st = ring_.append(data);
    if (!st) log::warn("console ring: %s", st.error().message().c_str());
    std::lock_guard lock(mutex_);
    for (auto it = console_clients_.begin(); it != console_clients_.end();) {
      ssize_t w = ::send(*it, buf, static_cast<size_t>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w != n) {
        // A client that can't keep up (or is gone) is detached rather than stalling the VM.
        ::shutdown(*it, SHUT_RDWR);
        it = console_clients_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void Daemon::health_loop(uint64_t gen) {
  bool docker_listening = false;
  int failures = 0;
  auto current = [&] {
    return generation_ == gen && (state_ == VmState::kStarting || state_ == VmState::kRunning);
  };
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (!current()) return;
    }
    bool starting;
    {
      std::lock_guard lock(mutex_);
      starting = state_ == VmState::kStarting;
    }
    // While booting, a forwarded connection can hang until the guest has an address: give
    // up quickly and try again rather than notice readiness late.
    auto ok = guest_->ping_docker(starting ? std::chrono::seconds(2) : std::chrono::seconds(5));
    bool responding = ok && *ok;
    std::unique_lock lock(mutex_);
    if (!current()) return;
    if (responding) {
      failures = 0;
      if (!docker_responding_) log::info("Docker is responding");
      docker_responding_ = true;
      if (state_ == VmState::kStarting) {
        auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_);
        log::info("ready: Docker responded %.1f s after start", secs.count());
        state_ = VmState::kRunning;
        changed_.notify_all();
      }
      if (!docker_listening) {
        // docker.sock is pinata-vsock's forward of the guest's port 2376: no extra hop.
        ::unlink(paths_.docker_sock.c_str());
        if (::symlink(guest_->docker_forward().c_str(), paths_.docker_sock.c_str()) != 0) {
          log::error("cannot create %s: %s", paths_.docker_sock.c_str(), std::strerror(errno));
        } else {
          log::info("serving the Docker API on %s", paths_.docker_sock.c_str());
        }
        docker_listening = true;
      }
      changed_.wait_for(lock, kHealthInterval);
    } else if (state_ == VmState::kStarting) {
      log::info("Docker is not responding: waiting 0.5s");
      changed_.wait_for(lock, kPingInterval);
    } else {
      if (++failures == 3 && docker_responding_) {
        docker_responding_ = false;
        log::warn("Docker is not responding");
      }
      changed_.wait_for(lock, docker_responding_ ? kHealthInterval : kPingInterval);
    }
  }
}

std::string Daemon::status_line() {
  std::lock_guard lock(mutex_);
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::steady_clock::now() - started_at_);
  return std::string("state=") + vm_state_name(state_) + " pid=" + std::to_string(getpid()) +
         " hypervisor_pid=" + std::to_string(qemu_pid_) + " accel=" + accel_name(accel_.accel) +
         " docker=" + (docker_responding_ ? "responding" : "not-responding") +
         " uptime=" + std::to_string(uptime.count()) + "s";
}

void Daemon::handle_control(UniqueFd client) {
  ::fcntl(client.get(), F_SETFL, 0);
  struct timeval tv = {10, 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto line = read_line(client.get(), 256);
  if (!line) return;
  tv = {0, 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string cmd = *line, arg;
  if (size_t sp = cmd.find(' '); sp != std::string::npos) {
    arg = cmd.substr(sp + 1);
    cmd.resize(sp);
  }
  auto reply = [&](const std::string& text) { (void)write_all(client.get(), text); };
  if (cmd == "status") {
    reply(status_line() + "\n");
  } else if (cmd == "wait") {
    int timeout_s = std::max(1, std::atoi(arg.c_str()));
    reply("accel " + accel_.reason + "\n");
    std::unique_lock lock(mutex_);
    bool done = changed_.wait_for(lock, std::chrono::seconds(timeout_s),
                                  [&] { return state_ != VmState::kStarting; });
    VmState s = state_;
    std::string why = failure_;
    lock.unlock();
    if (!done) {
      reply("timeout\n");
    } else if (s == VmState::kRunning) {
      reply("ready\n");
    } else {
      reply("failed " + (why.empty() ? std::string("the VM is ") + vm_state_name(s) : why) + "\n");
    }
  } else if (cmd == "stop") {
    int timeout_s = arg.empty() ? 30 : std::max(1, std::atoi(arg.c_str()));
    reply("stopping\n");
    stop(timeout_s);
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return state_ == VmState::kStopped || state_ == VmState::kFailed; });
    bool killed = killed_;
    lock.unlock();
    reply(killed ? "stopped killed\n" : "stopped clean\n");
  } else if (cmd == "console") {
    reply("ok\n");
    int fd = client.get();
    {
      std::lock_guard lock(mutex_);
      console_clients_.push_back(fd);
    }
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (!write_all(console_fd_.get(), std::string_view(buf, static_cast<size_t>(n)))) break;
    }
    std::lock_guard lock(mutex_);
    std::erase(console_clients_, fd);
  } else {
    reply("error unknown command '" + cmd + "'\n");
  }
}

void Daemon::control_loop() {
  for (;;) {
    int c = ::accept4(control_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        std::this_thread::sleep_for(kPingInterval);
        continue;
      }
      return;
    }
    std::thread([this, client = UniqueFd(c)]() mutable { handle_control(std::move(client)); })
        .detach();
  }
}

void Daemon::stop(int timeout_s) {
  {
    std::lock_guard lock(mutex_);
    if (stop_requested_ || qemu_exited_) return;
    stop_requested_ = true;
    bool restarting = state_ == VmState::kStopping;  // restart_vm() is powering it down
    state_ = VmState::kStopping;
    changed_.notify_all();
    if (restarting) {
      log::info("stopping: the VM is already powering down for a restart");
      return;
    }
  }
  log::info("stopping: ACPI power-down to the guest (timeout %d s)", timeout_s);
  auto acpi = qmp_execute(paths_.qmp_sock, "system_powerdown");
  if (!acpi) log::warn("ACPI power-down failed: %s", acpi.error().message().c_str());
  std::unique_lock lock(mutex_);
  bool exited = changed_.wait_for(lock, std::chrono::seconds(timeout_s),
                                  [&] { return qemu_exited_.load(); });
  if (!exited) {
    log::warn("guest did not shut down within %d s: killing the hypervisor", timeout_s);
    killed_ = true;
    ::kill(qemu_pid_, SIGKILL);
  }
}

void Daemon::restart_vm(const std::string& why) {
  pid_t pid;
  {
    std::lock_guard lock(mutex_);
    if (restart_requested_) {
      log::info("%s: the restart under way boots with it", why.c_str());
      return;
    }
    if (stop_requested_ || qemu_exited_) return;
    restart_requested_ = true;
    state_ = VmState::kStopping;
    docker_responding_ = false;
    pid = qemu_pid_;
    changed_.notify_all();
  }
  log::info("restarting the VM: %s", why.c_str());
  auto acpi = qmp_execute(paths_.qmp_sock, "system_powerdown");
  if (!acpi) log::warn("ACPI power-down failed: %s", acpi.error().message().c_str());
  std::unique_lock lock(mutex_);
  bool exited = changed_.wait_for(lock, std::chrono::seconds(30),
                                  [&] { return qemu_exited_.load() || qemu_pid_ != pid; });
  if (!exited) {
    log::warn("guest did not shut down within 30 s: killing the hypervisor");
    ::kill(pid, SIGKILL);
  }
}

void Daemon::on_settings_change(const db::DbSettings& before, const db::DbSettings& now) {
  if (before.daemon_json != now.daemon_json) {
    log::info("database: daemon.json changed: the guest restarts dockerd");
  }
  std::vector<std::string> changes;
  if (before.memory_gib != now.memory_gib) {
    changes.push_back("memory " + std::to_string(before.memory_gib) + " -> " +
                      std::to_string(now.memory_gib) + " GiB");
  }
  if (before.ncpu != now.ncpu) {
    changes.push_back("ncpu " + std::to_string(before.ncpu) + " -> " + std::to_string(now.ncpu));
  }
  if (before.hostname != now.hostname) {
    changes.push_back("hostname " + before.hostname + " -> " + now.hostname);
  }
  if (changes.empty()) return;
  std::string why;
  for (const std::string& c : changes) why += (why.empty() ? "" : ", ") + c;
  VmSettings next = settings_;
  apply_database(next, now);
  {
    std::lock_guard lock(mutex_);
    if (stop_requested_ || qemu_exited_) return;
  }
  if (auto st = configure_vm(next); !st) {
    log::error("database: %s changed but the VM cannot be reconfigured: %s", why.c_str(),
               st.error().message().c_str());
    return;
  }
  std::thread([this, why] { restart_vm(why + " (database)"); }).detach();
}

void Daemon::signal_loop() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  for (;;) {
    int sig = 0;
    if (::sigwait(&set, &sig) != 0) continue;
    log::info("received %s", strsignal(sig));
    std::thread([this] { stop(30); }).detach();
  }
}

void Daemon::cleanup_files() {
  ::unlink(paths_.docker_sock.c_str());
  ::unlink(paths_.control_sock.c_str());
  ::unlink(paths_.qmp_sock.c_str());
  ::unlink(paths_.pid_file.c_str());
  ::unlink(paths_.blk_control.c_str());
  // pinata-blk flushes the image and marks it clean on the way out: give it time.
  for (auto [pid, wait_ms] :
       {std::pair{blk_pid_, 10000}, std::pair{vsock_pid_, 2000}, std::pair{net_pid_, 2000}}) {
    if (pid <= 0 || ::kill(pid, SIGTERM) != 0) continue;
    for (int waited = 0; waited < wait_ms && ::kill(pid, 0) == 0; waited += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

int Daemon::run() {
  config_->on_change(
      [this](const db::DbSettings& before, const db::DbSettings& now) {
        on_settings_change(before, now);
      });
  // The guest's connect to host port 564 arrives here (pinata-vsock's guest -> host socket).
  auto spawned = config_->serve(vsock_forward_path(paths_.vsock_dir, kDbVsockPort, /*cid=*/2));
  if (spawned) spawned = spawn_backends(forwards_);
  if (!spawned) {
    log::error("%s", spawned.error().message().c_str());
    set_state(VmState::kFailed, spawned.error().message());
    cleanup_files();
    return 1;
  }
  std::thread([this] { control_loop(); }).detach();
  std::thread([this] { signal_loop(); }).detach();

  int code = 0;
  for (;;) {
    if (auto st = spawn_hypervisor(); !st) {
      log::error("%s", st.error().message().c_str());
      set_state(VmState::kFailed, st.error().message());
      code = 1;
      break;
    }
    uint64_t gen;
    {
      std::lock_guard lock(mutex_);
      gen = ++generation_;
      changed_.notify_all();  // a restart_vm() waiting for the old VM to go
    }
    std::thread console([this] { console_loop(); });
    std::thread([this, gen] { health_loop(gen); }).detach();

    int status = 0;
    while (::waitpid(qemu_pid_, &status, 0) < 0) {
      if (errno != EINTR) break;
    }
    console.join();  // QEMU's end of the console is closed: EOF
    std::string how = describe_exit(status);
    bool requested, restart;
    VmState previous;
    {
      std::lock_guard lock(mutex_);
      requested = stop_requested_;
      restart = restart_requested_ && !stop_requested_;
      previous = state_;
      qemu_exited_ = true;
      changed_.notify_all();
    }
    if (restart) {
      log::info("VM stopped for a restart (%s)", how.c_str());
      {
        std::lock_guard lock(mutex_);
        restart_requested_ = false;
        qemu_exited_ = false;
        killed_ = false;
        failure_.clear();
        docker_responding_ = false;
        state_ = VmState::kStarting;
        started_at_ = std::chrono::steady_clock::now();
        changed_.notify_all();
      }
      continue;
    }
    if (requested) {
      log::info("VM stopped (%s)%s", how.c_str(), killed_ ? " after a forced kill" : "");
      set_state(VmState::kStopped);
    } else if (previous == VmState::kStarting) {
      std::string why = "the VM exited before Docker responded (" + how + ")";
      if (!failure_.empty()) why = failure_;
      log::error("%s", why.c_str());
      set_state(VmState::kFailed, why);
      code = 1;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      log::info("the guest powered off");
      set_state(VmState::kStopped);
    } else {
      std::string why = "the hypervisor exited unexpectedly (" + how + ")";
      log::error("%s", why.c_str());
      set_state(VmState::kFailed, why);
      code = 1;
    }
    break;
  }
  cleanup_files();
  // Give control clients waiting on the state a moment to send their last line.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  return code;
}

}  // namespace pinata
