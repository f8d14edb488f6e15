// GuestMemory: bounds-checked access to the guest's RAM as the frontend shared it.
//
// A vhost-user frontend describes guest RAM with SET_MEM_TABLE: for each region the guest
// physical address (GPA), its size, the address at which the *frontend* mapped it (its user
// address, which SET_VRING_ADDR uses for the rings) and an offset into the region's fd. We map
// each fd MAP_SHARED and translate both kinds of address to host pointers here.
//
// Rules: every access names a range [addr, addr + len); the whole range must lie inside one
// region (no access spans two regions, even adjacent ones); all arithmetic is overflow-checked.
// Anything else is an Error; nothing here ever touches memory outside the regions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace pinata::vhost {

// One region as SET_MEM_TABLE describes it (VhostUserMemoryRegion).
struct MemoryRegionDesc {
  uint64_t guest_phys_addr = 0;
  uint64_t memory_size = 0;
  uint64_t userspace_addr = 0;  // the frontend's virtual address of the region
  uint64_t mmap_offset = 0;     // where the region starts in its fd
};

class GuestMemory {
 public:
  // Maps each region's fd (MAP_SHARED, read/write). `fds[i]` belongs to `regions[i]`; the fds
  // are closed after mapping. Regions must be non-empty, overflow-free and must not overlap
  // in guest physical or frontend address space.
  static Result<std::shared_ptr<GuestMemory>> map(std::span<const MemoryRegionDesc> regions,
                                                  std::vector<UniqueFd> fds);
  // A region over memory the caller owns (tests and fuzzers); not unmapped by GuestMemory.
  // `host` must stay valid for the life of this object.
  struct BufferRegion {
    uint64_t guest_phys_addr;
    uint64_t userspace_addr;
    void* host;
    size_t size;
  };
  static Result<std::shared_ptr<GuestMemory>> from_buffers(std::span<const BufferRegion> regions);

  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory();

  size_t num_regions() const { return regions_.size(); }

  // Host pointer for [gpa, gpa + len); len may be 0 (then gpa must still be in a region or
  // at its end).
  Result<uint8_t*> translate(uint64_t gpa, uint64_t len) const;
  // The GPA for a frontend virtual address range [va, va + len).
  Result<uint64_t> va_to_gpa(uint64_t va, uint64_t len) const;
  // Host pointer for a frontend virtual address range.
  Result<uint8_t*> translate_va(uint64_t va, uint64_t len) const;
  // True if [gpa, gpa + len) lies in one region.
  bool contains(uint64_t gpa, uint64_t len) const { return translate(gpa, len).has_value(); }

  Status read(uint64_t gpa, void* dst, size_t len) const;
  Status write(uint64_t gpa, const void* src, size_t len) const;
  // Copies `len` bytes between guest ranges (ranges may overlap).
  Status copy(uint64_t dst_gpa, uint64_t src_gpa, size_t len) const;

  template <typename T>
  Result<T> read_obj(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    TRY(read(gpa, &value, sizeof value));
    return value;
  }
  template <typename T>
  Status write_obj(uint64_t gpa, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(gpa, &value, sizeof value);
  }

 private:
  struct Region {
    uint64_t gpa;
    uint64_t size;
    uint64_t uaddr;
    uint8_t* host;   // start of the region's bytes
    void* map_base;  // what to munmap (nullptr for caller-owned buffers)
    size_t map_length;
  };
  GuestMemory() = default;
  static Status check_layout(const std::vector<Region>& regions);

  std::vector<Region> regions_;
};

// [start, start + len) ⊆ [base, base + size), without overflow. len 0 is allowed anywhere in
// [base, base + size].
inline bool range_within(uint64_t start, uint64_t len, uint64_t base, uint64_t size) {
  if (start < base) return false;
  uint64_t off = start - base;
  if (off > size) return false;
  return len <= size - off;
}

}  // namespace pinata::vhost
