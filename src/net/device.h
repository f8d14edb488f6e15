// The vhost-user-net device: an RX (0) and a TX (1) virtqueue between the guest and a
// Network (libslirp in pinata-net, a fake in tests). No control queue, no multiqueue.
//
// TX: each chain is one frame behind a virtio_net_hdr (10 or 12 bytes). The frame is copied
// out of guest memory, checked, its partial checksum completed (VIRTIO_NET_F_CSUM: libslirp
// verifies checksums, so it must see complete ones), offered to the intercept (the DNS
// responder) and otherwise handed to the Network; the chain goes back at once with length 0.
//
// RX: send_to_guest() writes a frame behind a header into the guest's RX buffers. With
// VIRTIO_NET_F_MRG_RXBUF a frame is spread over as many chains as it needs (num_buffers in the
// first header); without it the frame must fit one chain. Chains popped for a frame that does
// not fit yet are held until more buffers arrive. When the guest has posted no buffers, frames
// wait in a bounded queue (kMaxPendingFrames / kMaxPendingBytes); past that they are dropped
// and TCP retransmits: memory never grows without bound. Frames are marked DATA_VALID when
// VIRTIO_NET_F_GUEST_CSUM is negotiated: libslirp's checksums are correct, and the emulated
// guest kernel then skips verifying them.
//
// Everything runs on the backend's event-loop thread (docs/protocols/virtio-net.md).
//
// Hostile-guest rule: a TX chain too short for the header, a frame longer than the MTU allows,
// a GSO request, a checksum offset outside the frame are dropped with a rate-limited log line;
// an RX chain too small for the header is returned empty. Nothing the guest writes can make
// the device crash, block, or buffer without bound.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "base/log.h"
#include "net/frame.h"
#include "vhost/backend.h"
#include "vhost/descriptor_chain.h"

namespace pinata::net {

constexpr uint32_t kRxQueue = 0;
constexpr uint32_t kTxQueue = 1;
// Frames waiting for RX buffers: libslirp keeps at most 128 KiB unacknowledged per TCP
// connection, so this holds the send windows of a dozen busy connections before dropping.
constexpr size_t kMaxPendingFrames = 1024;
constexpr size_t kMaxPendingBytes = 2 << 20;

// Where guest frames go: libslirp (SlirpStack) in pinata-net.
class Network {
 public:
  virtual ~Network() = default;
  // Around each batch of frames from one TX kick (libslirp refreshes its clock before and
  // runs its output queue and timers after).
  virtual void begin_input() {}
  virtual void input(std::span<const uint8_t> frame) = 0;
  virtual void end_input() {}
  // The frontend left or reset the device: forget all connections.
  virtual void reset() {}
};

struct DeviceOptions {
  uint32_t mtu = kDefaultMtu;  // kMinMtu..kMaxMtu; offered as VIRTIO_NET_F_MTU
};

class Device : public vhost::VhostUserDevice {
 public:
  // Returns true if it consumed the frame (the DNS responder); false passes it on.
  using Intercept = std::function<bool(std::span<const uint8_t> frame)>;

  explicit Device(DeviceOptions options = {});

  // The Network receives TX frames; it must outlive the device (or be cleared).
  void set_network(Network* network) { network_ = network; }
  void set_intercept(Intercept intercept) { intercept_ = std::move(intercept); }
  // What VHOST_USER_NET_SET_MTU would set (the vhost library does not forward it yet; the
  // MTU comes from the command line, the same value the frontend's host_mtu has).
  void set_mtu(uint32_t mtu);
  uint32_t mtu() const { return options_.mtu; }

  // ---- VhostUserDevice
  uint64_t features() const override;
  uint32_t num_queues() const override { return 2; }
  void set_features(uint64_t acked) override;
  void queue_ready(uint32_t index, vhost::Virtqueue& queue, int kick_fd) override;
  void queue_stopped(uint32_t index, vhost::Virtqueue& queue) override;
  void handle_kick(uint32_t index, vhost::Virtqueue& queue) override;
  void reset() override;

  // A frame for the guest (loop thread): written into RX buffers now, queued, or dropped
  // (queue full, or no RX queue at all). Never re-enters the Network.
  void send_to_guest(std::span<const uint8_t> frame);
  // Moves queued frames into the guest's RX buffers while there are buffers.
  void process_rx();
  void process_tx();

  size_t header_size() const { return hdr_size_; }
  size_t pending_frames() const { return pending_.size(); }
  size_t pending_bytes() const { return pending_bytes_; }

  struct Stats {
    uint64_t tx_frames = 0, tx_bytes = 0, tx_dropped = 0, tx_csum_completed = 0,
             tx_intercepted = 0;
    uint64_t rx_frames = 0, rx_bytes = 0, rx_buffers = 0, rx_dropped = 0, rx_queued = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  enum class Delivery { kDone, kNoBuffers, kDropped };
  // Writes `frame` into RX chains (held + popped); kNoBuffers leaves popped chains held.
  Delivery deliver(std::span<const uint8_t> frame);
  void queue_frame(std::span<const uint8_t> frame);
  void initial_state();

  DeviceOptions options_;
  Network* network_ = nullptr;
  Intercept intercept_;
  uint64_t acked_ = 0;
  size_t hdr_size_ = kNetHdrSize;
  bool mergeable_ = false;
  bool guest_csum_ = false;
  vhost::Virtqueue* rx_ = nullptr;
  vhost::Virtqueue* tx_ = nullptr;
  std::vector<vhost::DescriptorChain> held_;  // RX chains popped for a frame not yet written
  std::vector<vhost::Virtqueue::UsedElem> used_elems_;  // scratch for add_used_many
  std::deque<std::vector<uint8_t>> pending_;  // frames waiting for RX buffers
  size_t pending_bytes_ = 0;
  std::vector<uint8_t> tx_frame_;
  log::RateLimitedLog log_;
  Stats stats_;
};

}  // namespace pinata::net
