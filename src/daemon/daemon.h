// pinatad: owns one VM. Starts the hypervisor, supervises it, watches Docker's health, serves
// ~/.pinata/docker.sock and the control socket that the `pinata` CLI talks to.
//
// Children: pinata-vsock (the vhost-user vsock backend; docker.sock is a symlink to its
// forward of guest port 2376), pinata-blk (the vhost-user-blk backend of Docker.qcow2) and
// the hypervisor. Threads: main (waits for the hypervisor to exit), a watcher per backend,
// signals, console reader, health check, control accept loop (a thread per control client),
// and the database's (config_service.h).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "daemon/config_service.h"
#include "daemon/console_ring.h"
#include "daemon/guest_image.h"
#include "daemon/guest_link.h"
#include "daemon/kvm_probe.h"
#include "daemon/paths.h"
#include "daemon/settings.h"

namespace pinata {

enum class VmState { kStarting, kRunning, kStopping, kStopped, kFailed };
const char* vm_state_name(VmState s);

class Daemon {
 public:
  explicit Daemon(Paths paths);
  ~Daemon();

  // Everything that can fail before the VM starts: lock, settings, guest image, disk,
  // accelerator. The error is what `pinata start` prints.
  Status prepare();
  // Starts the VM and serves until it has stopped. Returns the process exit code.
  int run();

 private:
  Status acquire_lock();
  Status ensure_disk();
  // pinata-vsock (forwarding `forwards`) and pinata-blk (the data disk), each watched.
  Status spawn_backends(const std::vector<uint32_t>& forwards);
  Result<pid_t> spawn_backend(const std::string& name, const std::vector<std::string>& argv,
                              const std::string& socket);
  // The hypervisor command line for `settings` (argv_, written to vm.args).
  Status configure_vm(const VmSettings& settings);
  Status spawn_hypervisor();
  // Powers the VM down (as stop() does) and boots it again with the current settings.
  void restart_vm(const std::string& why);
  // A new database head: memory/ncpu/hostname changes restart the VM; daemon.json changes are
  // applied by the guest (it restarts dockerd), and logged here.
  void on_settings_change(const db::DbSettings& before, const db::DbSettings& now);
  // If backend `name` dies while the VM runs, the VM is stopped with that reason.
  void watch_backend(const std::string& name, pid_t pid);
  void console_loop();
  // Health of the VM of generation `gen`; returns once that VM is stopping or replaced.
  void health_loop(uint64_t gen);
  void control_loop();
  void handle_control(UniqueFd client);
  void signal_loop();
  // Guest shutdown first, SIGKILL after `timeout_s`. Safe to call more than once.
  void stop(int timeout_s);
  void set_state(VmState s, const std::string& reason = "");
  std::string status_line();
  void cleanup_files();

  Paths paths_;
  UniqueFd lock_fd_;
  UniqueFd control_fd_;
  UniqueFd console_fd_;  // our end of QEMU's stdio (the serial console)
  ConsoleRing ring_;
  std::unique_ptr<GuestLink> guest_;
  AccelChoice accel_;
  GuestImage image_;
  std::unique_ptr<ConfigService> config_;
  VmSettings settings_;  // of the running VM
  std::vector<std::string> argv_;
  std::vector<uint32_t> forwards_;
  pid_t qemu_pid_ = -1;
  pid_t vsock_pid_ = -1;
  pid_t blk_pid_ = -1;
  pid_t net_pid_ = -1;
  bool external_bind_ = false;  // the database's `network` has external-bind=true
  std::string slirp_docker_, slirp_host_;  // the database's slirp/docker and slirp/host
  std::atomic<bool> qemu_exited_{false};
  std::chrono::steady_clock::time_point started_at_;

  std::mutex mutex_;
  std::condition_variable changed_;
  VmState state_ = VmState::kStarting;
  std::string failure_;
  bool docker_responding_ = false;
  bool stop_requested_ = false;
  bool restart_requested_ = false;
  uint64_t generation_ = 0;  // VMs booted so far (restarts included)
  bool killed_ = false;
  std::vector<int> console_clients_;  // guarded by mutex_
};

}  // namespace pinata
