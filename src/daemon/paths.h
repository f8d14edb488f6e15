// Where pinata keeps its state: everything lives under $PINATA_HOME (default ~/.pinata).
#pragma once

#include <string>

#include "base/result.h"

namespace pinata {

struct Paths {
  std::string home;          // $PINATA_HOME
  std::string docker_sock;   // the host's Docker API socket
  std::string control_sock;  // pinata <-> pinatad
  std::string qmp_sock;      // QEMU monitor (QMP)
  std::string vsock_dir;     // pinata-vsock's socket directory (hyperkit layout)
  std::string vsock_vhost;   // pinata-vsock's vhost-user socket (QEMU connects to it)
  std::string blk_vhost;     // pinata-blk's vhost-user socket (the data disk)
  std::string net_vhost;     // pinata-net's vhost-user socket (network + port forwarding)
  std::string blk_control;   // pinata-blk's control socket (`pinata disk compact` while running)
  std::string disk;          // Docker.qcow2
  std::string console_ring;  // bounded copy of everything the serial console printed
  std::string log_dir;
  std::string daemon_log;    // pinatad's log
  std::string vm_args;       // the exact hypervisor command line
  std::string pid_file;      // pinatad's pid
  std::string lock_file;     // held (flock) by the running pinatad
  std::string settings;      // key=value settings (memory, ncpu)
  std::string guest_dir;     // guest image (kernel, initrd, root image)

  // From the environment: PINATA_HOME (else $HOME/.pinata), PINATA_GUEST_DIR (else
  // $PINATA_CACHE/guest, PINATA_CACHE defaulting to ${XDG_CACHE_HOME:-$HOME/.cache}/pinata).
  static Paths from_env();
  static Paths for_home(const std::string& home, const std::string& guest_dir);
};

// Creates $PINATA_HOME (0700) and checks that it can be written: a clear error otherwise.
Status ensure_home_writable(const Paths& paths);

}  // namespace pinata
