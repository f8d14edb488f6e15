#include "disk/qcow2_cache.h"

#include <algorithm>

namespace pinata::disk::qcow2 {

CachedTable* TableCache::lookup(uint64_t offset) {
  auto it = map_.find(offset);
  if (it == map_.end()) return nullptr;
  if (it->second != lru_.begin()) lru_.splice(lru_.begin(), lru_, it->second);
  return &*it->second;
}

CachedTable* TableCache::lru() { return lru_.empty() ? nullptr : &lru_.back(); }

CachedTable* TableCache::insert(uint64_t offset, std::vector<uint8_t> data, bool dirty) {
  erase(offset);
  lru_.push_front(CachedTable{offset, std::move(data), dirty});
  map_[offset] = lru_.begin();
  return &lru_.front();
}

void TableCache::erase(uint64_t offset) {
  auto it = map_.find(offset);
  if (it == map_.end()) return;
  lru_.erase(it->second);
  map_.erase(it);
}

void TableCache::clear() {
  lru_.clear();
  map_.clear();
}

std::vector<CachedTable*> TableCache::dirty_tables() {
  std::vector<CachedTable*> out;
  for (auto& t : lru_)
    if (t.dirty) out.push_back(&t);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  return out;
}

bool TableCache::any_dirty() const {
  return std::any_of(lru_.begin(), lru_.end(), [](const CachedTable& t) { return t.dirty; });
}

}  // namespace pinata::disk::qcow2
