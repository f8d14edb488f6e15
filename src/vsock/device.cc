#include "vsock/device.h"

#include <cstring>

#include "base/log.h"
#include "vhost/message.h"
#include "vhost/virtqueue.h"

namespace pinata::vsock {

using vhost::bit;

Device::Device(Muxer& muxer) : muxer_(muxer), scratch_(kMaxRxPayload) {
  muxer_.set_rx_notify([this] { process_rx(); });
}

uint64_t Device::features() const {
  return bit(vhost::VIRTIO_F_VERSION_1) | bit(vhost::VIRTIO_RING_F_EVENT_IDX) |
         bit(vhost::VIRTIO_RING_F_INDIRECT_DESC);
}

uint64_t Device::protocol_features() const { return bit(vhost::PROTOCOL_F_CONFIG); }

Status Device::read_config(uint32_t offset, std::span<uint8_t> out) {
  uint8_t config[8];
  uint64_t cid = muxer_.config().guest_cid;
  for (int i = 0; i < 8; i++) config[i] = static_cast<uint8_t>(cid >> (8 * i));
  if (offset > sizeof config || out.size() > sizeof config - offset) {
    return fail(ErrorKind::kInvalidInput, "config read past the 8-byte guest_cid");
  }
  std::memcpy(out.data(), config + offset, out.size());
  return {};
}

void Device::update_active() { muxer_.set_active(rx_ != nullptr && tx_ != nullptr); }

void Device::queue_ready(uint32_t index, vhost::Virtqueue& queue, int) {
  if (index == kRxQueue) rx_ = &queue;
  if (index == kTxQueue) tx_ = &queue;
  update_active();
}

void Device::queue_stopped(uint32_t index, vhost::Virtqueue& queue) {
  if (index == kRxQueue) {
    if (held_rx_) {
      // Give the buffer back rather than lose it across a restart; a used length shorter
      // than a header is dropped (and refilled) by the driver.
      (void)queue.add_used(*held_rx_, 0);
      held_rx_.reset();
      queue.notify();
    }
    rx_ = nullptr;
  }
  if (index == kTxQueue) tx_ = nullptr;
  update_active();  // a stopped queue means the driver is gone: connections are closed
}

void Device::reset() {
  held_rx_.reset();
  rx_ = tx_ = nullptr;
  muxer_.set_active(false);
}

void Device::handle_kick(uint32_t index, vhost::Virtqueue&) {
  if (index == kTxQueue) process_tx();
  process_rx();  // RX buffers arrived, or TX produced replies
}

void Device::process_tx() {
  if (!tx_) return;
  const uint64_t cid = muxer_.config().guest_cid;
  bool any = false;
  while (auto chain = tx_->pop()) {
    any = true;
    vhost::Reader in(*chain);
    uint8_t raw[kHeaderSize];
    if (!in.read(raw, sizeof raw)) {
      stats_.dropped++;
      log_.warn("vsock: dropped a TX chain of %zu bytes: shorter than a header",
                chain->readable_bytes());
      (void)tx_->add_used(*chain, 0);
      continue;
    }
    Header h = *decode_header(raw);
    Verdict v = check_guest_packet(h, cid, in.available());
    if (v.disposition != Disposition::kAccept) {
      log_.warn("vsock: guest %s %u -> %llu:%u (len %u): %s; %s", op_name(h.op), h.src_port,
                static_cast<unsigned long long>(h.dst_cid), h.dst_port, h.len, v.reason,
                v.disposition == Disposition::kReset ? "RST" : "dropped");
      stats_.dropped++;
      if (v.disposition == Disposition::kReset) muxer_.reply_reset(h);
      (void)tx_->add_used(*chain, 0);
      continue;
    }
    stats_.tx_packets++;
    std::span<const uint8_t> payload;
    // A len beyond our buffer can only be a credit violation; the connection resets on the
    // header alone, so don't copy it.
    if (h.op == VIRTIO_VSOCK_OP_RW && h.len > 0 && h.len <= muxer_.config().buf_alloc) {
      payload_.resize(h.len);
      if (in.read(payload_.data(), h.len)) payload = payload_;
    }
    muxer_.on_guest_packet(h, payload);
    (void)tx_->add_used(*chain, 0);
  }
  if (any) tx_->notify();
}

void Device::process_rx() {
  if (!rx_ || in_rx_) return;
  in_rx_ = true;
  bool used = false;
  while (muxer_.has_rx_work()) {
    std::optional<vhost::DescriptorChain> chain = std::move(held_rx_);
    held_rx_.reset();
    if (!chain) chain = rx_->pop();
    if (!chain) break;
    vhost::Writer out(*chain);
    if (out.available() < kHeaderSize) {
      log_.warn("vsock: RX buffer of %zu bytes is smaller than a header; returned empty",
                out.available());
      (void)rx_->add_used(*chain, 0);
      used = true;
      continue;
    }
    size_t space = std::min(out.available() - kHeaderSize, kMaxRxPayload);
    Header h;
    if (!muxer_.next_rx_packet(h, std::span<uint8_t>(scratch_.data(), space))) {
      held_rx_ = std::move(chain);
      break;
    }
    if (h.op != VIRTIO_VSOCK_OP_RW) h.len = 0;
    auto wire = encode_header(h);
    (void)out.write(wire.data(), wire.size());
    if (h.len > 0) (void)out.write(scratch_.data(), h.len);
    (void)rx_->add_used(*chain, static_cast<uint32_t>(out.bytes_written()));
    used = true;
    stats_.rx_packets++;
    if (h.op == VIRTIO_VSOCK_OP_RST) stats_.resets_sent++;
  }
  if (used) rx_->notify();
  in_rx_ = false;
}

}  // namespace pinata::vsock
