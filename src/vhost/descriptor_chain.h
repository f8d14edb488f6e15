// A popped descriptor chain and the byte-stream view device code uses on it.
//
// Virtqueue::pop() walks and validates the whole chain up front (bounds, loops, indirect
// tables, readable-before-writable), so a DescriptorChain is a list of host memory segments
// that are known to lie inside guest memory: device code reads the readable part with a Reader
// and fills the writable part with a Writer, and never sees descriptor indices.
//
//   auto chain = queue.pop();
//   Reader in(*chain);  Writer out(*chain);
//   TRY_ASSIGN(auto hdr, in.read_obj<RequestHeader>());
//   TRY(out.write_obj(status));
//   queue.add_used(*chain, out.bytes_written());
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include "base/result.h"
#include "vhost/guest_memory.h"

namespace pinata::vhost {

// One descriptor's buffer, already translated to a host pointer.
struct Segment {
  uint8_t* host;
  uint32_t len;
};

class DescriptorChain {
 public:
  DescriptorChain(uint16_t head, std::shared_ptr<const GuestMemory> memory,
                  std::vector<Segment> readable, std::vector<Segment> writable);

  // The head descriptor index: what add_used() reports back to the driver.
  uint16_t head() const { return head_; }
  std::span<const Segment> readable() const { return readable_; }
  std::span<const Segment> writable() const { return writable_; }
  size_t readable_bytes() const;
  size_t writable_bytes() const;
  // Keeps the guest memory mapping alive while the chain is in use.
  const std::shared_ptr<const GuestMemory>& memory() const { return memory_; }

 private:
  uint16_t head_;
  std::shared_ptr<const GuestMemory> memory_;
  std::vector<Segment> readable_;
  std::vector<Segment> writable_;
};

// Common cursor over a list of segments.
class SegmentCursor {
 public:
  // Bytes left to consume.
  size_t available() const { return remaining_; }
  // Bytes consumed so far.
  size_t consumed() const { return consumed_; }

 protected:
  SegmentCursor(std::vector<Segment> segments, std::shared_ptr<const GuestMemory> memory);
  // Calls fn(ptr, len) over the next `len` bytes (len ≤ available()) and consumes them.
  template <typename Fn>
  void consume(size_t len, Fn&& fn);
  // Truncates this cursor to `offset` more bytes and returns the rest as a new cursor's
  // segments (offset is clamped to available()).
  std::vector<Segment> split_segments(size_t offset);
  // The unconsumed bytes as iovecs, at most `max` bytes.
  std::vector<struct iovec> iovecs(size_t max) const;

  std::vector<Segment> segments_;
  size_t index_ = 0;   // current segment
  size_t offset_ = 0;  // offset in the current segment
  size_t remaining_ = 0;
  size_t consumed_ = 0;
  std::shared_ptr<const GuestMemory> memory_;
};

// Reads the chain's device-readable (driver-written) bytes in order.
class Reader : public SegmentCursor {
 public:
  explicit Reader(const DescriptorChain& chain);

  size_t bytes_read() const { return consumed(); }
  // Reads min(out.size(), available()) bytes; returns how many.
  size_t read_some(std::span<uint8_t> out);
  // Reads exactly `len` bytes, or fails without consuming anything.
  Status read(void* out, size_t len);
  template <typename T>
  Result<T> read_obj() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    TRY(read(&value, sizeof value));
    return value;
  }
  // Skips `len` bytes (fails without consuming if fewer are available).
  Status skip(size_t len);
  // Writes up to `max` bytes to `fd` (writev); returns bytes written (consumed).
  Result<size_t> read_to_fd(int fd, size_t max);
  // This reader keeps the next `offset` bytes; the returned reader has the rest.
  Reader split_at(size_t offset);

 private:
  Reader(std::vector<Segment> segments, std::shared_ptr<const GuestMemory> memory)
      : SegmentCursor(std::move(segments), std::move(memory)) {}
};

// Fills the chain's device-writable bytes in order. bytes_written() is the used length.
class Writer : public SegmentCursor {
 public:
  explicit Writer(const DescriptorChain& chain);

  size_t bytes_written() const { return consumed(); }
  // Writes min(data.size(), available()) bytes; returns how many.
  size_t write_some(std::span<const uint8_t> data);
  // Writes all of `len` bytes, or fails without writing anything.
  Status write(const void* data, size_t len);
  template <typename T>
  Status write_obj(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(&value, sizeof value);
  }
  // Reads up to `max` bytes from `fd` into the chain (readv); returns bytes read (0 = EOF).
  Result<size_t> write_from_fd(int fd, size_t max);
  // This writer keeps the next `offset` bytes; the returned writer has the rest.
  Writer split_at(size_t offset);

 private:
  Writer(std::vector<Segment> segments, std::shared_ptr<const GuestMemory> memory)
      : SegmentCursor(std::move(segments), std::move(memory)) {}
};

}  // namespace pinata::vhost
