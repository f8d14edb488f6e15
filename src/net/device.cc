#include "net/device.h"

#include <algorithm>
#include <cstring>

#include "vhost/message.h"
#include "vhost/virtqueue.h"

namespace pinata::net {

using vhost::bit;

Device::Device(DeviceOptions options) : options_(options) {
  set_mtu(options_.mtu);
  initial_state();
}

void Device::set_mtu(uint32_t mtu) { options_.mtu = std::clamp(mtu, kMinMtu, kMaxMtu); }

void Device::initial_state() {
  acked_ = 0;
  hdr_size_ = kNetHdrSize;
  mergeable_ = false;
  guest_csum_ = false;
}

uint64_t Device::features() const {
  // No TSO/UFO in either direction: libslirp neither produces nor accepts super-frames, and
  // with a 64 KiB MTU the guest already sends and receives large packets without them.
  // VIRTIO_NET_F_MAC and the config space stay with the frontend (QEMU 7.2 never asks a
  // vhost-user-net backend for its config; it fills mac/mtu/status itself).
  return bit(vhost::VIRTIO_F_VERSION_1) | bit(vhost::VIRTIO_RING_F_EVENT_IDX) |
         bit(vhost::VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_NET_F_MRG_RXBUF) |
         bit(VIRTIO_NET_F_MTU) | bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM);
}

void Device::set_features(uint64_t acked) {
  acked_ = acked;
  mergeable_ = acked & bit(VIRTIO_NET_F_MRG_RXBUF);
  guest_csum_ = acked & bit(VIRTIO_NET_F_GUEST_CSUM);
  hdr_size_ = (acked & (bit(vhost::VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MRG_RXBUF)))
                  ? kNetHdrSize
                  : kNetHdrLegacySize;
  log::info("net: features acked 0x%llx: %zu-byte header%s%s%s%s", static_cast<unsigned long long>(acked),
            hdr_size_, mergeable_ ? ", mergeable rx buffers" : "",
            (acked & bit(VIRTIO_NET_F_CSUM)) ? ", tx checksum offload" : "",
            guest_csum_ ? ", rx checksum offload" : "",
            (acked & bit(vhost::VIRTIO_RING_F_EVENT_IDX)) ? ", event idx" : "");
}

void Device::queue_ready(uint32_t index, vhost::Virtqueue& queue, int) {
  if (index == kRxQueue) rx_ = &queue;
  if (index == kTxQueue) tx_ = &queue;
}

void Device::queue_stopped(uint32_t index, vhost::Virtqueue& queue) {
  if (index == kRxQueue) {
    // Give held buffers back rather than lose them across a restart; the driver drops a used
    // buffer shorter than a header and posts it again.
    for (auto& chain : held_) (void)queue.add_used(chain, 0);
    if (!held_.empty()) queue.notify();
    held_.clear();
    rx_ = nullptr;
  }
  if (index == kTxQueue) tx_ = nullptr;
}

void Device::reset() {
  held_.clear();
  pending_.clear();
  pending_bytes_ = 0;
  rx_ = tx_ = nullptr;
  initial_state();
  if (network_) network_->reset();
}

void Device::handle_kick(uint32_t index, vhost::Virtqueue&) {
  if (index == kTxQueue) process_tx();
  if (index == kRxQueue) process_rx();
}

void Device::process_tx() {
  if (!tx_) return;
  const size_t max_frame = max_frame_for_mtu(options_.mtu);
  bool began = false;
  while (auto chain = tx_->pop()) {
    vhost::Reader in(*chain);
    uint8_t raw[kNetHdrSize];
    if (!in.read(raw, hdr_size_)) {
      stats_.tx_dropped++;
      log_.warn("net: dropped a TX chain of %zu bytes: shorter than the %zu-byte header",
                chain->readable_bytes(), hdr_size_);
      (void)tx_->add_used(*chain, 0);
      continue;
    }
    const size_t len = in.available();
    if (len > max_frame) {
      // Not copied: a guest may describe up to 4 GiB in one chain.
      stats_.tx_dropped++;
      log_.warn("net: dropped a TX frame of %zu bytes: the MTU %u allows %zu", len,
                options_.mtu, max_frame);
      (void)tx_->add_used(*chain, 0);
      continue;
    }
    tx_frame_.resize(len);
    (void)in.read(tx_frame_.data(), len);
    // The frame is ours now: return the buffer before the network sees the frame.
    (void)tx_->add_used(*chain, 0);
    NetHeader h = decode_net_header({raw, hdr_size_});
    if (const char* why = prepare_tx_frame(h, tx_frame_, max_frame)) {
      stats_.tx_dropped++;
      log_.warn("net: dropped a TX frame of %zu bytes (flags %u gso %u csum_start %u "
                "csum_offset %u): %s",
                len, h.flags, h.gso_type, h.csum_start, h.csum_offset, why);
      continue;
    }
    stats_.tx_frames++;
    stats_.tx_bytes += len;
    if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) stats_.tx_csum_completed++;
    if (intercept_ && intercept_(tx_frame_)) {
      stats_.tx_intercepted++;
      continue;
    }
    if (!network_) continue;
    if (!began) {
      network_->begin_input();
      began = true;
    }
    network_->input(tx_frame_);
  }
  if (began) network_->end_input();
}

