// Refcounts and cluster allocation of Qcow2Disk.
//
// The refcount table is held in memory; refcount blocks go through an LRU cache. A new
// refcount block is placed inside the range it describes (that range has no block, so every
// cluster in it is free), which makes it describe itself. Allocation scans refcounts upwards
// from a hint below which no cluster is free.
#include <algorithm>

#include "base/log.h"
#include "disk/qcow2_disk.h"

namespace pinata::disk {

using namespace qcow2;

namespace {
uint64_t div_up(uint64_t a, uint64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
uint64_t round_up(uint64_t a, uint64_t b) { return div_up(a, b) * b; }
constexpr uint64_t kMaxHostOffset = 1ull << 56;
}  // namespace

uint64_t Qcow2Disk::get_rb_entry(const CachedTable& t, uint64_t i) const {
  const uint32_t order = h_.refcount_order;
  if (order >= 3) {
    const uint64_t bytes = 1ull << (order - 3);
    const uint8_t* p = t.data.data() + i * bytes;
    uint64_t v = 0;
    for (uint64_t k = 0; k < bytes; k++) v = (v << 8) | p[k];
    return v;
  }
  const uint64_t bits = 1ull << order;
  const uint64_t bit = i * bits;
  return (t.data[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
}

void Qcow2Disk::set_rb_entry(CachedTable& t, uint64_t i, uint64_t v) const {
  const uint32_t order = h_.refcount_order;
  if (order >= 3) {
    const uint64_t bytes = 1ull << (order - 3);
    uint8_t* p = t.data.data() + i * bytes;
    for (uint64_t k = bytes; k-- > 0; v >>= 8) p[k] = static_cast<uint8_t>(v);
    return;
  }
  const uint64_t bits = 1ull << order;
  const uint64_t bit = i * bits;
  const uint8_t mask = static_cast<uint8_t>(((1u << bits) - 1) << (bit % 8));
  t.data[bit / 8] = static_cast<uint8_t>((t.data[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
}

void Qcow2Disk::mark_reftable_dirty(uint64_t index) { reftable_dirty_[index * 8 / cs_] = true; }

Result<CachedTable*> Qcow2Disk::load_refblock(uint64_t off) {
  if (CachedTable* t = rb_cache_.lookup(off)) return t;
  if (rb_cache_.full()) {
    CachedTable* victim = rb_cache_.lru();
    if (victim->dirty) {
      TRY(ensure_dirty_bit());
      TRY(file_.write_at(victim->offset, victim->data));
      unsynced_ = true;
    }
    rb_cache_.erase(victim->offset);
  }
  std::vector<uint8_t> data(cs_);
  TRY(file_.read_at(off, data));
  return rb_cache_.insert(off, std::move(data), false);
}

Result<uint64_t> Qcow2Disk::refcount(uint64_t c) {
  const uint64_t e = h_.refblock_entries();
  uint64_t idx = c / e;
  if (idx >= reftable_.size() || reftable_[idx] == 0) return uint64_t{0};
  TRY_ASSIGN(CachedTable * t, load_refblock(reftable_[idx]));
  return get_rb_entry(*t, c % e);
}

Status Qcow2Disk::set_refcount(uint64_t c, uint64_t value) {
  if (value > h_.max_refcount())
    return fail(ErrorKind::kUnsupported, file_.name() + ": refcount overflow for cluster " + std::to_string(c) +
                                             " (at most " + std::to_string(h_.max_refcount()) + ")");
  const uint64_t e = h_.refblock_entries();
  uint64_t idx = c / e;
  if (idx >= reftable_.size()) TRY(grow_reftable(idx));
  if (reftable_[idx] == 0) {
    TRY(create_refblock(idx));
    if (reftable_[idx] / cs_ == c)
      return fail(ErrorKind::kInternal, file_.name() + ": cluster " + std::to_string(c) +
                                            " was taken by a new refcount block");
  }
  TRY_ASSIGN(CachedTable * t, load_refblock(reftable_[idx]));
  set_rb_entry(*t, c % e, value);
  t->dirty = true;
  return {};
}

// A block for a range that has none: every cluster of that range is free, so the block takes
// the first one that is not fixed metadata and counts itself.
Status Qcow2Disk::create_refblock(uint64_t idx) {
  const uint64_t e = h_.refblock_entries();
  uint64_t start = idx * e;
  uint64_t c = start;
  while (c < start + e && is_metadata(c)) c++;
  if (c == start + e || c * cs_ >= kMaxHostOffset)
    return fail(corrupt_or_full_error(idx));
  if (rb_cache_.full()) {
    CachedTable* victim = rb_cache_.lru();
    if (victim->dirty) {
      TRY(ensure_dirty_bit());
      TRY(file_.write_at(victim->offset, victim->data));
      unsynced_ = true;
    }
    rb_cache_.erase(victim->offset);
  }
  CachedTable* t = rb_cache_.insert(c * cs_, std::vector<uint8_t>(cs_, 0), true);
  set_rb_entry(*t, c - start, 1);
  rb_clusters_.insert(c);
  reftable_[idx] = c * cs_;
  mark_reftable_dirty(idx);
  end_cluster_ = std::max(end_cluster_, c + 1);
  return {};
}

Error Qcow2Disk::corrupt_or_full_error(uint64_t idx) const {
  return Error(ErrorKind::kCorrupt, file_.name() + ": no room for refcount block " + std::to_string(idx));
}

// A larger refcount table, written with the refcount blocks that describe it at the first
// cluster no block can describe yet, made durable before the header points at it; the old
// table is freed afterwards.
Status Qcow2Disk::grow_reftable(uint64_t needed) {
  TRY(persist_refcounts());
  const uint64_t e = h_.refblock_entries();
  const uint64_t per = cs_ / 8;
  const uint64_t old = reftable_.size();
  const uint64_t p = std::max(old * e, end_cluster_);
  uint64_t entries = round_up(std::max(needed + 1, old * 2), per);
  uint64_t nblocks = 1, k = 0;
  for (;;) {
    uint64_t clusters = entries / per;
    nblocks = 1;
    for (;;) {
      k = nblocks + clusters;
      uint64_t ranges = (p + k - 1) / e - p / e + 1;
      if (ranges <= nblocks) break;
      nblocks = ranges;
    }
    uint64_t last_idx = (p + k - 1) / e;
    if (last_idx < entries) break;
    entries = round_up(last_idx + 1, per);
  }
  if (entries * 8 > kMaxRefcountTableBytes || (p + k) * cs_ >= kMaxHostOffset)
    return fail(ErrorKind::kUnsupported, file_.name() + ": the refcount table would exceed 8 MiB");
  const uint64_t clusters = entries / per;
  std::vector<CachedTable> blocks(nblocks);
  for (uint64_t b = 0; b < nblocks; b++) {
    blocks[b].offset = (p + b) * cs_;
    blocks[b].data.assign(cs_, 0);
  }
  for (uint64_t x = p; x < p + k; x++) set_rb_entry(blocks[x / e - p / e], x % e, 1);
  std::vector<uint64_t> table(entries, 0);
  std::copy(reftable_.begin(), reftable_.end(), table.begin());
  for (uint64_t b = 0; b < nblocks; b++) table[p / e + b] = (p + b) * cs_;
  std::vector<uint8_t> raw(entries * 8);
  for (uint64_t i = 0; i < entries; i++) store_be64(raw.data() + i * 8, table[i]);

  TRY(ensure_dirty_bit());
  for (const auto& b : blocks) TRY(file_.write_at(b.offset, b.data));
  const uint64_t table_off = (p + nblocks) * cs_;
  TRY(file_.write_at(table_off, raw));
  TRY(file_.sync());
  uint8_t field[12];
  store_be64(field, table_off);
  store_be32(field + 8, static_cast<uint32_t>(clusters));
  TRY(write_header_field(kOffRefcountTable, field));
  TRY(file_.sync());
  unsynced_ = false;

  const uint64_t old_first = h_.refcount_table_offset / cs_;
  const uint64_t old_clusters = h_.refcount_table_clusters;
  h_.refcount_table_offset = table_off;
  h_.refcount_table_clusters = static_cast<uint32_t>(clusters);
  reftable_ = std::move(table);
  reftable_dirty_.assign(clusters, false);
  for (uint64_t b = 0; b < nblocks; b++) rb_clusters_.insert(p + b);
  end_cluster_ = std::max(end_cluster_, p + k);
  for (uint64_t c = old_first; c < old_first + old_clusters; c++) {
    TRY_ASSIGN(uint64_t rc, refcount(c));
    if (rc == 0) continue;
    TRY(set_refcount(c, rc - 1));
    if (rc == 1) free_hint_ = std::min(free_hint_, c);
  }
  return {};
}

Result<uint64_t> Qcow2Disk::alloc_clusters(uint64_t n) {
  const uint64_t e = h_.refblock_entries();
  uint64_t c = std::max<uint64_t>(free_hint_, 1);
  uint64_t run_start = c, run_len = 0;
  while (run_len < n) {
    if (c * cs_ >= kMaxHostOffset) return fail(ErrorKind::kUnsupported, file_.name() + ": image file is full");
    uint64_t idx = c / e;
    if (idx >= reftable_.size()) {
      TRY(grow_reftable(idx));
      continue;
    }
    if (reftable_[idx] == 0) {
      TRY(create_refblock(idx));
      continue;
    }
    TRY_ASSIGN(CachedTable * t, load_refblock(reftable_[idx]));
    for (uint64_t i = c % e; i < e && run_len < n; i++, c++) {
      if (get_rb_entry(*t, i) != 0 || is_metadata(c)) {
        run_start = c + 1;
        run_len = 0;
      } else {
        if (run_len == 0) run_start = c;
        run_len++;
      }
    }
  }
  for (uint64_t x = run_start; x < run_start + n; x++) TRY(set_refcount(x, 1));
  // For one cluster, everything scanned before it was in use.
  if (n == 1) free_hint_ = run_start + 1;
  end_cluster_ = std::max(end_cluster_, run_start + n);
  return run_start;
}

// Refcount blocks, then (after a sync) the refcount table entries that point at new blocks,
// then a sync: afterwards every refcount in memory is durable.
Status Qcow2Disk::persist_refcounts() {
  bool table_dirty = std::find(reftable_dirty_.begin(), reftable_dirty_.end(), true) != reftable_dirty_.end();
  if (!rb_cache_.any_dirty() && !table_dirty) return {};
  TRY(ensure_dirty_bit());
  for (CachedTable* t : rb_cache_.dirty_tables()) {
    TRY(file_.write_at(t->offset, t->data));
    t->dirty = false;
    unsynced_ = true;
  }
  if (table_dirty) {
    TRY(sync_if_needed());
    for (uint64_t k = 0; k < reftable_dirty_.size(); k++) {
      if (!reftable_dirty_[k]) continue;
      const uint64_t per = cs_ / 8;
      std::vector<uint8_t> raw(cs_);
      for (uint64_t i = 0; i < per; i++) store_be64(raw.data() + i * 8, reftable_[k * per + i]);
      TRY(file_.write_at(h_.refcount_table_offset + k * cs_, raw));
      reftable_dirty_[k] = false;
      unsynced_ = true;
    }
  }
  return sync_if_needed();
}

// Called once the removal of the references is durable.
Status Qcow2Disk::process_pending_frees() {
  std::vector<uint64_t> pending;
  pending.swap(pending_free_);
  std::sort(pending.begin(), pending.end());
  std::vector<uint64_t> freed;
  for (uint64_t c : pending) {
    TRY_ASSIGN(uint64_t rc, refcount(c));
    if (rc == 0) {
      log::warn("%s: cluster %llu freed twice", file_.name().c_str(), static_cast<unsigned long long>(c));
      continue;
    }
    TRY(set_refcount(c, rc - 1));
    if (rc == 1) {
      l2_clusters_.erase(c);
      freed.push_back(c);
      free_hint_ = std::min(free_hint_, c);
    }
  }
  for (size_t i = 0; i < freed.size();) {
    size_t j = i + 1;
    while (j < freed.size() && freed[j] == freed[j - 1] + 1) j++;
    TRY(file_.punch_hole(freed[i] * cs_, (j - i) * cs_));
    i = j;
  }
  return {};
}

}  // namespace pinata::disk
