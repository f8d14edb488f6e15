#include "vhost/virtqueue.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <string>

#include "vhost/descriptor_chain.h"
#include "vhost/mock_driver.h"

namespace pinata::vhost {
namespace {

using testing::Buf;
using testing::MemfdMemory;
using testing::MockDriver;

constexpr uint64_t kGpa = 0x40000000;
constexpr uint64_t kMemSize = 1 << 20;
constexpr uint64_t kVa = 0x7f1200000000;
constexpr uint16_t kQueueSize = 8;

std::string str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

class VirtqueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = MemfdMemory::create(kGpa, kMemSize, kVa);
    ASSERT_TRUE(m.has_value());
    mem_ = std::move(*m);
    driver_ =
        std::make_unique<MockDriver>(mem_.memory, mem_.region, kQueueSize, kGpa, kGpa + 0x10000);
    driver_->configure(queue_);
    ASSERT_TRUE(queue_.activate(mem_.memory));
  }

  std::string read_all(const DescriptorChain& chain) {
    Reader r(chain);
    std::vector<uint8_t> out(r.available());
    EXPECT_TRUE(r.read(out.data(), out.size()));
    return str(out);
  }

  MemfdMemory mem_;
  std::unique_ptr<MockDriver> driver_;
  Virtqueue queue_{0};
};

TEST_F(VirtqueueTest, EmptyQueuePopsNothing) {
  EXPECT_FALSE(queue_.pop().has_value());
  EXPECT_FALSE(queue_.broken());
}

TEST_F(VirtqueueTest, DirectChainIsReadThenWritten) {
  uint64_t req = driver_->put("hello");
  uint64_t resp = driver_->alloc(16);
  uint16_t head = driver_->add_chain({{req, 5, false}, {resp, 16, true}});

  auto chain = queue_.pop();
  ASSERT_TRUE(chain.has_value());
  Reader r(*chain);
  Writer w(*chain);
  char in[5];
  ASSERT_TRUE(r.read(in, 5));
  ASSERT_TRUE(w.write("world!", 6));
  ASSERT_TRUE(queue_.add_used(*chain, static_cast<uint32_t>(w.bytes_written())));

  EXPECT_EQ(chain->head(), head);
  EXPECT_EQ(std::string(in, 5), "hello");
  EXPECT_EQ(r.available(), 0u);
  EXPECT_EQ(w.available(), 10u);
  EXPECT_EQ(str(driver_->get(resp, 6)), "world!");
  EXPECT_EQ(driver_->used_idx(), 1);
  EXPECT_EQ(driver_->used_elem(0).id, head);
  EXPECT_EQ(driver_->used_elem(0).len, 6u);
  EXPECT_EQ(queue_.next_avail(), 1);
}

TEST_F(VirtqueueTest, AddUsedManyPublishesTheGroupWithOneIndexUpdate) {
  uint16_t a = driver_->add_chain({{driver_->alloc(8), 8, true}});
  uint16_t b = driver_->add_chain({{driver_->alloc(8), 8, true}});
  uint16_t c = driver_->add_chain({{driver_->alloc(8), 8, true}});
  auto ca = queue_.pop(), cb = queue_.pop(), cc = queue_.pop();
  ASSERT_TRUE(ca && cb && cc);

  std::vector<Virtqueue::UsedElem> group = {{ca->head(), 8}, {cb->head(), 5}, {cc->head(), 1}};
  ASSERT_TRUE(queue_.add_used_many(group));

  EXPECT_EQ(driver_->used_idx(), 3);
  EXPECT_EQ(driver_->used_elem(0).id, a);
  EXPECT_EQ(driver_->used_elem(1).id, b);
  EXPECT_EQ(driver_->used_elem(1).len, 5u);
  EXPECT_EQ(driver_->used_elem(2).id, c);
  // An out-of-range head anywhere in a group publishes nothing.
  std::vector<Virtqueue::UsedElem> bad = {{a, 1}, {kQueueSize, 1}};
  EXPECT_FALSE(queue_.add_used_many(bad));
  EXPECT_EQ(driver_->used_idx(), 3);
}

