#include "vhost/descriptor_chain.h"

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace pinata::vhost {

namespace {
size_t total(std::span<const Segment> segs) {
  size_t n = 0;
  for (const auto& s : segs) n += s.len;
  return n;
}
}  // namespace

DescriptorChain::DescriptorChain(uint16_t head, std::shared_ptr<const GuestMemory> memory,
                                 std::vector<Segment> readable, std::vector<Segment> writable)
    : head_(head),
      memory_(std::move(memory)),
      readable_(std::move(readable)),
      writable_(std::move(writable)) {}

size_t DescriptorChain::readable_bytes() const { return total(readable_); }
size_t DescriptorChain::writable_bytes() const { return total(writable_); }

SegmentCursor::SegmentCursor(std::vector<Segment> segments,
                             std::shared_ptr<const GuestMemory> memory)
    : segments_(std::move(segments)), remaining_(total(segments_)), memory_(std::move(memory)) {}

template <typename Fn>
void SegmentCursor::consume(size_t len, Fn&& fn) {
  while (len > 0 && index_ < segments_.size()) {
    const Segment& s = segments_[index_];
    size_t n = std::min<size_t>(len, s.len - offset_);
    if (n > 0) fn(s.host + offset_, n);
    offset_ += n;
    len -= n;
    remaining_ -= n;
    consumed_ += n;
    if (offset_ == s.len) {
      index_++;
      offset_ = 0;
    }
  }
}

std::vector<Segment> SegmentCursor::split_segments(size_t offset) {
  offset = std::min(offset, remaining_);
  std::vector<Segment> rest;
  size_t keep = offset;
  size_t i = index_;
  size_t off = offset_;
  // Find the segment where `offset` falls.
  while (i < segments_.size() && keep >= segments_[i].len - off) {
    keep -= segments_[i].len - off;
    i++;
    off = 0;
  }
  if (i < segments_.size()) {
    size_t cut = off + keep;  // split point inside segments_[i]
    if (cut < segments_[i].len) {
      rest.push_back(
          Segment{segments_[i].host + cut, static_cast<uint32_t>(segments_[i].len - cut)});
    }
    for (size_t j = i + 1; j < segments_.size(); j++) rest.push_back(segments_[j]);
    segments_[i].len = static_cast<uint32_t>(cut);
    segments_.resize(i + 1);
  }
  remaining_ = offset;
  return rest;
}

std::vector<struct iovec> SegmentCursor::iovecs(size_t max) const {
  std::vector<struct iovec> iov;
  size_t off = offset_;
  for (size_t i = index_; i < segments_.size() && max > 0 && iov.size() < IOV_MAX; i++) {
    size_t n = std::min<size_t>(segments_[i].len - off, max);
    if (n > 0) iov.push_back({segments_[i].host + off, n});
    max -= n;
    off = 0;
  }
  return iov;
}

Reader::Reader(const DescriptorChain& chain)
    : SegmentCursor({chain.readable().begin(), chain.readable().end()}, chain.memory()) {}

size_t Reader::read_some(std::span<uint8_t> out) {
  size_t n = std::min(out.size(), available());
  uint8_t* dst = out.data();
  consume(n, [&](const uint8_t* p, size_t len) {
    std::memcpy(dst, p, len);
    dst += len;
  });
  return n;
}

Status Reader::read(void* out, size_t len) {
  if (len > available()) {
    return fail(ErrorKind::kInvalidInput, "descriptor chain has " + std::to_string(available()) +
                                              " readable bytes left, need " + std::to_string(len));
  }
  read_some({static_cast<uint8_t*>(out), len});
  return {};
}

Status Reader::skip(size_t len) {
  if (len > available()) {
    return fail(ErrorKind::kInvalidInput, "descriptor chain has " + std::to_string(available()) +
                                              " readable bytes left, cannot skip " +
                                              std::to_string(len));
  }
  consume(len, [](const uint8_t*, size_t) {});
  return {};
}

Result<size_t> Reader::read_to_fd(int fd, size_t max) {
  auto iov = iovecs(std::min(max, available()));
  if (iov.empty()) return size_t{0};
  ssize_t n;
  do {
    n = ::writev(fd, iov.data(), static_cast<int>(iov.size()));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail_errno("writev");
  consume(static_cast<size_t>(n), [](const uint8_t*, size_t) {});
  return static_cast<size_t>(n);
}

Reader Reader::split_at(size_t offset) { return Reader(split_segments(offset), memory_); }

Writer::Writer(const DescriptorChain& chain)
    : SegmentCursor({chain.writable().begin(), chain.writable().end()}, chain.memory()) {}

size_t Writer::write_some(std::span<const uint8_t> data) {
  size_t n = std::min(data.size(), available());
  const uint8_t* src = data.data();
  consume(n, [&](uint8_t* p, size_t len) {
    std::memcpy(p, src, len);
    src += len;
  });
  return n;
}

Status Writer::write(const void* data, size_t len) {
  if (len > available()) {
    return fail(ErrorKind::kInvalidInput, "descriptor chain has " + std::to_string(available()) +
                                              " writable bytes left, need " + std::to_string(len));
  }
  write_some({static_cast<const uint8_t*>(data), len});
  return {};
}

Result<size_t> Writer::write_from_fd(int fd, size_t max) {
  auto iov = iovecs(std::min(max, available()));
  if (iov.empty()) return size_t{0};
  ssize_t n;
  do {
    n = ::readv(fd, iov.data(), static_cast<int>(iov.size()));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail_errno("readv");
  consume(static_cast<size_t>(n), [](uint8_t*, size_t) {});
  return static_cast<size_t>(n);
}

Writer Writer::split_at(size_t offset) { return Writer(split_segments(offset), memory_); }

}  // namespace pinata::vhost
