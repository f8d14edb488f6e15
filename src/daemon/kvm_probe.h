// Decides whether /dev/kvm is real hardware virtualization.
//
// Some hosts expose a /dev/kvm whose guest ring 0 is emulated instruction by instruction
// (about 1000x slower, and unmodified kernels crash in it). The existence of /dev/kvm proves
// nothing: we run a short ring-0 loop in a throwaway VM and time it.
#pragma once

#include <string>

namespace pinata {

enum class Accel { kKvm, kTcg };

struct AccelChoice {
  Accel accel = Accel::kTcg;
  std::string reason;  // one line for the log: why this accelerator
};

struct KvmProbeResult {
  bool usable = false;
  std::string reason;
  double loop_ms = 0;  // time KVM_RUN took for the probe loop (when it ran)
};

// Runs the probe against `device` (normally /dev/kvm).
KvmProbeResult probe_kvm(const std::string& device = "/dev/kvm");

// The accelerator to use: `forced` is "kvm", "tcg" or "" (probe).
AccelChoice choose_accel(const std::string& forced, const std::string& device = "/dev/kvm");

const char* accel_name(Accel a);

}  // namespace pinata
