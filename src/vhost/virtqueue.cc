#include "vhost/virtqueue.h"

#include <atomic>
#include <cinttypes>
#include <cstring>

#include "base/log.h"

namespace pinata::vhost {

namespace {

// Ring fields shared with the guest are accessed with atomics so that neither the compiler
// nor the CPU tears or reorders them; descriptor contents are copied out once (memcpy) and
// only the copy is validated and used.
uint16_t load_u16(const uint8_t* p, int order = __ATOMIC_RELAXED) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), order);
}
void store_u16(uint8_t* p, uint16_t v, int order = __ATOMIC_RELAXED) {
  __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, order);
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

// Offsets inside the rings.
constexpr size_t kAvailFlags = 0, kAvailIdx = 2, kAvailRing = 4;
constexpr size_t kUsedIdx = 2, kUsedRing = 4;

}  // namespace

Status Virtqueue::set_size(uint32_t size) {
  if (size == 0 || size > kMaxQueueSize || (size & (size - 1)) != 0) {
    return fail(ErrorKind::kInvalidInput, "queue " + std::to_string(index_) + ": size " +
                                              std::to_string(size) +
                                              " is not a power of two in [1, 32768]");
  }
  size_ = size;
  return {};
}

void Virtqueue::set_addresses(uint64_t desc, uint64_t avail, uint64_t used) {
  desc_va_ = desc;
  avail_va_ = avail;
  used_va_ = used;
  addresses_set_ = true;
}

void Virtqueue::set_base(uint16_t base) {
  next_avail_ = base;
  next_used_ = base;
  signalled_used_ = base;
  signalled_used_valid_ = false;
}

Status Virtqueue::activate(std::shared_ptr<const GuestMemory> memory) {
  deactivate();
  auto fail_broken = [&](const std::string& why) -> Status {
    mark_broken(why);
    return fail(ErrorKind::kInvalidInput, "queue " + std::to_string(index_) + ": " + why);
  };
  if (!memory) return fail_broken("no guest memory table");
  if (size_ == 0) return fail_broken("size not set");
  if (!addresses_set_) return fail_broken("ring addresses not set");
  if (desc_va_ % 16 || avail_va_ % 2 || used_va_ % 4) {
    return fail_broken("misaligned ring (desc " + hex(desc_va_) + ", avail " + hex(avail_va_) +
                       ", used " + hex(used_va_) + ")");
  }
  auto desc = memory->translate_va(desc_va_, desc_table_bytes(size_));
  if (!desc) return fail_broken("descriptor table: " + desc.error().message());
  auto avail = memory->translate_va(avail_va_, avail_ring_bytes(size_));
  if (!avail) return fail_broken("avail ring: " + avail.error().message());
  auto used = memory->translate_va(used_va_, used_ring_bytes(size_));
  if (!used) return fail_broken("used ring: " + used.error().message());
  // Host pointers keep the guest's alignment only if the region mapping does; check.
  if (reinterpret_cast<uintptr_t>(*avail) % 2 || reinterpret_cast<uintptr_t>(*used) % 4) {
    return fail_broken("ring misaligned in host memory");
  }
  desc_ = *desc;
  avail_ = *avail;
  used_ = *used;
  memory_ = std::move(memory);
  return {};
}

void Virtqueue::deactivate() {
  memory_.reset();
  desc_ = avail_ = used_ = nullptr;
}

void Virtqueue::clear_broken() {
  broken_ = false;
  broken_reason_.clear();
}

void Virtqueue::reset() {
  uint32_t index = index_;
  *this = Virtqueue(index);
}

void Virtqueue::mark_broken(const std::string& reason) {
  if (broken_) return;
  broken_ = true;
  broken_reason_ = reason;
  log::error("vhost queue %u broken: %s", index_, reason.c_str());
  if (err_fd_) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(err_fd_.get(), &one, sizeof one);
  }
}