void Device::send_to_guest(std::span<const uint8_t> frame) {
  if (rx_ && pending_.empty()) {
    switch (deliver(frame)) {
      case Delivery::kDone:
        rx_->notify();
        return;
      case Delivery::kDropped:
        return;
      case Delivery::kNoBuffers:
        break;
    }
  }
  queue_frame(frame);
}

void Device::queue_frame(std::span<const uint8_t> frame) {
  if (pending_.size() >= kMaxPendingFrames || pending_bytes_ + frame.size() > kMaxPendingBytes) {
    stats_.rx_dropped++;
    log_.warn("net: guest RX queue full (%zu frames, %zu bytes waiting for buffers); frame of "
              "%zu bytes dropped",
              pending_.size(), pending_bytes_, frame.size());
    return;
  }
  pending_.emplace_back(frame.begin(), frame.end());
  pending_bytes_ += frame.size();
  stats_.rx_queued++;
}

void Device::process_rx() {
  if (!rx_) return;
  bool delivered = false;
  while (!pending_.empty()) {
    Delivery d = deliver(pending_.front());
    if (d == Delivery::kNoBuffers) break;
    delivered |= d == Delivery::kDone;
    pending_bytes_ -= pending_.front().size();
    pending_.pop_front();
  }
  if (delivered) rx_->notify();
}

Device::Delivery Device::deliver(std::span<const uint8_t> frame) {
  const size_t need = hdr_size_ + frame.size();
  // Collect chains until they hold the header and the frame: one chain without mergeable
  // buffers, as many as needed (at most the queue size, num_buffers being a u16) with them.
  size_t have = 0;
  for (const auto& c : held_) have += c.writable_bytes();
  const size_t max_chains = mergeable_ ? std::min<size_t>(rx_->size(), 0xffff) : 1;
  while (have < need && held_.size() < max_chains) {
    auto chain = rx_->pop();
    if (!chain) return Delivery::kNoBuffers;
    if (held_.empty() && chain->writable_bytes() < hdr_size_) {
      log_.warn("net: RX buffer of %zu bytes is smaller than the header; returned empty",
                chain->writable_bytes());
      (void)rx_->add_used(*chain, 0);
      rx_->notify();
      continue;
    }
    have += chain->writable_bytes();
    held_.push_back(std::move(*chain));
  }
  if (have < need) {
    // Never fits (the chains stay held for the next frame).
    stats_.rx_dropped++;
    log_.warn("net: RX frame of %zu bytes does not fit %zu bytes of guest buffers%s; dropped",
              frame.size(), have, mergeable_ ? "" : " (no mergeable buffers)");
    return Delivery::kDropped;
  }
  // How many chains the frame takes.
  size_t chains = 0;
  for (size_t left = need; left > 0; chains++) {
    left -= std::min(left, held_[chains].writable_bytes());
  }
  uint8_t raw[kNetHdrSize] = {};
  NetHeader h;
  h.flags = guest_csum_ ? VIRTIO_NET_HDR_F_DATA_VALID : 0;
  h.num_buffers = static_cast<uint16_t>(chains);
  encode_net_header(h, {raw, hdr_size_});
  // Fill every chain first, then publish them back to back, so that the driver (which may be
  // polling the used ring right now) sees the whole frame as soon as it sees its first buffer.
  uint32_t lens[1];
  std::vector<uint32_t> many;
  uint32_t* used_len = lens;
  if (chains > 1) {
    many.resize(chains);
    used_len = many.data();
  }
  size_t off = 0;
  for (size_t i = 0; i < chains; i++) {
    vhost::Writer out(held_[i]);
    if (i == 0) (void)out.write(raw, hdr_size_);
    off += out.write_some(frame.subspan(off));
    used_len[i] = static_cast<uint32_t>(out.bytes_written());
  }
  // One used->idx update for the whole frame: the driver must never see some of its buffers.
  used_elems_.clear();
  for (size_t i = 0; i < chains; i++) used_elems_.push_back({held_[i].head(), used_len[i]});
  (void)rx_->add_used_many(used_elems_);
  held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(chains));
  stats_.rx_frames++;
  stats_.rx_bytes += frame.size();
  stats_.rx_buffers += chains;
  return Delivery::kDone;
}

}  // namespace pinata::net
