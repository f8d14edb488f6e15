// Qcow2Disk: a qcow2 image (v2 and v3) as a Disk. See docs/protocols/qcow2.md for what is
// supported, the order of writes that keeps the image consistent across a crash, discard and
// compaction, and the rules for hostile images.
//
// Layout of the implementation: qcow2_format.* (pure header/entry encoding), qcow2_cache.*
// (LRU of metadata tables), host_file.* (the I/O engine), and this class, split by concern:
// qcow2_disk.cc (open, create, map, read/write/zero/discard, flush), qcow2_refcount.cc
// (refcounts and cluster allocation), qcow2_check.cc (consistency check and refcount repair),
// qcow2_compact.cc (compaction).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "disk/disk.h"
#include "disk/host_file.h"
#include "disk/qcow2_cache.h"
#include "disk/qcow2_format.h"

namespace pinata::disk {

struct Qcow2CreateOptions {
  uint64_t virtual_size = 0;
  uint32_t cluster_size = 64 << 10;  // a power of two, 512 B .. 2 MiB
  uint32_t version = 3;              // 2 (QEMU compat=0.10) or 3 (compat=1.1)
  uint32_t refcount_order = 4;       // refcount width 1 << order bits (v2: always 4)
  std::string backing_file;          // "" for none; stored as given (relative = to the image)
  std::string backing_format;        // "raw", "qcow2" or "" (probe when opening)
  // Refcount table size in clusters; 0: enough for the fully allocated image (it grows on
  // demand either way).
  uint32_t refcount_table_clusters = 0;
};

// What a consistency check found (as `qemu-img check` counts them).
struct CheckReport {
  uint64_t corruptions = 0;       // references that are invalid or have too low a refcount
  uint64_t leaks = 0;             // clusters with a refcount and no reference
  uint64_t fixed = 0;             // refcounts rewritten by a repair
  std::vector<std::string> messages;  // the first few problems, for people
};

enum class Repair { kNo, kYes };

class Qcow2Disk final : public Disk {
 public:
  static Status create(const std::string& path, const Qcow2CreateOptions& options);
  static Result<std::unique_ptr<Qcow2Disk>> open(const std::string& path, const OpenOptions& options = {});
  // Opens an already open file; `file.name()` is used in messages and to resolve a relative
  // backing file. `chain` lists the real paths already open above it (loop detection).
  static Result<std::unique_ptr<Qcow2Disk>> open_file(HostFile file, const OpenOptions& options,
                                                      std::vector<std::string> chain = {});
  ~Qcow2Disk() override;

  ImageFormat format() const override { return ImageFormat::kQcow2; }
  uint64_t virtual_size() const override { return h_.size; }
  bool read_only() const override { return read_only_; }
  Status read(uint64_t offset, std::span<uint8_t> buf) override;
  Status write(uint64_t offset, std::span<const uint8_t> data) override;
  Status write_zeroes(uint64_t offset, uint64_t len, Unmap unmap) override;
  Status discard(uint64_t offset, uint64_t len) override;
  Status flush() override;
  Result<DiskInfo> info() override;
  Status compact() override;
  Status close() override;

  // Rebuilds the refcounts from the L1/L2 tables and compares; with Repair::kYes (writable
  // images only) rewrites every wrong refcount and makes the result durable.
  Result<CheckReport> check(Repair repair = Repair::kNo);
  const qcow2::Header& header() const { return h_; }
  // Whether the dirty bit is set in the file right now.
  bool dirty_bit_on_disk() const { return dirty_on_disk_; }

 private:
  enum class Kind { kUnallocated, kZero, kZeroAllocated, kNormal, kCompressed };
  struct Mapping {
    Kind kind = Kind::kUnallocated;
    uint64_t host = 0;  // host offset of the cluster (normal, zero-allocated)
    uint64_t raw = 0;   // the L2 entry
  };
  // A write or read of guest bytes at a host offset, merged with its neighbours before I/O.
  struct Segment {
    uint64_t host;
    uint8_t* ptr;
    size_t len;
  };

  Qcow2Disk(HostFile file, qcow2::Header header, const OpenOptions& options);
  Status load(const OpenOptions& options, std::vector<std::string> chain);

