#include "vhost/mock_driver.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

namespace pinata::vhost::testing {

namespace {
// Test helpers fail loudly: a broken fixture is a test bug.
template <typename T>
T must(Result<T> r) {
  if (!r) {
    std::fprintf(stderr, "MockDriver: %s\n", r.error().message().c_str());
    std::abort();
  }
  return std::move(*r);
}
void must(Status s) {
  if (!s) {
    std::fprintf(stderr, "MockDriver: %s\n", s.error().message().c_str());
    std::abort();
  }
}
uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }
}  // namespace

Result<MemfdMemory> MemfdMemory::create(uint64_t gpa, uint64_t size, uint64_t userspace_addr) {
  UniqueFd fd(::memfd_create("pinata-test-guest", MFD_CLOEXEC));
  if (!fd) return fail_errno("memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return fail_errno("ftruncate");
  MemoryRegionDesc region{gpa, size, userspace_addr, 0};
  std::vector<UniqueFd> fds;
  fds.emplace_back(::dup(fd.get()));
  TRY_ASSIGN(auto memory, GuestMemory::map({&region, 1}, std::move(fds)));
  return MemfdMemory{std::move(fd), region, std::move(memory)};
}

UniqueFd MemfdMemory::dup_fd() const { return UniqueFd(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0)); }

MockDriver::MockDriver(std::shared_ptr<GuestMemory> memory, const MemoryRegionDesc& region,
                       uint16_t size, uint64_t ring_gpa, uint64_t data_gpa)
    : mem_(std::move(memory)), region_(region), size_(size), data_next_(data_gpa) {
  desc_ = ring_gpa;
  avail_ = align_up(desc_ + desc_table_bytes(size), 4096);
  used_ = align_up(avail_ + avail_ring_bytes(size), 4096);
  // Zero the rings, as a driver does at setup.
  std::vector<uint8_t> zeros(used_ + used_ring_bytes(size) - desc_);
  must(mem_->write(desc_, zeros.data(), zeros.size()));
}

void MockDriver::configure(Virtqueue& queue) const {
  must(queue.set_size(size_));
  queue.set_addresses(to_va(desc_), to_va(avail_), to_va(used_));
  queue.set_base(0);
}

uint64_t MockDriver::alloc(size_t len) {
  uint64_t gpa = data_next_;
  data_next_ = align_up(data_next_ + len, 16);
  return gpa;
}

uint64_t MockDriver::put(std::span<const uint8_t> bytes) {
  uint64_t gpa = alloc(bytes.size());
  must(mem_->write(gpa, bytes.data(), bytes.size()));
  return gpa;
}

std::vector<uint8_t> MockDriver::get(uint64_t gpa, size_t len) const {
  std::vector<uint8_t> out(len);
  must(mem_->read(gpa, out.data(), len));
  return out;
}

uint16_t MockDriver::next_desc() {
  uint16_t i = next_desc_;
  next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % size_);
  return i;
}

void MockDriver::write_desc(uint16_t index, const VirtqDesc& desc) {
  write_desc_at(desc_ + 16ull * index, desc);
}

void MockDriver::write_desc_at(uint64_t gpa, const VirtqDesc& desc) {
  must(mem_->write_obj(gpa, desc));
}

uint16_t MockDriver::add_chain(const std::vector<Buf>& bufs) {
  std::vector<uint16_t> idx;
  for (size_t i = 0; i < bufs.size(); i++) idx.push_back(next_desc());
  for (size_t i = 0; i < bufs.size(); i++) {
    bool last = i + 1 == bufs.size();
    VirtqDesc d{bufs[i].gpa, bufs[i].len,
                static_cast<uint16_t>((bufs[i].writable ? VIRTQ_DESC_F_WRITE : 0) |
                                      (last ? 0 : VIRTQ_DESC_F_NEXT)),
                last ? uint16_t{0} : idx[i + 1]};
    write_desc(idx[i], d);
  }
  push_avail(idx[0]);
  return idx[0];
}

uint16_t MockDriver::add_indirect_chain(const std::vector<Buf>& direct,
                                        const std::vector<Buf>& indirect) {
  uint64_t table = alloc(16 * indirect.size());
  for (size_t i = 0; i < indirect.size(); i++) {
    bool last = i + 1 == indirect.size();
    VirtqDesc d{indirect[i].gpa, indirect[i].len,
                static_cast<uint16_t>((indirect[i].writable ? VIRTQ_DESC_F_WRITE : 0) |
                                      (last ? 0 : VIRTQ_DESC_F_NEXT)),
                last ? uint16_t{0} : static_cast<uint16_t>(i + 1)};
    write_desc_at(table + 16 * i, d);
  }
  std::vector<uint16_t> idx;
  for (size_t i = 0; i <= direct.size(); i++) idx.push_back(next_desc());
  for (size_t i = 0; i < direct.size(); i++) {
    VirtqDesc d{
        direct[i].gpa, direct[i].len,
        static_cast<uint16_t>((direct[i].writable ? VIRTQ_DESC_F_WRITE : 0) | VIRTQ_DESC_F_NEXT),
        idx[i + 1]};
    write_desc(idx[i], d);
  }
  write_desc(idx.back(), VirtqDesc{table, static_cast<uint32_t>(16 * indirect.size()),
                                   VIRTQ_DESC_F_INDIRECT, 0});
  push_avail(idx[0]);
  return idx[0];
}

void MockDriver::set_avail_ring(uint16_t slot, uint16_t head) {
  must(mem_->write_obj(avail_ + 4 + 2ull * (slot % size_), head));
}

void MockDriver::push_avail(uint16_t head) {
  set_avail_ring(avail_idx_, head);
  std::atomic_thread_fence(std::memory_order_release);
  set_avail_idx(static_cast<uint16_t>(avail_idx_ + 1));
}

void MockDriver::set_avail_idx(uint16_t idx) {
  avail_idx_ = idx;
  must(mem_->write_obj(avail_ + 2, idx));
}

uint16_t MockDriver::avail_idx() const { return avail_idx_; }

void MockDriver::set_avail_flags(uint16_t flags) { must(mem_->write_obj(avail_, flags)); }

void MockDriver::set_used_event(uint16_t event) {
  must(mem_->write_obj(avail_ + 4 + 2ull * size_, event));
}

uint16_t MockDriver::avail_event() const {
  return must(mem_->read_obj<uint16_t>(used_ + 4 + 8ull * size_));
}

uint16_t MockDriver::used_idx() const { return must(mem_->read_obj<uint16_t>(used_ + 2)); }

UsedElem MockDriver::used_elem(uint16_t slot) const {
  return must(mem_->read_obj<UsedElem>(used_ + 4 + 8ull * (slot % size_)));
}

}  // namespace pinata::vhost::testing
