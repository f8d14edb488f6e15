// Compaction of Qcow2Disk: clusters in use near the end of the file move into free clusters
// nearer the start, then the file is truncated after the last cluster in use.
//
// Every move is crash-safe on its own terms: the destination's refcount is made durable, the
// contents are copied and synced, the one pointer to the cluster (L2 entry, L1 entry,
// refcount-table entry or header field) is rewritten and synced, and only then is the source's
// refcount dropped. A crash at any point leaves either the old or the new copy referenced,
// plus at most a leaked cluster.
#include <algorithm>
#include <unordered_map>

#include "base/log.h"
#include "disk/qcow2_disk.h"

namespace pinata::disk {

using namespace qcow2;

namespace {
uint64_t div_up(uint64_t a, uint64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
// Clusters moved per round of syncs.
constexpr uint64_t kMoveBatchBytes = 64 << 20;
}  // namespace

// Moves the L1 table (l1 true) or the refcount table to `new_offset`, whose clusters already
// have refcount 1.
Status Qcow2Disk::relocate_table(bool l1, uint64_t new_offset) {
  TRY(persist_refcounts());
  TRY(write_back_l1());
  TRY(sync_if_needed());
  TRY(ensure_dirty_bit());
  const std::vector<uint64_t>& entries = l1 ? l1_ : reftable_;
  const uint64_t clusters = l1 ? div_up(entries.size() * 8, cs_) : h_.refcount_table_clusters;
  std::vector<uint8_t> raw(clusters * cs_, 0);
  for (uint64_t i = 0; i < entries.size(); i++) store_be64(raw.data() + i * 8, entries[i]);
  TRY(file_.write_at(new_offset, raw));
  TRY(file_.sync());
  uint8_t field[8];
  store_be64(field, new_offset);
  TRY(write_header_field(l1 ? kOffL1TableOffset : kOffRefcountTable, field));
  TRY(file_.sync());
  unsynced_ = false;
  uint64_t old_first = (l1 ? h_.l1_table_offset : h_.refcount_table_offset) / cs_;
  (l1 ? h_.l1_table_offset : h_.refcount_table_offset) = new_offset;
  for (uint64_t c = old_first; c < old_first + clusters; c++) TRY(set_refcount(c, 0));
  TRY(file_.punch_hole(old_first * cs_, clusters * cs_));
  return {};
}

// Moves data clusters (owners: L1 index, L2 index) or L2 tables (owners: L1 index, unused).
Status Qcow2Disk::move_clusters(const std::vector<std::pair<uint64_t, uint64_t>>& moves, bool l2_tables,
                                const std::vector<std::pair<uint64_t, uint64_t>>& owners) {
  for (const auto& [src, dst] : moves) TRY(set_refcount(dst, 1));
  TRY(persist_refcounts());
  std::vector<uint8_t> buf(cs_);
  for (const auto& [src, dst] : moves) {
    TRY(file_.read_at(src * cs_, buf));
    TRY(file_.write_at(dst * cs_, buf));
    unsynced_ = true;
  }
  TRY(sync_if_needed());
  const uint64_t l2e = h_.l2_entries();
  for (size_t k = 0; k < moves.size(); k++) {
    auto [src, dst] = moves[k];
    auto [i, j] = owners[k];
    if (l2_tables) {
      l2_cache_.erase(src * cs_);
      l2_clusters_.erase(src);
      l2_clusters_.insert(dst);
      l1_[i] = (dst * cs_) | kOflagCopied;
      l1_dirty_[i * 8 / cs_] = true;
    } else {
      TRY_ASSIGN(uint64_t off, l2_offset_at(i));
      TRY_ASSIGN(CachedTable * t, load_l2(off));
      uint8_t* ep = t->data.data() + (j % l2e) * 8;
      uint64_t old = load_be64(ep);
      if ((old & kOffsetMask) != src * cs_)
        return fail(ErrorKind::kInternal, file_.name() + ": compaction lost track of cluster " + std::to_string(src));
      store_be64(ep, (dst * cs_) | (old & (kOflagCopied | kOflagZero)));
      t->dirty = true;
    }
  }
  if (l2_tables)
    TRY(write_back_l1());
  else
    TRY(write_back_l2());
  TRY(sync_if_needed());
  std::vector<uint64_t> freed;
  for (const auto& [src, dst] : moves) {
    TRY(set_refcount(src, 0));
    freed.push_back(src);
  }
  std::sort(freed.begin(), freed.end());
  for (size_t i = 0; i < freed.size();) {
    size_t j = i + 1;
    while (j < freed.size() && freed[j] == freed[j - 1] + 1) j++;
    TRY(file_.punch_hole(freed[i] * cs_, (j - i) * cs_));
    i = j;
  }
  return {};
}

Status Qcow2Disk::compact_locked() {
  TRY(flush_locked());
  TRY_ASSIGN(CheckReport report, check_locked(Repair::kNo));
  if (report.corruptions > 0)
    return fail(ErrorKind::kCorrupt, file_.name() + ": image has " + std::to_string(report.corruptions) +
                                         " corruptions; not compacting" +
                                         (report.messages.empty() ? "" : " (" + report.messages[0] + ")"));
  if (report.leaks > 0) {
    TRY(check_locked(Repair::kYes));
    TRY(flush_locked());
  }

  const uint64_t rbe = h_.refblock_entries();
  const uint64_t l2e = h_.l2_entries();
  uint64_t n = end_cluster_;
  std::vector<bool> used(n);
  uint64_t in_use = 0;
  for (uint64_t c = 0; c < n; c++) {
    TRY_ASSIGN(uint64_t rc, refcount(c));
    used[c] = rc > 0;
    in_use += used[c];
  }
  const uint64_t target = in_use;
  std::vector<uint64_t> slots;
  for (uint64_t c = 1; c < std::min(target, n); c++)
    if (!used[c] && c / rbe < reftable_.size() && reftable_[c / rbe] != 0) slots.push_back(c);
  size_t next_slot = 0;
  auto take_slot = [&]() -> Result<uint64_t> {
    while (next_slot < slots.size()) {
      uint64_t s = slots[next_slot++];
      TRY_ASSIGN(uint64_t rc, refcount(s));
      if (rc == 0 && !is_metadata(s)) return s;
    }
    return uint64_t{0};
  };

  // The whole tables referenced by the header, if they lie beyond the target.
  for (bool l1 : {false, true}) {
    uint64_t first = (l1 ? h_.l1_table_offset : h_.refcount_table_offset) / cs_;
    uint64_t clusters = l1 ? div_up(uint64_t{h_.l1_size} * 8, cs_) : h_.refcount_table_clusters;
    if (clusters == 0 || first + clusters <= target) continue;
    uint64_t saved_hint = free_hint_;
    free_hint_ = 1;
    TRY_ASSIGN(uint64_t at, alloc_clusters(clusters));
    free_hint_ = saved_hint;
    if (at >= first) {  // no better place
      for (uint64_t c = at; c < at + clusters; c++) TRY(set_refcount(c, 0));
      continue;
    }
    TRY(relocate_table(l1, at * cs_));
  }

  // Refcount blocks beyond the target, one at a time.
  for (uint64_t idx = 0; idx < reftable_.size(); idx++) {
    uint64_t src = reftable_[idx] / cs_;
    if (src == 0 || src < target) continue;
    TRY_ASSIGN(uint64_t dst, take_slot());
    if (dst == 0) break;
    TRY(set_refcount(dst, 1));
    TRY(persist_refcounts());
    TRY_ASSIGN(CachedTable * t, load_refblock(src * cs_));
    std::vector<uint8_t> copy = t->data;
    TRY(file_.write_at(dst * cs_, copy));
    TRY(file_.sync());
    rb_cache_.erase(src * cs_);
    rb_clusters_.erase(src);
    rb_clusters_.insert(dst);
    reftable_[idx] = dst * cs_;
    mark_reftable_dirty(idx);
    TRY(persist_refcounts());
    TRY(set_refcount(src, 0));
    TRY(file_.punch_hole(src * cs_, cs_));
  }

  // L2 tables, then data clusters, beyond the target; highest first.
  std::vector<std::pair<uint64_t, std::pair<uint64_t, uint64_t>>> l2_movers, data_movers;
  for (uint64_t i = 0; i < l1_.size(); i++) {
    TRY_ASSIGN(uint64_t off, l2_offset_at(i));
    if (off == 0) continue;
    if (off / cs_ >= target) l2_movers.push_back({off / cs_, {i, 0}});
    TRY_ASSIGN(CachedTable * t, load_l2(off));
    std::vector<uint8_t> table = t->data;
    for (uint64_t j = 0; j < l2e; j++) {
      uint64_t e = load_be64(table.data() + j * 8);
      if (e & kOflagCompressed) continue;
      uint64_t host = e & kOffsetMask;
      if (host == 0 || host / cs_ < target) continue;
      TRY_ASSIGN(uint64_t rc, refcount(host / cs_));
      if (rc == 1) data_movers.push_back({host / cs_, {i, i * l2e + j}});
    }
  }
  for (bool l2 : {true, false}) {
    auto& movers = l2 ? l2_movers : data_movers;
    std::sort(movers.begin(), movers.end(), [](auto& a, auto& b) { return a.first > b.first; });
    std::vector<std::pair<uint64_t, uint64_t>> batch, owners;
    bool out_of_slots = false;
    for (size_t k = 0; k <= movers.size(); k++) {
      if (k < movers.size() && !out_of_slots) {
        TRY_ASSIGN(uint64_t dst, take_slot());
        if (dst == 0 || dst >= movers[k].first) {
          out_of_slots = true;
        } else {
          batch.push_back({movers[k].first, dst});
          owners.push_back(movers[k].second);
        }
      }
      if (!batch.empty() && (batch.size() >= std::max<uint64_t>(16, kMoveBatchBytes / cs_) || k >= movers.size() || out_of_slots)) {
        TRY(move_clusters(batch, l2, owners));
        batch.clear();
        owners.clear();
      }
      if (out_of_slots) break;
    }
  }

  TRY(flush_locked());
  uint64_t last = end_cluster_;
  while (last > 1) {
    TRY_ASSIGN(uint64_t rc, refcount(last - 1));
    if (rc > 0) break;
    last--;
  }
  TRY(persist_refcounts());
  TRY(file_.sync());
  unsynced_ = false;
  TRY_ASSIGN(uint64_t size, file_.size());
  if (last * cs_ < size) {
    TRY(file_.truncate(last * cs_));
    TRY(file_.sync());
    log::info("%s: compacted from %llu to %llu bytes", file_.name().c_str(), static_cast<unsigned long long>(size),
              static_cast<unsigned long long>(last * cs_));
  }
  end_cluster_ = last;
  free_hint_ = 1;
  return flush_locked();
}

}  // namespace pinata::disk