  // --- mapping (qcow2_disk.cc)
  Status check_request(uint64_t offset, uint64_t len, bool write) const;
  Result<uint64_t> l2_offset_at(uint64_t l1_index) const;
  Result<qcow2::CachedTable*> load_l2(uint64_t l2_offset);
  Result<qcow2::CachedTable*> l2_for_write(uint64_t l1_index);
  Result<Mapping> decode(uint64_t entry) const;
  Result<Mapping> lookup(uint64_t guest_cluster);
  Result<std::vector<uint8_t>> cluster_contents(uint64_t guest_cluster, const Mapping& m);
  Status read_backing(uint64_t offset, std::span<uint8_t> buf);
  Status decompress(const Mapping& m, std::span<uint8_t> out);
  Status submit_writes(std::vector<Segment>& segs);
  Status release_reference(const Mapping& m);
  Status write_locked(uint64_t offset, std::span<const uint8_t> data);
  Status set_l2_entries(uint64_t offset, uint64_t len, bool zero, Unmap unmap);
  Status free_empty_l2_tables(const std::set<uint64_t>& l1_indices);
  Status flush_locked();
  Status write_back_l2();
  Status write_back_l1();
  Status write_header_field(uint64_t offset, std::span<const uint8_t> bytes);
  Status ensure_dirty_bit();
  Status mark_clean();
  Status sync_if_needed();
  Status close_locked();

  // --- refcounts and allocation (qcow2_refcount.cc)
  Result<qcow2::CachedTable*> load_refblock(uint64_t offset);
  Result<uint64_t> refcount(uint64_t cluster);
  Status set_refcount(uint64_t cluster, uint64_t value);
  Result<uint64_t> alloc_clusters(uint64_t n);
  Status create_refblock(uint64_t table_index);
  Status grow_reftable(uint64_t needed_index);
  Status persist_refcounts();
  Status process_pending_frees();
  uint64_t get_rb_entry(const qcow2::CachedTable& t, uint64_t i) const;
  void set_rb_entry(qcow2::CachedTable& t, uint64_t i, uint64_t v) const;
  bool is_fixed_metadata(uint64_t cluster) const;
  bool is_metadata(uint64_t cluster) const;
  void mark_reftable_dirty(uint64_t index);
  Error corrupt_or_full_error(uint64_t table_index) const;

  // --- check/repair (qcow2_check.cc), compaction (qcow2_compact.cc)
  Result<CheckReport> check_locked(Repair repair);
  Status compact_locked();
  Status relocate_table(bool l1, uint64_t new_offset);
  Status move_clusters(const std::vector<std::pair<uint64_t, uint64_t>>& moves, bool l2_tables,
                       const std::vector<std::pair<uint64_t, uint64_t>>& owners);

  mutable std::mutex mu_;
  HostFile file_;
  qcow2::Header h_;
  uint64_t cs_;
  uint32_t cb_;
  bool read_only_;
  std::unique_ptr<Disk> backing_;
  uint64_t backing_size_ = 0;

  std::vector<uint64_t> l1_;
  std::vector<bool> l1_dirty_;         // per L1 cluster
  std::vector<uint64_t> reftable_;
  std::vector<bool> reftable_dirty_;   // per reftable cluster
  qcow2::TableCache l2_cache_;
  qcow2::TableCache rb_cache_;
  std::unordered_set<uint64_t> l2_clusters_;  // host cluster index of every L2 table
  std::unordered_set<uint64_t> rb_clusters_;  // host cluster index of every refcount block
  uint64_t end_cluster_ = 0;   // clusters at or beyond this index are free space past the file
  uint64_t free_hint_ = 1;     // no free cluster below this index
  // Host clusters whose reference was removed in a cached table: their refcount drops (and
  // they become reusable) only after that change is durable, in flush.
  std::vector<uint64_t> pending_free_;
  bool dirty_on_disk_ = false;
  bool unsynced_ = false;      // something was written since the last fdatasync
  bool closed_ = false;
  std::vector<uint8_t> zero_cluster_;
};

}  // namespace pinata::disk
