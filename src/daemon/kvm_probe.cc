#include "daemon/kvm_probe.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "base/fd.h"

namespace pinata {
namespace {

// Real-mode (ring 0) guest code: mov ecx, kIterations; l: dec ecx; jnz l; hlt.
constexpr uint32_t kIterations = 100000;  // 200k instructions: ~0.1 ms on VT-x/AMD-V
constexpr double kMaxLoopMs = 20.0;       // an emulated ring 0 (~1.4M insn/s) needs ~140 ms
constexpr uint64_t kCodeAddr = 0x1000;
constexpr size_t kMemSize = 0x10000;

std::string err(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

const char* accel_name(Accel a) { return a == Accel::kKvm ? "kvm" : "tcg"; }

KvmProbeResult probe_kvm(const std::string& device) {
  KvmProbeResult r;
  UniqueFd kvm(::open(device.c_str(), O_RDWR | O_CLOEXEC));
  if (!kvm) {
    r.reason = "cannot open " + device + " (" + std::strerror(errno) + ")";
    return r;
  }
  int version = ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    r.reason = "unexpected KVM API version " + std::to_string(version);
    return r;
  }
  UniqueFd vm(::ioctl(kvm.get(), KVM_CREATE_VM, 0));
  if (!vm) {
    r.reason = err("KVM_CREATE_VM");
    return r;
  }
  void* mem = ::mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    r.reason = err("mmap");
    return r;
  }
  struct Unmap {
    void* p;
    ~Unmap() { ::munmap(p, kMemSize); }
  } unmap{mem};
  const uint8_t code[] = {0x66, 0xB9, kIterations & 0xff, (kIterations >> 8) & 0xff,
                          (kIterations >> 16) & 0xff, (kIterations >> 24) & 0xff,  // mov ecx, N
                          0x66, 0x49,                                              // dec ecx
                          0x75, 0xFC,                                              // jnz -4
                          0xF4};                                                   // hlt
  std::memcpy(static_cast<uint8_t*>(mem) + kCodeAddr, code, sizeof code);

  struct kvm_userspace_memory_region region = {};
  region.slot = 0;
  region.guest_phys_addr = 0;
  region.memory_size = kMemSize;
  region.userspace_addr = reinterpret_cast<uint64_t>(mem);
  if (::ioctl(vm.get(), KVM_SET_USER_MEMORY_REGION, &region) != 0) {
    r.reason = err("KVM_SET_USER_MEMORY_REGION");
    return r;
  }
  UniqueFd vcpu(::ioctl(vm.get(), KVM_CREATE_VCPU, 0));
  if (!vcpu) {
    r.reason = err("KVM_CREATE_VCPU");
    return r;
  }
  int run_size = ::ioctl(kvm.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size <= 0) {
    r.reason = err("KVM_GET_VCPU_MMAP_SIZE");
    return r;
  }
  void* run_map = ::mmap(nullptr, static_cast<size_t>(run_size), PROT_READ | PROT_WRITE,
                         MAP_SHARED, vcpu.get(), 0);
  if (run_map == MAP_FAILED) {
    r.reason = err("mmap kvm_run");
    return r;
  }
  auto* run = static_cast<struct kvm_run*>(run_map);

  struct kvm_sregs sregs;
  if (::ioctl(vcpu.get(), KVM_GET_SREGS, &sregs) != 0) {
    r.reason = err("KVM_GET_SREGS");
    ::munmap(run_map, static_cast<size_t>(run_size));
    return r;
  }
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  struct kvm_regs regs = {};
  regs.rip = kCodeAddr;
  regs.rflags = 0x2;
  if (::ioctl(vcpu.get(), KVM_SET_SREGS, &sregs) != 0 ||
      ::ioctl(vcpu.get(), KVM_SET_REGS, &regs) != 0) {
    r.reason = err("KVM_SET_REGS");
    ::munmap(run_map, static_cast<size_t>(run_size));
    return r;
  }
  auto start = std::chrono::steady_clock::now();
  int rc = ::ioctl(vcpu.get(), KVM_RUN, 0);
  auto elapsed = std::chrono::steady_clock::now() - start;
  r.loop_ms = std::chrono::duration<double, std::milli>(elapsed).count();
  uint32_t exit_reason = run->exit_reason;
  ::munmap(run_map, static_cast<size_t>(run_size));
  if (rc != 0) {
    r.reason = err("KVM_RUN");
    return r;
  }
  if (exit_reason != KVM_EXIT_HLT) {
    r.reason = "probe VM stopped with exit reason " + std::to_string(exit_reason) +
               " instead of HLT";
    return r;
  }
  char buf[160];
  if (r.loop_ms > kMaxLoopMs) {
    snprintf(buf, sizeof buf,
             "a %u-iteration ring-0 loop took %.1f ms (hardware virtualization: <1 ms): "
             "this /dev/kvm emulates guest ring 0",
             kIterations, r.loop_ms);
    r.reason = buf;
    return r;
  }
  snprintf(buf, sizeof buf, "a %u-iteration ring-0 loop took %.2f ms: hardware virtualization",
           kIterations, r.loop_ms);
  r.reason = buf;
  r.usable = true;
  return r;
}

AccelChoice choose_accel(const std::string& forced, const std::string& device) {
  if (forced == "tcg") return {Accel::kTcg, "TCG forced by PINATA_ACCEL=tcg"};
  if (forced == "kvm") return {Accel::kKvm, "KVM forced by PINATA_ACCEL=kvm (probe skipped)"};
  KvmProbeResult probe = probe_kvm(device);
  if (probe.usable) return {Accel::kKvm, "using KVM: " + probe.reason};
  return {Accel::kTcg, "using TCG (software emulation): KVM not usable: " + probe.reason};
}

}  // namespace pinata
