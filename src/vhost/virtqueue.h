// A split virtqueue (virtio 1.2 §2.7) in guest memory, seen from the device side.
//
// The frontend configures the queue (size, ring addresses as *frontend* virtual addresses,
// the next available index, EVENT_IDX); activate() translates the rings against the current
// GuestMemory. The device then pop()s chains, fills them through Reader/Writer and returns
// them with add_used(); notify() signals the call eventfd when the driver wants an interrupt.
//
// Hostile-guest rule: anything malformed in the rings (avail idx moving by more than the
// queue size, a head or next index out of range, a descriptor outside guest memory, a loop,
// nested indirect tables, a readable descriptor after a writable one, an oversized chain)
// marks the queue broken: one error log line says why, the err eventfd (if any) is signalled
// and pop() returns nothing until the frontend stops and restarts the queue.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/fd.h"
#include "base/result.h"
#include "vhost/descriptor_chain.h"
#include "vhost/guest_memory.h"

namespace pinata::vhost {

// Descriptor flags.
constexpr uint16_t VIRTQ_DESC_F_NEXT = 1;
constexpr uint16_t VIRTQ_DESC_F_WRITE = 2;
constexpr uint16_t VIRTQ_DESC_F_INDIRECT = 4;
// Ring flags.
constexpr uint16_t VRING_AVAIL_F_NO_INTERRUPT = 1;
constexpr uint16_t VRING_USED_F_NO_NOTIFY = 1;
// Feature bits.
constexpr int VIRTIO_RING_F_INDIRECT_DESC = 28;
constexpr int VIRTIO_RING_F_EVENT_IDX = 29;
constexpr int VIRTIO_F_VERSION_1 = 32;

constexpr uint32_t kMaxQueueSize = 32768;
// The most bytes one chain may describe (readable + writable): the used length is a u32.
constexpr uint64_t kMaxChainBytes = UINT32_MAX;

// virtq_desc as the driver writes it.
struct VirtqDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);

// vring_need_event from the virtio spec: should the other side be notified, given its event
// index and that the index moved from `old_idx` to `new_idx`?
inline bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

// Ring sizes in bytes for a queue of `size` entries (including the event fields).
inline uint64_t desc_table_bytes(uint32_t size) { return 16ull * size; }
inline uint64_t avail_ring_bytes(uint32_t size) { return 6ull + 2ull * size; }
inline uint64_t used_ring_bytes(uint32_t size) { return 6ull + 8ull * size; }

class Virtqueue {
 public:
  explicit Virtqueue(uint32_t index = 0) : index_(index) {}

  uint32_t index() const { return index_; }

  // ---- configuration (from the frontend) ----
  // A power of two in [1, 32768].
  Status set_size(uint32_t size);
  uint32_t size() const { return size_; }
  // Frontend virtual addresses of the descriptor table, avail ring and used ring.
  void set_addresses(uint64_t desc, uint64_t avail, uint64_t used);
  // Both the next avail index to consume and the next used index to produce (SET_VRING_BASE).
  void set_base(uint16_t base);
  uint16_t next_avail() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }
  void set_event_idx(bool on) { event_idx_ = on; }
  bool event_idx() const { return event_idx_; }
  void set_call_fd(UniqueFd fd) { call_fd_ = std::move(fd); }
  void set_err_fd(UniqueFd fd) { err_fd_ = std::move(fd); }
  int call_fd() const { return call_fd_.get(); }

  // Translates the rings against `memory` (each ring must lie in one region and be aligned:
  // desc 16, avail 2, used 4). On failure the queue is marked broken and the error returned.
  Status activate(std::shared_ptr<const GuestMemory> memory);
  // Forgets the memory; configuration and the broken state are kept.
  void deactivate();
  // Lets a broken queue run again (when the frontend stops and restarts it).
  void clear_broken();
  bool active() const { return memory_ != nullptr; }
  bool broken() const { return broken_; }
  const std::string& broken_reason() const { return broken_reason_; }
  // Everything back to the initial state (fds closed).
  void reset();

  // ---- device side ----
  // The next available chain, or nullopt if there is none (or the queue is inactive/broken).
  // With EVENT_IDX, also publishes avail_event so the driver kicks for the next buffer.
  std::optional<DescriptorChain> pop();
  // Returns chain `head` to the driver with `len` bytes written: the used element is written,
  // then a release fence, then used->idx.
  Status add_used(uint16_t head, uint32_t len);
  Status add_used(const DescriptorChain& chain, uint32_t len) {
    return add_used(chain.head(), len);
  }
  // Returns several chains at once, published by a single used->idx store after all their
  // elements: the driver never sees part of the group (virtio-net's mergeable rx buffers:
  // Linux drops a frame whose num_buffers buffers are not all used yet). All or nothing: on
  // an error nothing is published.
  struct UsedElem {
    uint16_t head;
    uint32_t len;
  };
  Status add_used_many(std::span<const UsedElem> elems);
  // Whether the driver wants an interrupt for the used entries added since the last call
  // (EVENT_IDX used_event, or VRING_AVAIL_F_NO_INTERRUPT). Updates the signalled position.
  bool needs_notification();
  // Signals the call eventfd if needs_notification(); returns whether it did.
  bool notify();
  // Marks the queue broken (device code may call this for a protocol violation it detects).
  void mark_broken(const std::string& reason);

 private:
  Status walk_chain(uint16_t head, std::vector<Segment>& readable, std::vector<Segment>& writable);
  uint16_t load_avail_idx() const;

  uint32_t index_;
  uint32_t size_ = 0;
  uint64_t desc_va_ = 0, avail_va_ = 0, used_va_ = 0;
  bool addresses_set_ = false;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  uint16_t signalled_used_ = 0;
  bool signalled_used_valid_ = false;
  bool event_idx_ = false;
  bool broken_ = false;
  std::string broken_reason_;
  UniqueFd call_fd_;
  UniqueFd err_fd_;

  std::shared_ptr<const GuestMemory> memory_;
  uint8_t* desc_ = nullptr;  // host pointers, valid while memory_ is held
  uint8_t* avail_ = nullptr;
  uint8_t* used_ = nullptr;
};

}  // namespace pinata::vhost
