// Test support: guest memory backed by a memfd, and a MockDriver that lays out a split
// virtqueue in it and adds buffers the way a virtio driver does (descriptors, then the avail
// ring entry, then a release fence, then avail->idx). Used by unit tests here and by device
// backends' tests (library pinata_vhost_testing; not linked into production binaries).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "vhost/guest_memory.h"
#include "vhost/virtqueue.h"

namespace pinata::vhost::testing {

// One memfd-backed region mapped as GuestMemory. `fd` stays open so that a test can also
// send it to a backend in SET_MEM_TABLE.
struct MemfdMemory {
  UniqueFd fd;
  MemoryRegionDesc region;
  std::shared_ptr<GuestMemory> memory;

  static Result<MemfdMemory> create(uint64_t gpa, uint64_t size, uint64_t userspace_addr);
  // A dup of fd (what a frontend would send).
  UniqueFd dup_fd() const;
};

struct Buf {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

struct UsedElem {
  uint32_t id;
  uint32_t len;
};

class MockDriver {
 public:
  // Rings at `ring_gpa` (desc table, then avail, then used, 4 KiB apart at least); data
  // buffers are allocated from `data_gpa` upwards. `region` converts GPAs to frontend VAs.
  MockDriver(std::shared_ptr<GuestMemory> memory, const MemoryRegionDesc& region, uint16_t size,
             uint64_t ring_gpa, uint64_t data_gpa);

  uint16_t size() const { return size_; }
  uint64_t desc_gpa() const { return desc_; }
  uint64_t avail_gpa() const { return avail_; }
  uint64_t used_gpa() const { return used_; }
  uint64_t to_va(uint64_t gpa) const {
    return gpa - region_.guest_phys_addr + region_.userspace_addr;
  }
  // Configures `queue` as a frontend would (size, ring VAs, base 0).
  void configure(Virtqueue& queue) const;

  // Allocates `len` bytes of buffer space (16-byte aligned); optionally fills it.
  uint64_t alloc(size_t len);
  uint64_t put(std::span<const uint8_t> bytes);
  uint64_t put(const std::string& s) {
    return put({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
  std::vector<uint8_t> get(uint64_t gpa, size_t len) const;

  // Writes a chain of direct descriptors and publishes it; returns the head index.
  uint16_t add_chain(const std::vector<Buf>& bufs);
  // Writes `indirect` as an indirect table, reached from `direct` descriptors (may be empty)
  // followed by one INDIRECT descriptor; publishes it and returns the head index.
  uint16_t add_indirect_chain(const std::vector<Buf>& direct, const std::vector<Buf>& indirect);

  // Low-level ring access for hostile cases.
  void write_desc(uint16_t index, const VirtqDesc& desc);
  void write_desc_at(uint64_t gpa, const VirtqDesc& desc);
  void push_avail(uint16_t head);  // ring entry + idx++
  void set_avail_ring(uint16_t slot, uint16_t head);
  void set_avail_idx(uint16_t idx);
  uint16_t avail_idx() const;
  void set_avail_flags(uint16_t flags);
  void set_used_event(uint16_t event);
  uint16_t avail_event() const;
  uint16_t used_idx() const;
  UsedElem used_elem(uint16_t slot) const;
  // Next free descriptor index (round robin).
  uint16_t next_desc();

 private:
  std::shared_ptr<GuestMemory> mem_;
  MemoryRegionDesc region_;
  uint16_t size_;
  uint64_t desc_, avail_, used_;
  uint64_t data_next_;
  uint16_t avail_idx_ = 0;
  uint16_t next_desc_ = 0;
};

}  // namespace pinata::vhost::testing