uint16_t Virtqueue::load_avail_idx() const {
  // Acquire: ring entries and descriptors the driver wrote before publishing idx are visible.
  return load_u16(avail_ + kAvailIdx, __ATOMIC_ACQUIRE);
}

Status Virtqueue::walk_chain(uint16_t head, std::vector<Segment>& readable,
                             std::vector<Segment>& writable) {
  const uint8_t* table = desc_;
  uint32_t table_len = size_;
  uint32_t limit = size_;  // descriptors we may visit in the current table (loop bound)
  uint32_t visited = 0;
  bool in_indirect = false;
  bool seen_writable = false;
  uint64_t total = 0;
  uint32_t idx = head;
  auto bad = [&](const std::string& why) {
    return fail(ErrorKind::kInvalidInput, "chain at head " + std::to_string(head) + ": " + why);
  };

  for (;;) {
    if (visited >= limit) {
      return bad(std::string("more than ") + std::to_string(limit) + " descriptors in " +
                 (in_indirect ? "the indirect table" : "the ring") + " (loop?)");
    }
    visited++;
    VirtqDesc d;
    std::memcpy(&d, table + 16ull * idx, sizeof d);

    if (d.flags & VIRTQ_DESC_F_INDIRECT) {
      if (in_indirect) return bad("nested indirect descriptor");
      if (d.flags & VIRTQ_DESC_F_NEXT) return bad("indirect descriptor with NEXT set");
      if (d.len == 0 || d.len % 16 != 0) {
        return bad("indirect table length " + std::to_string(d.len) +
                   " is not a non-zero multiple of 16");
      }
      uint32_t entries = d.len / 16;
      if (entries > kMaxQueueSize) {
        return bad("indirect table of " + std::to_string(entries) + " entries (max 32768)");
      }
      auto t = memory_->translate(d.addr, d.len);
      if (!t) return bad("indirect table: " + t.error().message());
      table = *t;
      table_len = limit = entries;
      visited = 0;
      idx = 0;
      in_indirect = true;
      continue;
    }

    bool writable_desc = d.flags & VIRTQ_DESC_F_WRITE;
    if (!writable_desc && seen_writable) return bad("readable descriptor after a writable one");
    seen_writable |= writable_desc;
    total += d.len;
    if (total > kMaxChainBytes) return bad("chain describes more than 4 GiB");
    if (d.len > 0) {
      auto host = memory_->translate(d.addr, d.len);
      if (!host) return bad("buffer: " + host.error().message());
      (writable_desc ? writable : readable).push_back(Segment{*host, d.len});
    }
    if (!(d.flags & VIRTQ_DESC_F_NEXT)) return {};
    idx = d.next;
    if (idx >= table_len) {
      return bad("next index " + std::to_string(idx) + " out of range (table of " +
                 std::to_string(table_len) + ")");
    }
  }
}

std::optional<DescriptorChain> Virtqueue::pop() {
  if (!memory_ || broken_) return std::nullopt;
  uint16_t avail_idx = load_avail_idx();
  if (avail_idx == next_avail_ && event_idx_) {
    // Ask for a kick when the next buffer arrives, then look again: the driver may have
    // added one before it could see our avail_event.
    store_u16(used_ + kUsedRing + 8ull * size_, next_avail_);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    avail_idx = load_avail_idx();
  }
  uint16_t pending = static_cast<uint16_t>(avail_idx - next_avail_);
  if (pending == 0) return std::nullopt;
  if (pending > size_) {
    mark_broken("avail idx jumped from " + std::to_string(next_avail_) + " to " +
                std::to_string(avail_idx) + " (queue size " + std::to_string(size_) + ")");
    return std::nullopt;
  }
  uint16_t head = load_u16(avail_ + kAvailRing + 2ull * (next_avail_ & (size_ - 1)));
  if (head >= size_) {
    mark_broken("avail ring entry " + std::to_string(next_avail_) + " has head index " +
                std::to_string(head) + " (queue size " + std::to_string(size_) + ")");
    return std::nullopt;
  }
  std::vector<Segment> readable, writable;
  if (auto walked = walk_chain(head, readable, writable); !walked) {
    mark_broken(walked.error().message());
    return std::nullopt;
  }
  next_avail_++;
  if (event_idx_) {
    store_u16(used_ + kUsedRing + 8ull * size_, next_avail_);
  }
  return DescriptorChain(head, memory_, std::move(readable), std::move(writable));
}