TEST_F(VirtqueueTest, ObjectsSpanningSegmentsAreReadWhole) {
  uint32_t value = 0xa1b2c3d4;
  auto* bytes = reinterpret_cast<const uint8_t*>(&value);
  uint64_t a = driver_->put(std::span(bytes, 1));
  uint64_t b = driver_->put(std::span(bytes + 1, 3));
  uint64_t out1 = driver_->alloc(2), out2 = driver_->alloc(2);
  driver_->add_chain({{a, 1, false}, {b, 3, false}, {out1, 2, true}, {out2, 2, true}});

  auto chain = queue_.pop();
  ASSERT_TRUE(chain.has_value());
  Reader r(*chain);
  Writer w(*chain);
  auto got = r.read_obj<uint32_t>();
  ASSERT_TRUE(w.write_obj<uint32_t>(0x01020304));

  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, value);
  EXPECT_EQ(driver_->get(out1, 2), (std::vector<uint8_t>{0x04, 0x03}));
  EXPECT_EQ(driver_->get(out2, 2), (std::vector<uint8_t>{0x02, 0x01}));
  EXPECT_FALSE(r.read_obj<uint8_t>().has_value());
}

TEST_F(VirtqueueTest, IndirectChainIsFollowed) {
  uint64_t a = driver_->put("ind"), b = driver_->put("irect");
  uint64_t out = driver_->alloc(8);
  driver_->add_indirect_chain({}, {{a, 3, false}, {b, 5, false}, {out, 8, true}});

  auto chain = queue_.pop();

  ASSERT_TRUE(chain.has_value());
  EXPECT_EQ(read_all(*chain), "indirect");
  EXPECT_EQ(chain->writable_bytes(), 8u);
  EXPECT_EQ(chain->readable().size(), 2u);
}

TEST_F(VirtqueueTest, DirectDescriptorsThenIndirectTableFormOneChain) {
  uint64_t a = driver_->put("mix"), b = driver_->put("ed");
  uint64_t out = driver_->alloc(4);
  driver_->add_indirect_chain({{a, 3, false}}, {{b, 2, false}, {out, 4, true}});

  auto chain = queue_.pop();

  ASSERT_TRUE(chain.has_value());
  EXPECT_EQ(read_all(*chain), "mixed");
  EXPECT_EQ(chain->writable_bytes(), 4u);
}

TEST_F(VirtqueueTest, ZeroLengthDescriptorsAreSkipped) {
  uint64_t a = driver_->put("x");
  driver_->add_chain({{a, 0, false}, {a, 1, false}, {0xdead0000, 0, true}});

  auto chain = queue_.pop();

  ASSERT_TRUE(chain.has_value());
  EXPECT_EQ(read_all(*chain), "x");
  EXPECT_EQ(chain->writable_bytes(), 0u);
}

TEST_F(VirtqueueTest, ChainsArePoppedInOrderAcrossIndexWrap) {
  queue_.set_base(65534);
  driver_->set_avail_idx(65534);
  uint64_t bufs[4];
  for (int i = 0; i < 4; i++) {
    bufs[i] = driver_->put(std::string(1, static_cast<char>('a' + i)));
    driver_->add_chain({{bufs[i], 1, false}});
  }

  std::string seen;
  while (auto chain = queue_.pop()) {
    seen += read_all(*chain);
    ASSERT_TRUE(queue_.add_used(*chain, 0));
  }

  EXPECT_EQ(seen, "abcd");
  EXPECT_EQ(queue_.next_avail(), 2);
  EXPECT_EQ(driver_->used_idx(), 2);
  EXPECT_FALSE(queue_.broken());
}

TEST_F(VirtqueueTest, SignalsUnlessDriverSuppressesInterrupts) {
  uint64_t a = driver_->put("a");
  driver_->add_chain({{a, 1, false}});
  driver_->add_chain({{a, 1, false}});
  auto c1 = queue_.pop();
  auto c2 = queue_.pop();
  ASSERT_TRUE(c1 && c2);

  ASSERT_TRUE(queue_.add_used(*c1, 0));
  bool first = queue_.needs_notification();
  bool nothing_new = queue_.needs_notification();
  driver_->set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);
  ASSERT_TRUE(queue_.add_used(*c2, 0));
  bool suppressed = queue_.needs_notification();

  EXPECT_TRUE(first);
  EXPECT_FALSE(nothing_new);
  EXPECT_FALSE(suppressed);
}

