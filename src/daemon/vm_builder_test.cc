#include "daemon/vm_builder.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace pinata {
namespace {

VmConfig sample() {
  VmConfig c;
  c.memory_mib = 2048;
  c.ncpu = 2;
  c.kernel = "/g/vmlinux";
  c.initrd = "/g/initrd.img";
  c.root_image = "/g/root.img";
  c.data_disk = "/h/Docker.qcow2";
  c.qmp_socket = "/h/qmp.sock";
  c.vsock_socket = "/h/vhost-vsock.sock";
  c.tsc_khz = 2096015;
  return c;
}

bool has_pair(const std::vector<std::string>& a, const std::string& k, const std::string& v) {
  for (size_t i = 0; i + 1 < a.size(); i++) {
    if (a[i] == k && a[i + 1] == v) return true;
  }
  return false;
}

TEST(QemuBuilder, UsesSharedMemfdRamForVhostUser) {
  auto argv = QemuBuilder(sample()).argv();
  EXPECT_TRUE(has_pair(argv, "-object", "memory-backend-memfd,id=mem,size=2048M,share=on"));
  EXPECT_TRUE(has_pair(argv, "-M", "microvm,memory-backend=mem,rtc=on"));
  EXPECT_TRUE(has_pair(argv, "-m", "2048M"));
  EXPECT_TRUE(has_pair(argv, "-smp", "2"));
}

TEST(QemuBuilder, ChoosesTheAcceleratorItIsGiven) {
  VmConfig c = sample();
  c.accel = Accel::kTcg;
  EXPECT_TRUE(has_pair(QemuBuilder(c).argv(), "-accel", "tcg,tb-size=64"));
  c.accel = Accel::kKvm;
  auto kvm = QemuBuilder(c).argv();
  EXPECT_TRUE(has_pair(kvm, "-accel", "kvm"));
  EXPECT_TRUE(has_pair(kvm, "-cpu", "host"));
}

TEST(QemuBuilder, AttachesRootReadOnlyAndVsockThroughVhostUserWithNoHostForwards) {
  auto argv = QemuBuilder(sample()).argv();
  EXPECT_TRUE(has_pair(argv, "-drive", "file=/g/root.img,if=none,id=root,format=raw,readonly=on"));
  EXPECT_TRUE(has_pair(argv, "-chardev", "socket,id=vsock,path=/h/vhost-vsock.sock"));
  EXPECT_TRUE(has_pair(argv, "-device", "vhost-user-vsock-device,chardev=vsock"));
  // The Docker API is not on TCP anywhere: no hostfwd on the user network.
  EXPECT_TRUE(has_pair(argv, "-netdev", "user,id=net0"));
  for (const auto& arg : argv) EXPECT_EQ(arg.find("hostfwd"), std::string::npos) << arg;
}

TEST(QemuBuilder, NetworkGoesThroughPinataNetWhenItHasASocket) {
  VmConfig c = sample();
  c.net_socket = "/h/vhost-net.sock";
  c.net_mtu = 65520;
  auto argv = QemuBuilder(c).argv();
  EXPECT_TRUE(has_pair(argv, "-chardev", "socket,id=netc,path=/h/vhost-net.sock"));
  EXPECT_TRUE(has_pair(argv, "-netdev", "vhost-user,id=net0,chardev=netc"));
  EXPECT_TRUE(has_pair(argv, "-device", "virtio-net-device,netdev=net0,host_mtu=65520"));
  EXPECT_FALSE(has_pair(argv, "-netdev", "user,id=net0"));
}

TEST(QemuBuilder, DataDiskGoesThroughPinataBlkWhenItHasASocket) {
  VmConfig c = sample();
  auto qemu_driver = QemuBuilder(c).argv();
  c.data_disk_socket = "/h/vhost-blk.sock";
  auto vhost = QemuBuilder(c).argv();

  EXPECT_TRUE(has_pair(qemu_driver, "-device", "virtio-blk-device,drive=data"));
  EXPECT_TRUE(has_pair(vhost, "-chardev", "socket,id=blk,path=/h/vhost-blk.sock"));
  EXPECT_TRUE(has_pair(vhost, "-device", "vhost-user-blk,chardev=blk,num-queues=1"));
  for (const auto& arg : vhost) EXPECT_EQ(arg.find("Docker.qcow2"), std::string::npos) << arg;
}

TEST(QemuBuilder, KernelCmdlineCarriesConsoleHostnameAndTsc) {
  std::string cmd = QemuBuilder(sample()).kernel_cmdline();
  EXPECT_NE(cmd.find("console=ttyS0"), std::string::npos);
  EXPECT_NE(cmd.find("pinata.hostname=pinata"), std::string::npos);
  EXPECT_NE(cmd.find("tsc_early_khz=2096015"), std::string::npos);
  EXPECT_NE(cmd.find("tsc=reliable"), std::string::npos);
  // No static-key flip for kmem accounting when the first container starts (see vm_builder.cc).
  EXPECT_NE(cmd.find("cgroup.memory=nokmem"), std::string::npos);
}

TEST(QemuBuilder, ShellJoinQuotesWhatNeedsIt) {
  EXPECT_EQ(shell_join({"qemu", "-append", "a b", "it's"}), "qemu -append 'a b' 'it'\\''s'");
}

}  // namespace
}  // namespace pinata
