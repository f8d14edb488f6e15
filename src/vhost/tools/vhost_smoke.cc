// vhost_smoke: a trivial vhost-user-vsock backend (guest CID from the command line, 2 queues,
// no traffic) that logs every request it receives. For checking a real frontend's handshake:
//
//   vhost_smoke SOCKET [CID] [SECONDS]
//   qemu-system-x86_64 -M microvm,memory-backend=mem
//     -object memory-backend-memfd,id=mem,size=256M,share=on -accel tcg
//     -chardev socket,id=c,path=SOCKET -device vhost-user-vsock-device,chardev=c -nographic
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "base/event_loop.h"
#include "base/log.h"
#include "vhost/backend.h"
#include "vhost/descriptor_chain.h"

using namespace pinata;
using namespace pinata::vhost;

namespace {

class SmokeVsock : public VhostUserDevice {
 public:
  explicit SmokeVsock(uint64_t cid) : cid_(cid) {}
  uint64_t features() const override {
    return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX);
  }
  uint64_t protocol_features() const override { return bit(PROTOCOL_F_CONFIG); }
  uint32_t num_queues() const override { return 2; }
  Status read_config(uint32_t offset, std::span<uint8_t> out) override {
    uint8_t config[8];
    std::memcpy(config, &cid_, sizeof config);
    if (offset > sizeof config || out.size() > sizeof config - offset) {
      return fail(ErrorKind::kInvalidInput, "config read past 8 bytes");
    }
    std::memcpy(out.data(), config + offset, out.size());
    return {};
  }
  void queue_ready(uint32_t index, Virtqueue& q, int) override {
    log::info("queue %u ready (size %u)", index, q.size());
  }
  void queue_stopped(uint32_t index, Virtqueue&) override { log::info("queue %u stopped", index); }
  void handle_kick(uint32_t index, Virtqueue& q) override {
    // No vsock protocol here: TX buffers are consumed and returned, RX buffers are left.
    if (index != 1) return;
    while (auto chain = q.pop()) (void)q.add_used(*chain, 0);
  }
  void reset() override { log::info("device reset"); }

 private:
  uint64_t cid_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SOCKET [CID] [SECONDS]\n", argv[0]);
    return 2;
  }
  log::init("vhost_smoke", log::Level::kDebug);
  uint64_t cid = argc > 2 ? std::strtoull(argv[2], nullptr, 0) : 3;
  int seconds = argc > 3 ? std::atoi(argv[3]) : 30;
  auto loop = EventLoop::create();
  if (!loop) {
    log::error("%s", loop.error().message().c_str());
    return 1;
  }
  SmokeVsock device(cid);
  VhostUserBackend backend(**loop, device, "smoke-vsock");
  std::map<std::string, int> counts;
  backend.set_observer([&](const Header& h) {
    log::info("request %s (%u) flags 0x%x size %u", request_name(h.request), h.request, h.flags,
              h.size);
    counts[request_name(h.request)]++;
  });
  if (auto s = backend.listen(argv[1]); !s) {
    log::error("%s", s.error().message().c_str());
    return 1;
  }
  std::thread timer([&] {
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    (*loop)->stop();
  });
  (void)(*loop)->run();
  timer.join();
  for (const auto& [name, n] : counts) std::printf("%s %d\n", name.c_str(), n);
  return 0;
}
