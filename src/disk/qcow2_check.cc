// Consistency check and refcount repair of Qcow2Disk: every reference reachable from the
// header (header cluster, L1 table, refcount table and blocks, L2 tables, data and compressed
// clusters) is counted, and the counts are compared with the stored refcounts. A repair
// rewrites the stored refcounts from the counts, adding refcount blocks (and a larger refcount
// table) at the end of the file when referenced clusters have none.
#include <algorithm>

#include "disk/qcow2_disk.h"

namespace pinata::disk {

using namespace qcow2;

namespace {
uint64_t div_up(uint64_t a, uint64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
}  // namespace

Result<CheckReport> Qcow2Disk::check_locked(Repair repair) {
  if (h_.nb_snapshots > 0)
    return fail(ErrorKind::kUnsupported, file_.name() + ": checking images with internal snapshots is not supported");
  if (h_.has_bitmaps_extension)
    return fail(ErrorKind::kUnsupported, file_.name() + ": checking images with persistent bitmaps is not supported");
  if (!pending_free_.empty()) TRY(flush_locked());

  CheckReport report;
  auto problem = [&](std::string msg) {
    if (report.messages.size() < 20) report.messages.push_back(std::move(msg));
  };
  uint64_t n = end_cluster_;
  std::vector<uint32_t> expected(n, 0);
  auto ref = [&](uint64_t c, const char* what) {
    if (c >= n) {
      report.corruptions++;
      problem(std::string(what) + " at cluster " + std::to_string(c) + " is beyond the end of the file");
      return;
    }
    if (expected[c] != UINT32_MAX) expected[c]++;
  };
  ref(0, "header");
  if (h_.l1_size > 0) {
    uint64_t first = h_.l1_table_offset / cs_;
    uint64_t last = div_up(h_.l1_table_offset + uint64_t{h_.l1_size} * 8, cs_);
    for (uint64_t c = first; c < last; c++) ref(c, "L1 table");
  }
  for (uint64_t c = 0; c < h_.refcount_table_clusters; c++) ref(h_.refcount_table_offset / cs_ + c, "refcount table");
  for (uint64_t off : reftable_)
    if (off != 0) ref(off / cs_, "refcount block");

  const uint64_t l2e = h_.l2_entries();
  for (uint64_t i = 0; i < l1_.size(); i++) {
    auto off = l2_offset_at(i);
    if (!off) {
      report.corruptions++;
      problem(off.error().message());
      continue;
    }
    if (*off == 0) continue;
    ref(*off / cs_, "L2 table");
    TRY_ASSIGN(CachedTable * t, load_l2(*off));
    std::vector<uint8_t> table = t->data;  // copy: decoding may not evict, but stay safe
    for (uint64_t j = 0; j < l2e; j++) {
      uint64_t e = load_be64(table.data() + j * 8);
      if (e == 0) continue;
      auto m = decode(e);
      if (!m) {
        report.corruptions++;
        problem(m.error().message());
        continue;
      }
      if (m->kind == Kind::kNormal || m->kind == Kind::kZeroAllocated) {
        uint64_t hc = m->host / cs_;
        if (is_metadata(hc)) {
          report.corruptions++;
          problem("data cluster " + std::to_string(hc) + " overlaps metadata");
        }
        ref(hc, "data cluster");
      } else if (m->kind == Kind::kCompressed) {
        CompressedExtent ext = decode_compressed(e, cb_);
        if (ext.offset < cs_ || ext.offset / cs_ >= n) {
          report.corruptions++;
          problem("compressed cluster at " + std::to_string(ext.offset) + " is outside the data area");
          continue;
        }
        uint64_t last = std::min((ext.offset + ext.length - 1) / cs_, n - 1);
        for (uint64_t c = ext.offset / cs_; c <= last; c++) ref(c, "compressed cluster");
      }
    }
  }

  const uint64_t rbe = h_.refblock_entries();
  bool table_moved = false;
  if (repair == Repair::kYes) {
    // Every range holding a referenced cluster needs a refcount block (and a table entry).
    auto append = [&]() {
      expected.push_back(1);
      return n++;
    };
    for (;;) {
      uint64_t missing = UINT64_MAX;
      for (uint64_t c = 0; c < n; c += rbe) {
        uint64_t idx = c / rbe;
        bool has_block = idx < reftable_.size() && reftable_[idx] != 0;
        if (has_block) continue;
        uint64_t end = std::min(n, c + rbe);
        if (std::any_of(expected.begin() + c, expected.begin() + end, [](uint32_t v) { return v != 0; })) {
          missing = idx;
          break;
        }
      }
      if (missing == UINT64_MAX) break;
      if (missing >= reftable_.size()) {
        const uint64_t per = cs_ / 8;
        uint64_t entries = std::max<uint64_t>(reftable_.size() * 2, div_up(n + 64, rbe) + 8);
        entries = div_up(entries, per) * per;
        if (entries * 8 > kMaxRefcountTableBytes)
          return fail(ErrorKind::kUnsupported, file_.name() + ": repair needs a refcount table over 8 MiB");
        uint64_t old_first = h_.refcount_table_offset / cs_;
        for (uint64_t c = 0; c < h_.refcount_table_clusters; c++) expected[old_first + c]--;
        uint64_t first = n;
        for (uint64_t c = 0; c < entries / per; c++) append();
        reftable_.resize(entries, 0);
        h_.refcount_table_offset = first * cs_;
        h_.refcount_table_clusters = static_cast<uint32_t>(entries / per);
        reftable_dirty_.assign(entries / per, true);
        table_moved = true;
        continue;
      }
      uint64_t c = append();
      if (rb_cache_.full()) {
        CachedTable* victim = rb_cache_.lru();
        if (victim->dirty) {
          TRY(ensure_dirty_bit());
          TRY(file_.write_at(victim->offset, victim->data));
          unsynced_ = true;
        }
        rb_cache_.erase(victim->offset);
      }
      rb_cache_.insert(c * cs_, std::vector<uint8_t>(cs_, 0), true);
      rb_clusters_.insert(c);
      reftable_[missing] = c * cs_;
      mark_reftable_dirty(missing);
    }
    end_cluster_ = std::max(end_cluster_, n);
  }

  for (uint64_t idx = 0; idx * rbe < std::max<uint64_t>(n, reftable_.size() * rbe); idx++) {
    uint64_t base = idx * rbe;
    bool has_block = idx < reftable_.size() && reftable_[idx] != 0;
    if (!has_block) {
      for (uint64_t c = base; c < std::min(n, base + rbe); c++) {
        if (expected[c] == 0) continue;
        report.corruptions++;
        problem("cluster " + std::to_string(c) + " is referenced but has no refcount block");
      }
      continue;
    }
    TRY_ASSIGN(CachedTable * t, load_refblock(reftable_[idx]));
    for (uint64_t i = 0; i < rbe; i++) {
      uint64_t c = base + i;
      uint64_t want = c < n ? expected[c] : 0;
      uint64_t have = get_rb_entry(*t, i);
      if (have == want) continue;
      if (have < want) {
        report.corruptions++;
        problem("cluster " + std::to_string(c) + ": refcount " + std::to_string(have) + ", referenced " +
                std::to_string(want) + " times");
      } else {
        report.leaks++;
      }
      if (repair == Repair::kYes) {
        if (want > h_.max_refcount())
          return fail(ErrorKind::kUnsupported, file_.name() + ": cluster " + std::to_string(c) +
                                                   " is referenced more often than refcounts can count");
        set_rb_entry(*t, i, want);
        t->dirty = true;
        report.fixed++;
      }
    }
  }

  if (repair == Repair::kYes) {
    TRY(persist_refcounts());
    if (table_moved) {
      uint8_t field[12];
      store_be64(field, h_.refcount_table_offset);
      store_be32(field + 8, h_.refcount_table_clusters);
      TRY(write_header_field(kOffRefcountTable, field));
      TRY(file_.sync());
      unsynced_ = false;
    }
    free_hint_ = 1;
  }
  return report;
}

}  // namespace pinata::disk
