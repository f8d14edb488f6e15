// The vhost-user-vsock device: config space (u64 guest_cid) and the RX/TX virtqueues.
//
// QEMU's vhost-user-vsock hands the backend two queues, RX (0) and TX (1); the event queue
// (2) stays in QEMU. TX chains are consumed at once (header checked, payload passed to the
// muxer, chain returned): the guest respects our credit, so no connection can make the TX
// queue wait. RX chains are filled only when the muxer has a packet; when a connection turns
// out to have nothing after all, the popped chain is kept for the next packet.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "base/event_loop.h"
#include "vhost/backend.h"
#include "vhost/descriptor_chain.h"
#include "vsock/muxer.h"

namespace pinata::vsock {

constexpr uint32_t kRxQueue = 0;
constexpr uint32_t kTxQueue = 1;
// The most payload we put in one RX packet (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
constexpr size_t kMaxRxPayload = 64 * 1024;

class Device : public vhost::VhostUserDevice {
 public:
  explicit Device(Muxer& muxer);

  uint64_t features() const override;
  uint64_t protocol_features() const override;
  uint32_t num_queues() const override { return 2; }
  Status read_config(uint32_t offset, std::span<uint8_t> out) override;
  void queue_ready(uint32_t index, vhost::Virtqueue& queue, int kick_fd) override;
  void queue_stopped(uint32_t index, vhost::Virtqueue& queue) override;
  void handle_kick(uint32_t index, vhost::Virtqueue& queue) override;
  void reset() override;

  // Fills RX buffers while the muxer has packets and the guest has buffers.
  void process_rx();
  void process_tx();

  struct Stats {
    uint64_t tx_packets = 0, rx_packets = 0, dropped = 0, resets_sent = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  void update_active();

  Muxer& muxer_;
  vhost::Virtqueue* rx_ = nullptr;
  vhost::Virtqueue* tx_ = nullptr;
  std::optional<vhost::DescriptorChain> held_rx_;
  bool in_rx_ = false;
  std::vector<uint8_t> payload_;  // TX payload (at most buf_alloc bytes)
  std::vector<uint8_t> scratch_;  // RX payload
  log::RateLimitedLog log_;
  Stats stats_;
};

}  // namespace pinata::vsock