Status Virtqueue::add_used(uint16_t head, uint32_t len) {
  if (!memory_)
    return fail(ErrorKind::kInternal, "queue " + std::to_string(index_) + " is not active");
  if (broken_)
    return fail(ErrorKind::kInvalidInput, "queue " + std::to_string(index_) + " is broken");
  if (head >= size_) {
    return fail(ErrorKind::kInternal, "queue " + std::to_string(index_) + ": add_used head " +
                                          std::to_string(head) + " out of range");
  }
  uint8_t* elem = used_ + kUsedRing + 8ull * (next_used_ & (size_ - 1));
  uint32_t id = head;
  __atomic_store_n(reinterpret_cast<uint32_t*>(elem), id, __ATOMIC_RELAXED);
  __atomic_store_n(reinterpret_cast<uint32_t*>(elem + 4), len, __ATOMIC_RELAXED);
  next_used_++;
  std::atomic_thread_fence(std::memory_order_release);
  store_u16(used_ + kUsedIdx, next_used_, __ATOMIC_RELAXED);
  return {};
}

Status Virtqueue::add_used_many(std::span<const UsedElem> elems) {
  if (!memory_)
    return fail(ErrorKind::kInternal, "queue " + std::to_string(index_) + " is not active");
  if (broken_)
    return fail(ErrorKind::kInvalidInput, "queue " + std::to_string(index_) + " is broken");
  if (elems.size() > size_)
    return fail(ErrorKind::kInternal, "queue " + std::to_string(index_) + ": " + std::to_string(elems.size()) +
                                          " used elements at once for a ring of " + std::to_string(size_));
  for (const UsedElem& e : elems) {
    if (e.head >= size_) {
      return fail(ErrorKind::kInternal, "queue " + std::to_string(index_) + ": add_used head " +
                                            std::to_string(e.head) + " out of range");
    }
  }
  uint16_t next = next_used_;
  for (const UsedElem& e : elems) {
    uint8_t* elem = used_ + kUsedRing + 8ull * (next & (size_ - 1));
    __atomic_store_n(reinterpret_cast<uint32_t*>(elem), uint32_t{e.head}, __ATOMIC_RELAXED);
    __atomic_store_n(reinterpret_cast<uint32_t*>(elem + 4), e.len, __ATOMIC_RELAXED);
    next++;
  }
  next_used_ = next;
  std::atomic_thread_fence(std::memory_order_release);
  store_u16(used_ + kUsedIdx, next_used_, __ATOMIC_RELAXED);
  return {};
}

bool Virtqueue::needs_notification() {
  if (!memory_ || broken_) return false;
  // Our used idx store must be visible before we read the driver's event/flags.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint16_t old_idx = signalled_used_;
  bool valid = signalled_used_valid_;
  uint16_t new_idx = next_used_;
  signalled_used_ = new_idx;
  signalled_used_valid_ = true;
  if (old_idx == new_idx) return false;  // nothing used since the last decision (or the base)
  if (!event_idx_) {
    return (load_u16(avail_ + kAvailFlags) & VRING_AVAIL_F_NO_INTERRUPT) == 0;
  }
  if (!valid) return true;
  uint16_t used_event = load_u16(avail_ + kAvailRing + 2ull * size_);
  return vring_need_event(used_event, new_idx, old_idx);
}

bool Virtqueue::notify() {
  if (!needs_notification()) return false;
  if (!call_fd_) return false;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(call_fd_.get(), &one, sizeof one);
  return true;
}

}  // namespace pinata::vhost
