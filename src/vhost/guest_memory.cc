#include "vhost/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <string>

namespace pinata::vhost {

namespace {

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
  // Both ranges are known not to wrap (checked before).
  return a < b + blen && b < a + alen;
}

}  // namespace

Status GuestMemory::check_layout(const std::vector<Region>& regions) {
  for (size_t i = 0; i < regions.size(); i++) {
    const Region& r = regions[i];
    if (r.size == 0)
      return fail(ErrorKind::kInvalidInput, "memory region " + std::to_string(i) + " is empty");
    if (r.gpa + r.size < r.gpa || r.gpa + r.size == 0) {
      // (gpa + size == 0 means it ends exactly at 2^64: the end is not representable.)
      return fail(ErrorKind::kInvalidInput,
                  "memory region " + std::to_string(i) + " wraps guest address space");
    }
    if (r.uaddr + r.size < r.uaddr || r.uaddr + r.size == 0) {
      return fail(ErrorKind::kInvalidInput,
                  "memory region " + std::to_string(i) + " wraps frontend address space");
    }
    for (size_t j = 0; j < i; j++) {
      const Region& o = regions[j];
      if (overlaps(r.gpa, r.size, o.gpa, o.size)) {
        return fail(ErrorKind::kInvalidInput, "memory regions " + std::to_string(j) + " and " +
                                                  std::to_string(i) + " overlap in guest memory");
      }
      if (overlaps(r.uaddr, r.size, o.uaddr, o.size)) {
        return fail(ErrorKind::kInvalidInput, "memory regions " + std::to_string(j) + " and " +
                                                  std::to_string(i) +
                                                  " overlap in frontend address space");
      }
    }
  }
  return {};
}

Result<std::shared_ptr<GuestMemory>> GuestMemory::map(std::span<const MemoryRegionDesc> regions,
                                                      std::vector<UniqueFd> fds) {
  if (regions.size() != fds.size()) {
    return fail(ErrorKind::kInvalidInput, "memory table has " + std::to_string(regions.size()) +
                                              " regions but " + std::to_string(fds.size()) +
                                              " fds");
  }
  std::shared_ptr<GuestMemory> mem(new GuestMemory());
  std::vector<Region> layout;
  for (const auto& d : regions) {
    layout.push_back(
        Region{d.guest_phys_addr, d.memory_size, d.userspace_addr, nullptr, nullptr, 0});
  }
  TRY(check_layout(layout));
  for (size_t i = 0; i < regions.size(); i++) {
    const MemoryRegionDesc& d = regions[i];
    uint64_t length = d.mmap_offset + d.memory_size;
    if (length < d.mmap_offset || length > SIZE_MAX) {
      return fail(ErrorKind::kInvalidInput,
                  "memory region " + std::to_string(i) + ": mmap offset + size overflows");
    }
    struct stat st;
    if (::fstat(fds[i].get(), &st) != 0) return fail_errno("fstat memory region fd");
    // A file shorter than the region would SIGBUS on access: refuse it up front.
    if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) < length) {
      return fail(ErrorKind::kInvalidInput, "memory region " + std::to_string(i) + ": fd is " +
                                                std::to_string(st.st_size) +
                                                " bytes, region needs " + std::to_string(length));
    }
    void* base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                        fds[i].get(), 0);
    if (base == MAP_FAILED) {
      return fail_errno("mmap memory region " + std::to_string(i) + " (" + hex(length) + " bytes)");
    }
    Region r = layout[i];
    r.map_base = base;
    r.map_length = length;
    r.host = static_cast<uint8_t*>(base) + d.mmap_offset;
    mem->regions_.push_back(r);  // unmapped by ~GuestMemory if a later region fails
  }
  return mem;
}

Result<std::shared_ptr<GuestMemory>> GuestMemory::from_buffers(
    std::span<const BufferRegion> regions) {
  std::shared_ptr<GuestMemory> mem(new GuestMemory());
  std::vector<Region> layout;
  for (const auto& b : regions) {
    layout.push_back(Region{b.guest_phys_addr, b.size, b.userspace_addr,
                            static_cast<uint8_t*>(b.host), nullptr, 0});
  }
  TRY(check_layout(layout));
  mem->regions_ = std::move(layout);
  return mem;
}

GuestMemory::~GuestMemory() {
  for (const auto& r : regions_) {
    if (r.map_base) ::munmap(r.map_base, r.map_length);
  }
}

Result<uint8_t*> GuestMemory::translate(uint64_t gpa, uint64_t len) const {
  for (const auto& r : regions_) {
    if (range_within(gpa, len, r.gpa, r.size)) return r.host + (gpa - r.gpa);
  }
  return fail(ErrorKind::kInvalidInput,
              "guest range " + hex(gpa) + "+" + hex(len) + " is not inside one memory region");
}

Result<uint64_t> GuestMemory::va_to_gpa(uint64_t va, uint64_t len) const {
  for (const auto& r : regions_) {
    if (range_within(va, len, r.uaddr, r.size)) return r.gpa + (va - r.uaddr);
  }
  return fail(ErrorKind::kInvalidInput,
              "frontend range " + hex(va) + "+" + hex(len) + " is not inside one memory region");
}

Result<uint8_t*> GuestMemory::translate_va(uint64_t va, uint64_t len) const {
  TRY_ASSIGN(uint64_t gpa, va_to_gpa(va, len));
  return translate(gpa, len);
}

Status GuestMemory::read(uint64_t gpa, void* dst, size_t len) const {
  TRY_ASSIGN(uint8_t * p, translate(gpa, len));
  if (len) std::memcpy(dst, p, len);
  return {};
}

Status GuestMemory::write(uint64_t gpa, const void* src, size_t len) const {
  TRY_ASSIGN(uint8_t * p, translate(gpa, len));
  if (len) std::memcpy(p, src, len);
  return {};
}

Status GuestMemory::copy(uint64_t dst_gpa, uint64_t src_gpa, size_t len) const {
  TRY_ASSIGN(uint8_t * src, translate(src_gpa, len));
  TRY_ASSIGN(uint8_t * dst, translate(dst_gpa, len));
  if (len) std::memmove(dst, src, len);
  return {};
}

}  // namespace pinata::vhost
