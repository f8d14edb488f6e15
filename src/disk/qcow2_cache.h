// TableCache: a bounded LRU cache of cluster-sized metadata tables (L2 tables or refcount
// blocks), keyed by host offset, holding the on-disk (big-endian) bytes. Dirty tables are
// written back by the owner, which knows the order writes must reach the disk in; the cache
// only tracks state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace pinata::disk::qcow2 {

struct CachedTable {
  uint64_t offset = 0;
  std::vector<uint8_t> data;
  bool dirty = false;
};

class TableCache {
 public:
  explicit TableCache(size_t capacity) : capacity_(capacity < 2 ? 2 : capacity) {}

  size_t capacity() const { return capacity_; }
  size_t size() const { return map_.size(); }
  bool full() const { return map_.size() >= capacity_; }

  // The table at `offset`, now the most recently used; nullptr when absent.
  CachedTable* lookup(uint64_t offset);
  // The least recently used table (the one to evict when full); nullptr when empty.
  CachedTable* lru();
  CachedTable* insert(uint64_t offset, std::vector<uint8_t> data, bool dirty);
  void erase(uint64_t offset);
  void clear();
  // Dirty tables, ordered by offset (sequential write-back).
  std::vector<CachedTable*> dirty_tables();
  bool any_dirty() const;

 private:
  size_t capacity_;
  std::list<CachedTable> lru_;  // front = most recent
  std::unordered_map<uint64_t, std::list<CachedTable>::iterator> map_;
};

}  // namespace pinata::disk::qcow2