TEST_F(VirtqueueTest, EventIdxSignalsOnlyWhenUsedEventIsCrossed) {
  queue_.set_event_idx(true);
  uint64_t a = driver_->put("a");
  for (int i = 0; i < 6; i++) driver_->add_chain({{a, 1, false}});
  std::vector<DescriptorChain> chains;
  while (auto c = queue_.pop()) chains.push_back(std::move(*c));
  ASSERT_EQ(chains.size(), 6u);

  // The first decision has no previous position: always signal.
  ASSERT_TRUE(queue_.add_used(chains[0], 0));  // used idx 1
  bool first = queue_.needs_notification();
  // The driver wants an interrupt once entry 3 (idx 3 -> 4) is used.
  driver_->set_used_event(3);
  ASSERT_TRUE(queue_.add_used(chains[1], 0));  // 2
  bool at2 = queue_.needs_notification();
  ASSERT_TRUE(queue_.add_used(chains[2], 0));  // 3
  bool at3 = queue_.needs_notification();
  ASSERT_TRUE(queue_.add_used(chains[3], 0));  // 4: crosses used_event 3
  bool at4 = queue_.needs_notification();
  ASSERT_TRUE(queue_.add_used(chains[4], 0));  // 5
  ASSERT_TRUE(queue_.add_used(chains[5], 0));  // 6
  bool at6 = queue_.needs_notification();

  EXPECT_TRUE(first);
  EXPECT_FALSE(at2);
  EXPECT_FALSE(at3);
  EXPECT_TRUE(at4);
  EXPECT_FALSE(at6);
  // avail_event tells the driver to kick for the next buffer after the ones we took.
  EXPECT_EQ(driver_->avail_event(), 6);
}

TEST_F(VirtqueueTest, EventIdxIgnoresNoInterruptFlag) {
  queue_.set_event_idx(true);
  driver_->set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);
  uint64_t a = driver_->put("a");
  driver_->add_chain({{a, 1, false}});
  auto c = queue_.pop();
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(queue_.add_used(*c, 0));

  EXPECT_TRUE(queue_.needs_notification());
}

TEST_F(VirtqueueTest, EmptyPopWithEventIdxPublishesAvailEvent) {
  queue_.set_event_idx(true);
  queue_.set_base(5);
  driver_->set_avail_idx(5);

  EXPECT_FALSE(queue_.pop().has_value());

  EXPECT_EQ(driver_->avail_event(), 5);
}

