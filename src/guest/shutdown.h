// Clean shutdown of the VM, and the trigger other threads use to ask for it.
#pragma once

#include <string>

#include "guest/supervisor.h"

namespace pinata::guest {

// Thread-safe: the first reason wins. The main loop polls trigger_fd().
void request_shutdown(const std::string& reason);
// An eventfd that becomes readable once a shutdown was requested (created on first use).
int shutdown_trigger_fd();
std::string shutdown_reason();

// Stops dockerd, then containerd, then every other process; syncs, unmounts the data disk
// and powers off. Never returns.
[[noreturn]] void shutdown_vm(Supervisor& supervisor);

// For fatal boot errors: sync and power off (PID 1 must never exit). Never returns.
[[noreturn]] void power_off(const char* why);

}  // namespace pinata::guest