TEST_F(VirtqueueTest, NotifyWritesTheCallEventfd) {
  UniqueFd call(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  int call_fd = call.get();
  queue_.set_call_fd(std::move(call));
  uint64_t a = driver_->put("a");
  driver_->add_chain({{a, 1, false}});
  auto c = queue_.pop();
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(queue_.add_used(*c, 0));

  bool signalled = queue_.notify();
  uint64_t count = 0;
  ssize_t n = ::read(call_fd, &count, sizeof count);

  EXPECT_TRUE(signalled);
  EXPECT_EQ(n, 8);
  EXPECT_EQ(count, 1u);
}

TEST_F(VirtqueueTest, AddUsedRejectsOutOfRangeHead) {
  EXPECT_FALSE(queue_.add_used(kQueueSize, 0).has_value());
  EXPECT_EQ(driver_->used_idx(), 0);
}

TEST(VirtqueueConfig, SizeMustBePowerOfTwoUpTo32768) {
  Virtqueue q;
  EXPECT_FALSE(q.set_size(0).has_value());
  EXPECT_FALSE(q.set_size(3).has_value());
  EXPECT_FALSE(q.set_size(65536).has_value());
  EXPECT_FALSE(q.set_size(100000).has_value());
  EXPECT_TRUE(q.set_size(1).has_value());
  EXPECT_TRUE(q.set_size(32768).has_value());
}

TEST(VirtqueueConfig, InactiveQueuePopsNothingAndRefusesUsed) {
  Virtqueue q;
  EXPECT_FALSE(q.pop().has_value());
  EXPECT_FALSE(q.add_used(0, 0).has_value());
  EXPECT_FALSE(q.needs_notification());
}

// ---- hostile guests: each of these marks the queue broken, never crashes ----

class HostileTest : public VirtqueueTest {
 protected:
  void expect_broken(const std::string& reason_part) {
    EXPECT_FALSE(queue_.pop().has_value());
    EXPECT_TRUE(queue_.broken());
    EXPECT_NE(queue_.broken_reason().find(reason_part), std::string::npos)
        << queue_.broken_reason();
    // Broken stays broken: even a valid chain is not processed.
    uint64_t a = driver_->put("ok");
    driver_->add_chain({{a, 2, false}});
    EXPECT_FALSE(queue_.pop().has_value());
    EXPECT_FALSE(queue_.add_used(0, 0).has_value());
  }
};

TEST_F(HostileTest, DescriptorLoop) {
  uint64_t a = driver_->put("a");
  driver_->write_desc(0, {a, 1, VIRTQ_DESC_F_NEXT, 1});
  driver_->write_desc(1, {a, 1, VIRTQ_DESC_F_NEXT, 0});
  driver_->push_avail(0);

  expect_broken("loop");
}

TEST_F(HostileTest, SelfLoopInIndirectTable) {
  uint64_t a = driver_->put("a");
  uint64_t table = driver_->alloc(32);
  driver_->write_desc_at(table, {a, 1, VIRTQ_DESC_F_NEXT, 1});
  driver_->write_desc_at(table + 16, {a, 1, VIRTQ_DESC_F_NEXT, 1});
  driver_->write_desc(0, {table, 32, VIRTQ_DESC_F_INDIRECT, 0});
  driver_->push_avail(0);

  expect_broken("indirect table");
}

TEST_F(HostileTest, NestedIndirect) {
  uint64_t inner = driver_->alloc(16);
  uint64_t outer = driver_->alloc(16);
  driver_->write_desc_at(inner, {driver_->put("a"), 1, 0, 0});
  driver_->write_desc_at(outer, {inner, 16, VIRTQ_DESC_F_INDIRECT, 0});
  driver_->write_desc(0, {outer, 16, VIRTQ_DESC_F_INDIRECT, 0});
  driver_->push_avail(0);

  expect_broken("nested indirect");
}

TEST_F(HostileTest, IndirectLengthNotMultipleOf16) {
  uint64_t table = driver_->alloc(32);
  driver_->write_desc(0, {table, 24, VIRTQ_DESC_F_INDIRECT, 0});
  driver_->push_avail(0);

  expect_broken("multiple of 16");
}

TEST_F(HostileTest, EmptyIndirectTable) {
  driver_->write_desc(0, {driver_->alloc(16), 0, VIRTQ_DESC_F_INDIRECT, 0});
  driver_->push_avail(0);

  expect_broken("multiple of 16");
}

TEST_F(HostileTest, IndirectTableOutsideMemory) {
  driver_->write_desc(0, {kGpa + kMemSize - 16, 32, VIRTQ_DESC_F_INDIRECT, 0});
  driver_->push_avail(0);

  expect_broken("indirect table");
}

TEST_F(HostileTest, IndirectWithNext) {
  uint64_t table = driver_->alloc(16);
  driver_->write_desc_at(table, {driver_->put("a"), 1, 0, 0});
  driver_->write_desc(0, {table, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1});
  driver_->push_avail(0);

  expect_broken("NEXT");
}

TEST_F(HostileTest, BufferOutsideGuestMemory) {
  driver_->add_chain({{0x1000, 16, false}});

  expect_broken("not inside");
}

TEST_F(HostileTest, BufferCrossingTheEndOfMemory) {
  driver_->add_chain({{kGpa + kMemSize - 8, 16, true}});

  expect_broken("not inside");
}

TEST_F(HostileTest, BufferWithWrappingAddress) {
  driver_->add_chain({{UINT64_MAX - 4, 16, false}});

  expect_broken("not inside");
}

TEST_F(HostileTest, AvailIdxJumpsByMoreThanQueueSize) {
  driver_->set_avail_idx(kQueueSize + 1);

  expect_broken("avail idx jumped");
}

TEST_F(HostileTest, HeadIndexOutOfRange) {
  driver_->push_avail(kQueueSize);

  expect_broken("head index");
}

TEST_F(HostileTest, NextIndexOutOfRange) {
  uint64_t a = driver_->put("a");
  driver_->write_desc(0, {a, 1, VIRTQ_DESC_F_NEXT, 200});
  driver_->push_avail(0);

  expect_broken("out of range");
}

TEST_F(HostileTest, ReadableAfterWritable) {
  uint64_t a = driver_->put("abc");
  driver_->add_chain({{a, 1, false}, {a + 1, 1, true}, {a + 2, 1, false}});

  expect_broken("readable descriptor after a writable");
}

TEST_F(HostileTest, ChainLongerThanTheQueue) {
  // Every descriptor of the ring chained, then back to the start: kQueueSize + 1 visits.
  uint64_t a = driver_->put("a");
  for (uint16_t i = 0; i < kQueueSize; i++) {
    driver_->write_desc(i, {a, 1, VIRTQ_DESC_F_NEXT, static_cast<uint16_t>((i + 1) % kQueueSize)});
  }
  driver_->push_avail(0);

  expect_broken("more than 8 descriptors");
}

TEST(HostileChains, ChainOfFourGigabytesOrMore) {
  // A sparse 3 GiB memfd: two in-range 2 GiB descriptors sum past the u32 used length.
  auto m = MemfdMemory::create(kGpa, 3ull << 30, kVa);
  ASSERT_TRUE(m.has_value());
  MockDriver driver(m->memory, m->region, 8, kGpa, kGpa + 0x10000);
  Virtqueue queue;
  driver.configure(queue);
  ASSERT_TRUE(queue.activate(m->memory));
  driver.add_chain({{kGpa, 0x80000000u, false}, {kGpa, 0x80000000u, true}});

  EXPECT_FALSE(queue.pop().has_value());

  EXPECT_TRUE(queue.broken());
  EXPECT_NE(queue.broken_reason().find("4 GiB"), std::string::npos) << queue.broken_reason();
}

TEST_F(HostileTest, BrokenQueueSignalsErrFd) {
  UniqueFd err(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  int err_fd = err.get();
  queue_.set_err_fd(std::move(err));
  driver_->set_avail_idx(1000);

  EXPECT_FALSE(queue_.pop().has_value());
  uint64_t v = 0;

  EXPECT_EQ(::read(err_fd, &v, sizeof v), 8);
  EXPECT_EQ(v, 1u);
}

TEST_F(HostileTest, ClearBrokenLetsARestartedQueueRun) {
  driver_->set_avail_idx(1000);
  EXPECT_FALSE(queue_.pop().has_value());
  ASSERT_TRUE(queue_.broken());

  queue_.clear_broken();
  queue_.set_base(1000);
  uint64_t a = driver_->put("z");
  driver_->add_chain({{a, 1, false}});

  auto c = queue_.pop();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(read_all(*c), "z");
}

TEST(HostileRings, RingsOutsideMemoryOrMisalignedFailActivation) {
  auto m = MemfdMemory::create(kGpa, 0x10000, kVa);
  ASSERT_TRUE(m.has_value());
  Virtqueue outside, misaligned, too_big;
  ASSERT_TRUE(outside.set_size(256));
  outside.set_addresses(kVa + 0x10000 - 16, kVa + 0x1000, kVa + 0x2000);
  ASSERT_TRUE(misaligned.set_size(8));
  misaligned.set_addresses(kVa + 8, kVa + 0x1000, kVa + 0x2000);
  ASSERT_TRUE(too_big.set_size(32768));
  too_big.set_addresses(kVa, kVa + 0x8000, kVa + 0x9000);  // the desc table alone is 512 KiB

  EXPECT_FALSE(outside.activate(m->memory).has_value());
  EXPECT_FALSE(misaligned.activate(m->memory).has_value());
  EXPECT_FALSE(too_big.activate(m->memory).has_value());
  EXPECT_TRUE(outside.broken());
  EXPECT_FALSE(outside.pop().has_value());
}

}  // namespace
}  // namespace pinata::vhost
