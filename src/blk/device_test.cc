// Device tests: a FakeGuest plays the virtio-blk driver (MockDriver rings in memfd guest
// memory) against a Device over a RawDisk or a Qcow2Disk in a temporary directory. Requests
// complete synchronously on the test thread. The last tests drive the whole backend over a
// socketpair the way QEMU does (GET_CONFIG, SET_CONFIG, kick, disconnect).
#include "blk/device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "disk/qcow2_disk.h"
#include "disk/raw_disk.h"
#include "vhost/message_io.h"
#include "vhost/mock_driver.h"

namespace pinata::blk {
namespace {

using vhost::bit;
using vhost::testing::Buf;
using vhost::testing::MemfdMemory;
using vhost::testing::MockDriver;

constexpr uint64_t kGpa = 0x40000000;
constexpr uint64_t kMemSize = 64 << 20;
constexpr uint64_t kVa = 0x7f5600000000;
constexpr uint16_t kQueueSize = 256;
constexpr uint32_t kMaxTestQueues = 4;
constexpr uint64_t kScratchGpa = kGpa + (16 << 20);  // request buffers (reset per request)
constexpr uint64_t kDiskSize = 16 << 20;             // 32768 sectors
constexpr uint32_t kClusterSize = 64 << 10;

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1103515245u + 12345u;
    b = static_cast<uint8_t>(x >> 16);
  }
  return v;
}

// Fails every call after `ok_calls` successful ones (when armed): the disk I/O error path.
class FailingDisk : public disk::Disk {
 public:
  explicit FailingDisk(disk::Disk& d) : d_(d) {}
  void fail_after(int ok_calls) { budget_ = ok_calls; }
  disk::ImageFormat format() const override { return d_.format(); }
  uint64_t virtual_size() const override { return d_.virtual_size(); }
  bool read_only() const override { return d_.read_only(); }
  Status read(uint64_t o, std::span<uint8_t> b) override {
    if (!gate()) return eio();
    return d_.read(o, b);
  }
  Status write(uint64_t o, std::span<const uint8_t> b) override {
    if (!gate()) return eio();
    return d_.write(o, b);
  }
  Status write_zeroes(uint64_t o, uint64_t l, disk::Unmap u) override {
    if (!gate()) return eio();
    return d_.write_zeroes(o, l, u);
  }
  Status discard(uint64_t o, uint64_t l) override {
    if (!gate()) return eio();
    return d_.discard(o, l);
  }
  Status flush() override {
    if (!gate()) return eio();
    return d_.flush();
  }
  Result<disk::DiskInfo> info() override { return d_.info(); }
  Status compact() override { return d_.compact(); }
  Status close() override { return d_.close(); }
  int calls = 0;

 private:
  bool gate() {
    calls++;
    if (budget_ < 0) return true;
    if (budget_ == 0) return false;
    budget_--;
    return true;
  }
  static tl::unexpected<Error> eio() { return fail_errno("injected failure", EIO); }
  disk::Disk& d_;
  int budget_ = -1;
};

struct Completion {
  uint8_t status = 0xff;
  uint32_t len = 0;
  std::vector<uint8_t> data;  // the device-writable data part (before the status byte)
};

// How the test lays a request out in descriptors.
struct Layout {
  uint32_t piece = 4096;        // data split into descriptors of at most this many bytes
  bool indirect = false;        // one indirect table for the whole chain
  bool status_in_data = false;  // status shares the last writable descriptor with data
  uint32_t header_split = 0;    // if non-zero, the header is two descriptors split here
};

class FakeGuest {
 public:
  FakeGuest(const MemfdMemory& mem, Device& device, uint32_t queues) : mem_(mem), device_(device) {
    for (uint32_t q = 0; q < queues; q++) {
      drivers_.push_back(std::make_unique<MockDriver>(
          mem.memory, mem.region, kQueueSize, kGpa + q * 0x10000, kGpa + 0x100000 + q * 0x100000));
      vqs_.push_back(std::make_unique<vhost::Virtqueue>(q));
      drivers_[q]->configure(*vqs_[q]);
      vqs_[q]->set_event_idx(true);
      EXPECT_TRUE(vqs_[q]->activate(mem.memory));
      device_.queue_ready(q, *vqs_[q], -1);
    }
  }

  uint64_t scratch(size_t n) {
    uint64_t gpa = next_;
    next_ += (n + 15) & ~size_t{15};
    EXPECT_LE(next_, kGpa + kMemSize);
    return gpa;
  }
  void put(uint64_t gpa, std::span<const uint8_t> bytes) {
    ASSERT_TRUE(mem_.memory->write(gpa, bytes.data(), bytes.size()));
  }

  // Posts raw buffers as one chain on queue `q`, kicks, and returns the used element.
  vhost::testing::UsedElem run_chain(uint32_t q, const std::vector<Buf>& bufs, bool indirect) {
    MockDriver& d = *drivers_[q];
    uint16_t before = d.used_idx();
    if (indirect) {
      d.add_indirect_chain({}, bufs);
    } else {
      d.add_chain(bufs);
    }
    device_.handle_kick(q, *vqs_[q]);
    EXPECT_EQ(d.used_idx(), static_cast<uint16_t>(before + 1)) << "request not completed";
    return d.used_elem(before);
  }

  // A complete request: header, `out` data (device-readable), `in_len` bytes of
  // device-writable data, then the status byte.
  Completion submit(uint32_t q, RequestHeader h, std::span<const uint8_t> out, uint32_t in_len,
                    Layout layout = {}) {
    next_ = kScratchGpa;
    std::vector<Buf> bufs;
    auto hdr = encode_header(h);
    uint64_t hgpa = scratch(kHeaderSize);
    put(hgpa, hdr);
    if (layout.header_split) {
      bufs.push_back({hgpa, layout.header_split, false});
      bufs.push_back({hgpa + layout.header_split,
                      static_cast<uint32_t>(kHeaderSize - layout.header_split), false});
    } else {
      bufs.push_back({hgpa, kHeaderSize, false});
    }
    for (size_t off = 0; off < out.size(); off += layout.piece) {
      uint32_t n = static_cast<uint32_t>(std::min<size_t>(layout.piece, out.size() - off));
      uint64_t g = scratch(n);
      put(g, out.subspan(off, n));
      bufs.push_back({g, n, false});
    }
    // The writable part: data + status, contiguous in guest memory so it reads back easily.
    uint64_t in_gpa = scratch(in_len + 1);
    std::vector<uint8_t> poison(in_len + 1, 0xee);
    put(in_gpa, poison);
    uint32_t data_descs = 0;
    for (uint32_t off = 0; off < in_len; off += layout.piece) {
      uint32_t n = std::min(layout.piece, in_len - off);
      bool last = off + n == in_len;
      if (last && layout.status_in_data) n += 1;
      bufs.push_back({in_gpa + off, n, true});
      data_descs++;
    }
    if (!(layout.status_in_data && data_descs > 0)) bufs.push_back({in_gpa + in_len, 1, true});
    auto used = run_chain(q, bufs, layout.indirect);
    Completion c;
    c.len = used.len;
    auto bytes = drivers_[q]->get(in_gpa, in_len + 1);
    c.status = bytes[in_len];
    c.data.assign(bytes.begin(), bytes.begin() + in_len);
    return c;
  }

  Completion read(uint32_t q, uint64_t sector, uint32_t len, Layout layout = {}) {
    return submit(q, {VIRTIO_BLK_T_IN, 0, sector}, {}, len, layout);
  }
  Completion write(uint32_t q, uint64_t sector, std::span<const uint8_t> data, Layout layout = {}) {
    return submit(q, {VIRTIO_BLK_T_OUT, 0, sector}, data, 0, layout);
  }
  Completion simple(uint32_t q, uint32_t type, uint64_t sector = 0) {
    return submit(q, {type, 0, sector}, {}, 0);
  }
  Completion segments(uint32_t q, uint32_t type, const std::vector<RangeSegment>& segs) {
    std::vector<uint8_t> payload;
    for (const auto& s : segs) {
      auto b = encode_segment(s);
      payload.insert(payload.end(), b.begin(), b.end());
    }
    return submit(q, {type, 0, 0}, payload, 0);
  }

  vhost::Virtqueue& vq(uint32_t q) { return *vqs_[q]; }
  MockDriver& driver(uint32_t q) { return *drivers_[q]; }

 private:
  const MemfdMemory& mem_;
  Device& device_;
  std::vector<std::unique_ptr<MockDriver>> drivers_;
  std::vector<std::unique_ptr<vhost::Virtqueue>> vqs_;
  uint64_t next_ = kScratchGpa;
};

enum class Format { kRaw, kQcow2 };

class DeviceTest : public ::testing::TestWithParam<Format> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/blk-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto m = MemfdMemory::create(kGpa, kMemSize, kVa);
    ASSERT_TRUE(m.has_value());
    mem_ = std::move(*m);
    path_ = dir_ + (format() == Format::kRaw ? "/disk.raw" : "/disk.qcow2");
    if (format() == Format::kRaw) {
      ASSERT_TRUE(disk::RawDisk::create(path_, kDiskSize));
    } else {
      disk::Qcow2CreateOptions o;
      o.virtual_size = kDiskSize;
      o.cluster_size = kClusterSize;
      ASSERT_TRUE(disk::Qcow2Disk::create(path_, o));
    }
  }
  void TearDown() override {
    guest_.reset();
    device_.reset();
    failing_.reset();
    disk_.reset();
    (void)std::system(("rm -rf " + dir_).c_str());
  }
  Format format() const { return GetParam(); }

  void open(disk::Access access = disk::Access::kReadWrite) {
    disk::OpenOptions o;
    o.access = access;
    auto d = disk::open_disk(path_, o);
    ASSERT_TRUE(d.has_value()) << d.error().message();
    disk_ = std::move(*d);
  }
  // Opens the image and starts a device (features negotiated as Linux does: all offered).
  void start(DeviceOptions options = {}, disk::Access access = disk::Access::kReadWrite,
             bool failing = false) {
    open(access);
    disk::Disk* d = disk_.get();
    if (failing) {
      failing_ = std::make_unique<FailingDisk>(*disk_);
      d = failing_.get();
    }
    if (options.serial.empty()) options.serial = "pinata-test";
    if (format() == Format::kQcow2) options.discard_granularity = kClusterSize;
    device_ = std::make_unique<Device>(*d, options);
    device_->set_features(device_->features());
    guest_ = std::make_unique<FakeGuest>(mem_, *device_, options.num_queues);
  }
  // Stops the device and closes the image; returns the image's bytes read through a fresh
  // read-only open (the "on disk" contents).
  std::vector<uint8_t> image_bytes(uint64_t offset, size_t len) {
    guest_.reset();
    if (device_) device_->reset();
    device_.reset();
    failing_.reset();
    if (disk_) {
      EXPECT_TRUE(disk_->close());
    }
    disk_.reset();
    disk::OpenOptions o;
    o.access = disk::Access::kReadOnly;
    auto d = disk::open_disk(path_, o);
    EXPECT_TRUE(d.has_value());
    std::vector<uint8_t> out(len);
    if (d) {
      EXPECT_TRUE((*d)->read(offset, out));
    }
    return out;
  }
  std::vector<uint8_t> raw_file_bytes(uint64_t offset, size_t len) {
    std::vector<uint8_t> out(len);
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pread(fd, out.data(), len, static_cast<off_t>(offset)), static_cast<ssize_t>(len));
    ::close(fd);
    return out;
  }
  disk::Qcow2Disk* qcow2() { return dynamic_cast<disk::Qcow2Disk*>(disk_.get()); }
  // Reads through a second, read-only open of the image while the device's is still open:
  // what a crash right now would leave.
  std::vector<uint8_t> peek(uint64_t offset, size_t len) {
    disk::OpenOptions o;
    o.access = disk::Access::kReadOnly;
    auto d = disk::open_disk(path_, o);
    EXPECT_TRUE(d.has_value());
    std::vector<uint8_t> out(len);
    if (d) {
      EXPECT_TRUE((*d)->read(offset, out));
    }
    return out;
  }

  std::string dir_, path_;
  MemfdMemory mem_;
  std::unique_ptr<disk::Disk> disk_;
  std::unique_ptr<FailingDisk> failing_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<FakeGuest> guest_;
};

INSTANTIATE_TEST_SUITE_P(Formats, DeviceTest, ::testing::Values(Format::kRaw, Format::kQcow2),
                         [](const auto& info) {
                           return info.param == Format::kRaw ? "Raw" : "Qcow2";
                         });

// ---- features and config

TEST_P(DeviceTest, OffersBlockFeatures) {
  start();

  uint64_t f = device_->features();

  for (int b : {vhost::VIRTIO_F_VERSION_1, vhost::VIRTIO_RING_F_EVENT_IDX,
                vhost::VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE,
                VIRTIO_BLK_F_TOPOLOGY, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_CONFIG_WCE,
                VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES}) {
    EXPECT_TRUE(f & bit(b)) << "feature bit " << b;
  }
  EXPECT_FALSE(f & bit(VIRTIO_BLK_F_RO));
  EXPECT_FALSE(f & bit(VIRTIO_BLK_F_MQ));  // one queue
  EXPECT_TRUE(device_->protocol_features() & bit(vhost::PROTOCOL_F_CONFIG));
  EXPECT_EQ(device_->num_queues(), 1u);
  EXPECT_FALSE(device_->writethrough());
}

TEST_P(DeviceTest, ConfigSpaceDescribesTheDisk) {
  start();
  std::vector<uint8_t> c(60);
  std::vector<uint8_t> tail(256 - 60, 0xaa);

  ASSERT_TRUE(device_->read_config(0, c));
  ASSERT_TRUE(device_->read_config(60, tail));
  std::vector<uint8_t> past(8);
  auto bad = device_->read_config(252, past);

  auto le32 = [&](size_t o) { return c[o] | c[o + 1] << 8 | c[o + 2] << 16 | c[o + 3] << 24; };
  EXPECT_EQ(le32(0), static_cast<int>(kDiskSize / 512));  // capacity (low half)
  EXPECT_EQ(le32(4), 0);
  EXPECT_EQ(le32(12), 126);  // seg_max
  EXPECT_EQ(le32(20), 512);  // blk_size
  EXPECT_EQ(c[24], 3);       // 4096-byte physical blocks
  EXPECT_EQ(c[32], 1);       // writeback
  EXPECT_EQ(c[34], 1);       // num_queues
  EXPECT_EQ(le32(36), 1 << 21);
  EXPECT_EQ(le32(40), 256);
  EXPECT_EQ(le32(44), format() == Format::kQcow2 ? 128 : 8);  // granularity in sectors
  EXPECT_EQ(c[56], 1);                                        // write_zeroes_may_unmap
  EXPECT_EQ(tail, std::vector<uint8_t>(256 - 60, 0));
  EXPECT_FALSE(bad.has_value());
}

TEST_P(DeviceTest, PartialConfigReadsAsQemuDoes) {
  start();
  std::vector<uint8_t> capacity(8);

  ASSERT_TRUE(device_->read_config(0, capacity));

  EXPECT_EQ(capacity[0] | capacity[1] << 8 | capacity[2] << 16, static_cast<int>(kDiskSize / 512));
}

// ---- read / write / flush / get-id

TEST_P(DeviceTest, WriteThenReadRoundTripsAndReachesTheImage) {
  start();
  auto data = pattern(64 << 10, 1);

  Completion w = guest_->write(0, 8, data);
  Completion r = guest_->read(0, 8, static_cast<uint32_t>(data.size()));

  EXPECT_EQ(w.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(w.len, 1u);  // only the status byte was written
  EXPECT_EQ(r.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.len, data.size() + 1);
  EXPECT_EQ(r.data, data);
  EXPECT_EQ(device_->stats().bytes_written, data.size());
  EXPECT_EQ(device_->stats().bytes_read, data.size());
  EXPECT_EQ(image_bytes(8 * 512, data.size()), data);
  if (format() == Format::kRaw) {
    EXPECT_EQ(raw_file_bytes(8 * 512, data.size()), data);
  }
}

TEST_P(DeviceTest, UnwrittenSectorsReadAsZeros) {
  start();

  Completion r = guest_->read(0, 1000, 4096);

  EXPECT_EQ(r.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.data, std::vector<uint8_t>(4096, 0));
}

TEST_P(DeviceTest, LargeRequestsCrossTheBounceBufferChunks) {
  start();
  auto data = pattern((3 << 20) + 512, 2);  // more than three 1 MiB chunks
  Layout big{.piece = 64 << 10, .indirect = true};

  Completion w = guest_->write(0, 2048 + 1, data, big);
  Completion r = guest_->read(0, 2048 + 1, static_cast<uint32_t>(data.size()), big);

  EXPECT_EQ(w.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.len, data.size() + 1);
  EXPECT_TRUE(r.data == data);
}

TEST_P(DeviceTest, AnyDescriptorLayoutWorks) {
  start();
  auto data = pattern(8192, 3);

  Completion w = guest_->write(0, 16, data, Layout{.piece = 1000, .header_split = 5});
  Completion r =
      guest_->read(0, 16, 8192, Layout{.piece = 8192, .status_in_data = true, .header_split = 9});
  Completion r2 = guest_->read(0, 16, 8192, Layout{.piece = 512, .indirect = true});

  EXPECT_EQ(w.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.len, 8193u);
  EXPECT_EQ(r.data, data);
  EXPECT_EQ(r2.data, data);
}

TEST_P(DeviceTest, ReadOfTheLastSectorWorks) {
  start();
  auto data = pattern(512, 4);
  const uint64_t last = kDiskSize / 512 - 1;

  Completion w = guest_->write(0, last, data);
  Completion r = guest_->read(0, last, 512);

  EXPECT_EQ(w.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.data, data);
}

TEST_P(DeviceTest, FlushSucceedsAndMakesTheImageClean) {
  start();
  auto data = pattern(4096, 5);
  ASSERT_EQ(guest_->write(0, 0, data).status, VIRTIO_BLK_S_OK);

  Completion f = guest_->simple(0, VIRTIO_BLK_T_FLUSH);

  EXPECT_EQ(f.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(f.len, 1u);
  EXPECT_EQ(device_->stats().flushes, 1u);
  EXPECT_EQ(peek(0, 4096), data);
  if (qcow2()) {
    EXPECT_FALSE(qcow2()->dirty_bit_on_disk());
  }
}

TEST_P(DeviceTest, LegacyFlushOutIsAFlush) {
  start();

  Completion f = guest_->simple(0, VIRTIO_BLK_T_FLUSH_OUT);

  EXPECT_EQ(f.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(device_->stats().flushes, 1u);
}

TEST_P(DeviceTest, GetIdReturnsTheSerialNulPadded) {
  start(DeviceOptions{.serial = "pinata-abc"});

  Completion id = guest_->submit(0, {VIRTIO_BLK_T_GET_ID, 0, 0}, {}, 20);

  EXPECT_EQ(id.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(id.len, 21u);
  std::string expect = "pinata-abc";
  expect.resize(20, '\0');
  EXPECT_EQ(std::string(id.data.begin(), id.data.end()), expect);
}

TEST_P(DeviceTest, GetIdWithATwentyByteSerialHasNoTerminator) {
  std::string serial = make_serial("/home/user/.pinata/Docker.qcow2");
  start(DeviceOptions{.serial = serial});

  Completion id = guest_->submit(0, {VIRTIO_BLK_T_GET_ID, 0, 0}, {}, 20);

  EXPECT_EQ(serial.size(), 20u);
  EXPECT_EQ(serial.rfind("pinata-", 0), 0u);
  EXPECT_EQ(std::string(id.data.begin(), id.data.end()), serial);
  EXPECT_EQ(make_serial("/home/user/.pinata/Docker.qcow2"), serial);  // stable
  EXPECT_NE(make_serial("/other.qcow2"), serial);
}

TEST_P(DeviceTest, GetIdIntoASmallBufferWritesWhatFits) {
  start();

  Completion id = guest_->submit(0, {VIRTIO_BLK_T_GET_ID, 0, 0}, {}, 4);

  EXPECT_EQ(id.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(id.len, 5u);
  EXPECT_EQ(std::string(id.data.begin(), id.data.end()), "pina");
}

// ---- discard and write zeroes

TEST_P(DeviceTest, DiscardOfWholeClustersReadsBackAsZeros) {
  start();
  auto data = pattern(256 << 10, 6);
  ASSERT_EQ(guest_->write(0, 0, data, Layout{.piece = 64 << 10, .indirect = true}).status,
            VIRTIO_BLK_S_OK);
  ASSERT_EQ(guest_->simple(0, VIRTIO_BLK_T_FLUSH).status, VIRTIO_BLK_S_OK);
  auto before = disk_->info();

  // Sectors 128..383 = bytes 64 KiB..192 KiB: two whole 64 KiB clusters.
  Completion d = guest_->segments(0, VIRTIO_BLK_T_DISCARD, {{128, 256, 0}});
  ASSERT_EQ(guest_->simple(0, VIRTIO_BLK_T_FLUSH).status, VIRTIO_BLK_S_OK);
  auto after = disk_->info();
  Completion r = guest_->read(0, 0, 256 << 10, Layout{.piece = 64 << 10, .indirect = true});

  EXPECT_EQ(d.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(d.len, 1u);
  EXPECT_EQ(device_->stats().discards, 1u);
  std::vector<uint8_t> expect = data;
  std::fill(expect.begin() + (64 << 10), expect.begin() + (192 << 10), 0);
  EXPECT_TRUE(r.data == expect);
  ASSERT_TRUE(before && after);
  EXPECT_EQ(before->allocated_bytes - after->allocated_bytes, 128u << 10);
}

TEST_P(DeviceTest, MultiSegmentDiscardProcessesEverySegment) {
  start();
  auto data = pattern(512 << 10, 7);
  ASSERT_EQ(guest_->write(0, 0, data, Layout{.piece = 64 << 10, .indirect = true}).status,
            VIRTIO_BLK_S_OK);

  Completion d =
      guest_->segments(0, VIRTIO_BLK_T_DISCARD, {{0, 128, 0}, {256, 128, 0}, {768, 128, 0}});
  Completion r = guest_->read(0, 0, 512 << 10, Layout{.piece = 64 << 10, .indirect = true});

  EXPECT_EQ(d.status, VIRTIO_BLK_S_OK);
  for (uint64_t cluster = 0; cluster < 8; cluster++) {
    bool discarded = cluster == 0 || cluster == 2 || cluster == 6;
    auto begin = r.data.begin() + cluster * (64 << 10);
    std::vector<uint8_t> got(begin, begin + (64 << 10));
    std::vector<uint8_t> want(data.begin() + cluster * (64 << 10),
                              data.begin() + (cluster + 1) * (64 << 10));
    if (discarded) want.assign(64 << 10, 0);
    EXPECT_TRUE(got == want) << "cluster " << cluster;
  }
}

TEST_P(DeviceTest, WriteZeroesWithAndWithoutUnmapReadsZeros) {
  start();
  auto data = pattern(256 << 10, 8);
  ASSERT_EQ(guest_->write(0, 0, data, Layout{.piece = 64 << 10, .indirect = true}).status,
            VIRTIO_BLK_S_OK);

  Completion keep = guest_->segments(0, VIRTIO_BLK_T_WRITE_ZEROES, {{1, 130, 0}});
  Completion unmap = guest_->segments(0, VIRTIO_BLK_T_WRITE_ZEROES,
                                      {{256, 128, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}});
  Completion r = guest_->read(0, 0, 256 << 10, Layout{.piece = 64 << 10, .indirect = true});

  EXPECT_EQ(keep.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(unmap.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(device_->stats().write_zeroes, 2u);
  std::vector<uint8_t> expect = data;
  std::fill(expect.begin() + 512, expect.begin() + 131 * 512, 0);
  std::fill(expect.begin() + 256 * 512, expect.begin() + 384 * 512, 0);
  EXPECT_TRUE(r.data == expect);
  EXPECT_TRUE(image_bytes(0, 256 << 10) == expect);
}

// ---- hostile guest

TEST_P(DeviceTest, ChainWithoutAWritableByteIsReturnedWithLengthZero) {
  start();
  uint64_t h = guest_->scratch(16);
  auto hdr = encode_header({VIRTIO_BLK_T_OUT, 0, 0});
  guest_->put(h, hdr);
  uint64_t d = guest_->scratch(512);
  guest_->put(d, pattern(512, 9));

  auto used = guest_->run_chain(0, {{h, 16, false}, {d, 512, false}}, false);

  EXPECT_EQ(used.len, 0u);
  EXPECT_EQ(device_->stats().no_status, 1u);
  EXPECT_EQ(device_->stats().writes, 0u);
  EXPECT_EQ(image_bytes(0, 512), std::vector<uint8_t>(512, 0));
}

TEST_P(DeviceTest, HeaderShorterThan16BytesIsIoErr) {
  start();
  uint64_t h = guest_->scratch(16);
  auto hdr = encode_header({VIRTIO_BLK_T_IN, 0, 0});
  guest_->put(h, hdr);
  uint64_t s = guest_->scratch(513);

  auto used = guest_->run_chain(0, {{h, 12, false}, {s, 513, true}}, false);

  EXPECT_EQ(used.len, 1u);
  EXPECT_EQ(guest_->driver(0).get(s + 512, 1)[0], VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(device_->stats().rejected, 1u);
}

TEST_P(DeviceTest, EmptyChainHeaderIsIoErr) {
  start();
  uint64_t s = guest_->scratch(1);

  auto used = guest_->run_chain(0, {{s, 1, true}}, false);

  EXPECT_EQ(used.len, 1u);
  EXPECT_EQ(guest_->driver(0).get(s, 1)[0], VIRTIO_BLK_S_IOERR);
}

TEST_P(DeviceTest, ReadBeyondCapacityIsIoErrAndWritesNoData) {
  start();
  const uint64_t capacity = kDiskSize / 512;

  Completion past = guest_->read(0, capacity - 1, 1024);
  Completion far = guest_->read(0, UINT64_MAX - 1, 4096);
  Completion huge = guest_->read(0, UINT64_MAX >> 9, 512);

  for (const Completion* c : {&past, &far, &huge}) {
    EXPECT_EQ(c->status, VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(c->len, 1u);
    EXPECT_EQ(c->data, std::vector<uint8_t>(c->data.size(), 0xee));  // untouched
  }
  EXPECT_EQ(device_->stats().reads, 0u);
}

TEST_P(DeviceTest, WriteBeyondCapacityIsIoErrAndChangesNothing) {
  start();
  const uint64_t capacity = kDiskSize / 512;
  auto data = pattern(1024, 10);

  Completion past = guest_->write(0, capacity - 1, data);
  Completion wrap = guest_->write(0, UINT64_MAX, data);

  EXPECT_EQ(past.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(wrap.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(image_bytes(kDiskSize - 512, 512), std::vector<uint8_t>(512, 0));
}

TEST_P(DeviceTest, DataNotAMultipleOf512IsIoErr) {
  start();

  Completion r = guest_->read(0, 0, 100);
  Completion w = guest_->write(0, 0, pattern(700, 11));

  EXPECT_EQ(r.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(r.len, 1u);
  EXPECT_EQ(w.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(image_bytes(0, 1024), std::vector<uint8_t>(1024, 0));
}

TEST_P(DeviceTest, UnknownRequestTypeIsUnsupp) {
  start();

  Completion scsi = guest_->simple(0, 2);
  Completion lifetime = guest_->submit(0, {VIRTIO_BLK_T_GET_LIFETIME, 0, 0}, {}, 8);
  Completion barrier = guest_->write(0, 0, pattern(512, 12));  // sanity: a real write works
  Completion junk = guest_->simple(0, 0xdeadbeef);

  EXPECT_EQ(scsi.status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(lifetime.status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(lifetime.len, 1u);
  EXPECT_EQ(barrier.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(junk.status, VIRTIO_BLK_S_UNSUPP);
}

TEST_P(DeviceTest, MalformedDiscardListsAreIoErr) {
  start();
  auto data = pattern(128 << 10, 13);
  ASSERT_EQ(guest_->write(0, 0, data, Layout{.piece = 64 << 10, .indirect = true}).status,
            VIRTIO_BLK_S_OK);
  std::vector<uint8_t> odd(17, 0);
  std::vector<RangeSegment> too_many(257, RangeSegment{0, 128, 0});

  Completion empty = guest_->submit(0, {VIRTIO_BLK_T_DISCARD, 0, 0}, {}, 0);
  Completion ragged = guest_->submit(0, {VIRTIO_BLK_T_DISCARD, 0, 0}, odd, 0);
  Completion many = guest_->segments(0, VIRTIO_BLK_T_DISCARD, too_many);
  Completion past = guest_->segments(0, VIRTIO_BLK_T_DISCARD, {{0, 128, 0}, {32760, 16, 0}});
  Completion wrap = guest_->segments(0, VIRTIO_BLK_T_WRITE_ZEROES, {{UINT64_MAX - 7, 16, 0}});
  Completion long_seg = guest_->segments(0, VIRTIO_BLK_T_DISCARD, {{0, (1u << 21) + 1, 0}});

  for (const Completion* c : {&empty, &ragged, &many, &past, &wrap, &long_seg}) {
    EXPECT_EQ(c->status, VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(c->len, 1u);
  }
  EXPECT_EQ(device_->stats().discards, 0u);
  // The valid first segment of `past` was not applied either: checks come before any I/O.
  EXPECT_TRUE(guest_->read(0, 0, 128 << 10, Layout{.piece = 64 << 10, .indirect = true}).data ==
              data);
}

TEST_P(DeviceTest, DiscardWithUnmapOrUnknownFlagsIsUnsupp) {
  start();

  Completion unmap =
      guest_->segments(0, VIRTIO_BLK_T_DISCARD, {{0, 128, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}});
  Completion flags = guest_->segments(0, VIRTIO_BLK_T_WRITE_ZEROES, {{0, 128, 4}});

  EXPECT_EQ(unmap.status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(flags.status, VIRTIO_BLK_S_UNSUPP);
}

TEST_P(DeviceTest, DiscardIsUnsuppWhenNotNegotiated) {
  start();
  device_->set_features(device_->features() & ~bit(VIRTIO_BLK_F_DISCARD) &
                        ~bit(VIRTIO_BLK_F_WRITE_ZEROES));

  Completion d = guest_->segments(0, VIRTIO_BLK_T_DISCARD, {{0, 128, 0}});
  Completion z = guest_->segments(0, VIRTIO_BLK_T_WRITE_ZEROES, {{0, 128, 0}});

  EXPECT_EQ(d.status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(z.status, VIRTIO_BLK_S_UNSUPP);
}

TEST_P(DeviceTest, HostileRingBreaksTheQueueWithoutTouchingTheDisk) {
  start();
  // A descriptor pointing outside guest memory: the queue refuses the chain (virtqueue.h).
  guest_->driver(0).write_desc(0, {0x1000, 16, 0, 0});
  guest_->driver(0).push_avail(0);

  device_->handle_kick(0, guest_->vq(0));

  EXPECT_TRUE(guest_->vq(0).broken());
  EXPECT_EQ(guest_->driver(0).used_idx(), 0);
  EXPECT_EQ(device_->stats().reads + device_->stats().writes, 0u);
}

// ---- disk errors

TEST_P(DeviceTest, DiskReadErrorIsIoErr) {
  start({}, disk::Access::kReadWrite, /*failing=*/true);
  failing_->fail_after(0);

  Completion r = guest_->read(0, 0, 4096);

  EXPECT_EQ(r.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(r.len, 1u);
  EXPECT_EQ(device_->stats().io_errors, 1u);
}

TEST_P(DeviceTest, UsedLengthCountsTheDataCopiedBeforeAFailure) {
  start({}, disk::Access::kReadWrite, /*failing=*/true);
  failing_->fail_after(1);  // the first 1 MiB chunk succeeds

  Completion r = guest_->read(0, 0, 2 << 20, Layout{.piece = 64 << 10, .indirect = true});

  EXPECT_EQ(r.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(r.len, (1u << 20) + 1);
}

TEST_P(DeviceTest, DiskWriteFlushAndDiscardErrorsAreIoErr) {
  start({}, disk::Access::kReadWrite, /*failing=*/true);
  failing_->fail_after(0);

  Completion w = guest_->write(0, 0, pattern(512, 14));
  Completion f = guest_->simple(0, VIRTIO_BLK_T_FLUSH);
  Completion d = guest_->segments(0, VIRTIO_BLK_T_DISCARD, {{0, 128, 0}});
  Completion z = guest_->segments(0, VIRTIO_BLK_T_WRITE_ZEROES, {{0, 8, 0}});

  EXPECT_EQ(w.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(f.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(d.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(z.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(device_->stats().io_errors, 4u);
}

// ---- read-only mode

TEST_P(DeviceTest, ReadOnlyDeviceOffersRoAndRefusesWrites) {
  {
    start();
    ASSERT_EQ(guest_->write(0, 0, pattern(4096, 15)).status, VIRTIO_BLK_S_OK);
    image_bytes(0, 0);  // close
  }
  start(DeviceOptions{.read_only = true}, disk::Access::kReadOnly);

  uint64_t f = device_->features();
  Completion r = guest_->read(0, 0, 4096);
  Completion w = guest_->write(0, 0, pattern(4096, 16));
  Completion d = guest_->segments(0, VIRTIO_BLK_T_DISCARD, {{0, 8, 0}});
  Completion z = guest_->segments(0, VIRTIO_BLK_T_WRITE_ZEROES, {{0, 8, 0}});
  Completion fl = guest_->simple(0, VIRTIO_BLK_T_FLUSH);

  EXPECT_TRUE(f & bit(VIRTIO_BLK_F_RO));
  EXPECT_FALSE(f & bit(VIRTIO_BLK_F_DISCARD));
  EXPECT_FALSE(f & bit(VIRTIO_BLK_F_WRITE_ZEROES));
  EXPECT_EQ(r.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.data, pattern(4096, 15));
  EXPECT_EQ(w.status, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(d.status, VIRTIO_BLK_S_UNSUPP);  // not offered, so not negotiated
  EXPECT_EQ(z.status, VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(fl.status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(image_bytes(0, 4096), pattern(4096, 15));
}

TEST_P(DeviceTest, ReadOnlyDiskForcesReadOnlyDevice) {
  start(DeviceOptions{}, disk::Access::kReadOnly);  // options say writable

  Completion w = guest_->write(0, 0, pattern(512, 17));

  EXPECT_TRUE(device_->features() & bit(VIRTIO_BLK_F_RO));
  EXPECT_TRUE(device_->limits().read_only);
  EXPECT_EQ(w.status, VIRTIO_BLK_S_IOERR);
}

// ---- multiple queues

TEST_P(DeviceTest, MultipleQueuesShareTheDisk) {
  start(DeviceOptions{.num_queues = kMaxTestQueues});
  std::vector<uint8_t> c(36);
  ASSERT_TRUE(device_->read_config(0, c));

  for (uint32_t q = 0; q < kMaxTestQueues; q++) {
    ASSERT_EQ(guest_->write(q, q * 64, pattern(8192, 100 + q)).status, VIRTIO_BLK_S_OK);
  }
  for (uint32_t q = 0; q < kMaxTestQueues; q++) {
    uint32_t other = (q + 1) % kMaxTestQueues;
    Completion r = guest_->read(other, q * 64, 8192);
    EXPECT_EQ(r.status, VIRTIO_BLK_S_OK);
    EXPECT_EQ(r.data, pattern(8192, 100 + q)) << "queue " << q;
  }

  EXPECT_TRUE(device_->features() & bit(VIRTIO_BLK_F_MQ));
  EXPECT_EQ(device_->num_queues(), kMaxTestQueues);
  EXPECT_EQ(c[34], kMaxTestQueues);
  for (uint32_t q = 0; q < kMaxTestQueues; q++) EXPECT_EQ(guest_->driver(q).used_idx(), 2);
}

TEST_P(DeviceTest, ABatchOfRequestsCompletesInOneKick) {
  start();
  const int n = 100;
  for (int i = 0; i < n; i++) {
    uint64_t h = kGpa + (40 << 20) + i * 32;
    auto hdr = encode_header({VIRTIO_BLK_T_IN, 0, static_cast<uint64_t>(i)});
    guest_->put(h, hdr);
    guest_->driver(0).add_chain({{h, 16, false}, {kGpa + (41 << 20) + i * 1024, 513, true}});
  }

  device_->handle_kick(0, guest_->vq(0));

  EXPECT_EQ(guest_->driver(0).used_idx(), n);
  EXPECT_EQ(device_->stats().reads, static_cast<uint64_t>(n));
}

// ---- cache mode

TEST_P(DeviceTest, WritethroughModeFlushesEveryWrite) {
  start();
  ASSERT_TRUE(device_->write_config(kConfigWritebackOffset, std::vector<uint8_t>{0}));
  ASSERT_TRUE(device_->writethrough());

  Completion w = guest_->write(0, 0, pattern(4096, 18));

  EXPECT_EQ(w.status, VIRTIO_BLK_S_OK);
  if (qcow2()) {
    EXPECT_FALSE(qcow2()->dirty_bit_on_disk());
  }  // flushed before completion
  std::vector<uint8_t> c(60);
  ASSERT_TRUE(device_->read_config(0, c));
  EXPECT_EQ(c[32], 0);
  ASSERT_TRUE(device_->write_config(kConfigWritebackOffset, std::vector<uint8_t>{1}));
  EXPECT_FALSE(device_->writethrough());
}

TEST_P(DeviceTest, WithoutFlushNegotiatedWritesAreDurableOnCompletion) {
  start();
  device_->set_features(device_->features() & ~bit(VIRTIO_BLK_F_FLUSH) &
                        ~bit(VIRTIO_BLK_F_CONFIG_WCE));

  Completion w = guest_->write(0, 0, pattern(4096, 19));

  EXPECT_TRUE(device_->writethrough());
  EXPECT_EQ(w.status, VIRTIO_BLK_S_OK);
  if (qcow2()) {
    EXPECT_FALSE(qcow2()->dirty_bit_on_disk());
  }
}

TEST_P(DeviceTest, ConfigWceWithoutFlushStartsInWritethrough) {
  start();

  device_->set_features(device_->features() & ~bit(VIRTIO_BLK_F_FLUSH));
  std::vector<uint8_t> c(60);
  ASSERT_TRUE(device_->read_config(0, c));

  EXPECT_TRUE(device_->writethrough());
  EXPECT_EQ(c[32], 0);
}

TEST_P(DeviceTest, OnlyTheWritebackByteIsWritable) {
  start();

  auto capacity = device_->write_config(0, std::vector<uint8_t>(8, 0xff));
  auto wide = device_->write_config(kConfigWritebackOffset, std::vector<uint8_t>{0, 0});

  EXPECT_FALSE(capacity.has_value());
  EXPECT_EQ(capacity.error().kind(), ErrorKind::kUnsupported);
  EXPECT_FALSE(wide.has_value());
  EXPECT_EQ(device_->limits().capacity_sectors, kDiskSize / 512);
}

TEST_P(DeviceTest, ResetFlushesAndRestoresTheDefaults) {
  start();
  ASSERT_TRUE(device_->write_config(kConfigWritebackOffset, std::vector<uint8_t>{0}));
  ASSERT_TRUE(device_->write_config(kConfigWritebackOffset, std::vector<uint8_t>{1}));
  ASSERT_EQ(guest_->write(0, 0, pattern(4096, 20)).status, VIRTIO_BLK_S_OK);
  ASSERT_TRUE(device_->write_config(kConfigWritebackOffset, std::vector<uint8_t>{0}));

  device_->reset();

  std::vector<uint8_t> c(60);
  ASSERT_TRUE(device_->read_config(0, c));
  EXPECT_EQ(c[32], 1);
  if (qcow2()) {
    EXPECT_FALSE(qcow2()->dirty_bit_on_disk());
  }
  if (qcow2()) {
    auto report = qcow2()->check();
    ASSERT_TRUE(report.has_value());
    EXPECT_EQ(report->corruptions, 0u);
    EXPECT_EQ(report->leaks, 0u);
  }
}

// ---- the whole backend, driven like QEMU does

UniqueFd make_eventfd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }

class BackendTest : public DeviceTest {
 protected:
  void start_backend(uint32_t queues = 2) {
    open();
    DeviceOptions o;
    o.num_queues = queues;
    o.serial = "pinata-backend";
    device_ = std::make_unique<Device>(*disk_, o);
    loop_ = std::move(*EventLoop::create());
    backend_ = std::make_unique<vhost::VhostUserBackend>(*loop_, *device_, "test-blk");
    connect();
  }
  void TearDown() override {
    backend_.reset();
    DeviceTest::TearDown();
  }
  void connect() {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    frontend_.reset(sv[0]);
    ASSERT_TRUE(backend_->serve(UniqueFd(sv[1])));
  }
  void pump() {
    for (int i = 0; i < 100; i++) {
      auto n = loop_->run_once(0);
      ASSERT_TRUE(n.has_value());
      if (*n == 0) return;
    }
  }
  void send(vhost::Request r, const vhost::Payload& p, std::vector<int> fds = {}) {
    auto bytes = vhost::encode(static_cast<uint32_t>(r), vhost::kVersion, p);
    ASSERT_TRUE(vhost::send_message(frontend_.get(), bytes, fds));
    pump();
  }
  std::optional<vhost::Message> call(vhost::Request r, const vhost::Payload& p) {
    send(r, p);
    struct pollfd pfd {
      frontend_.get(), POLLIN, 0
    };
    if (::poll(&pfd, 1, 0) != 1) return std::nullopt;
    auto got = vhost::receive_message(frontend_.get());
    if (!got || !*got) return std::nullopt;
    auto m = vhost::decode_reply((*got)->header, (*got)->payload, static_cast<uint32_t>(r));
    if (!m) return std::nullopt;
    return std::move(*m);
  }

  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<vhost::VhostUserBackend> backend_;
  UniqueFd frontend_;
};

INSTANTIATE_TEST_SUITE_P(Formats, BackendTest, ::testing::Values(Format::kRaw, Format::kQcow2),
                         [](const auto& info) {
                           return info.param == Format::kRaw ? "Raw" : "Qcow2";
                         });

TEST_P(BackendTest, QemuStyleSessionReadsConfigRunsRequestsAndFlushesOnDisconnect) {
  start_backend();
  // Realize: features, protocol features, queue count, config.
  auto features = call(vhost::Request::GET_FEATURES, std::monostate{});
  auto protocol = call(vhost::Request::GET_PROTOCOL_FEATURES, std::monostate{});
  send(vhost::Request::SET_PROTOCOL_FEATURES,
       uint64_t{bit(vhost::PROTOCOL_F_MQ) | bit(vhost::PROTOCOL_F_CONFIG)});
  auto queues = call(vhost::Request::GET_QUEUE_NUM, std::monostate{});
  auto config = call(vhost::Request::GET_CONFIG, vhost::ConfigSpace{0, 60, 0, {}});
  ASSERT_TRUE(features && protocol && queues && config);
  uint64_t offered = std::get<uint64_t>(features->payload);
  EXPECT_TRUE(offered & bit(VIRTIO_BLK_F_MQ));
  EXPECT_TRUE(std::get<uint64_t>(protocol->payload) & bit(vhost::PROTOCOL_F_CONFIG));
  EXPECT_EQ(std::get<uint64_t>(queues->payload), 2u);
  auto cfg = std::get<vhost::ConfigSpace>(config->payload).data;
  ASSERT_EQ(cfg.size(), 60u);
  EXPECT_EQ(cfg[0] | cfg[1] << 8 | cfg[2] << 16, static_cast<int>(kDiskSize / 512));
  // The guest switches the cache mode: QEMU forwards the writeback byte.
  send(vhost::Request::SET_CONFIG, vhost::ConfigSpace{32, 1, 0, {0}});
  EXPECT_TRUE(backend_->connected());

  // Start: features, memory, queue 0.
  send(vhost::Request::SET_FEATURES, uint64_t{offered});
  vhost::MemoryTable t;
  t.regions.push_back(mem_.region);
  UniqueFd memfd = mem_.dup_fd();
  send(vhost::Request::SET_MEM_TABLE, t, {memfd.get()});
  MockDriver driver(mem_.memory, mem_.region, kQueueSize, kGpa, kGpa + 0x100000);
  send(vhost::Request::SET_VRING_NUM, vhost::VringState{0, kQueueSize});
  send(vhost::Request::SET_VRING_ADDR,
       vhost::VringAddr{0, 0, driver.to_va(driver.desc_gpa()), driver.to_va(driver.used_gpa()),
                        driver.to_va(driver.avail_gpa()), 0});
  send(vhost::Request::SET_VRING_BASE, vhost::VringState{0, 0});
  UniqueFd call_fd = make_eventfd(), kick_fd = make_eventfd();
  send(vhost::Request::SET_VRING_CALL, uint64_t{0}, {call_fd.get()});
  send(vhost::Request::SET_VRING_KICK, uint64_t{0}, {kick_fd.get()});
  send(vhost::Request::SET_VRING_ENABLE, vhost::VringState{0, 1});

  // One write (writethrough: durable at completion), one GET_ID.
  auto data = pattern(4096, 21);
  uint64_t h = kScratchGpa, d = h + 64, s = d + 4096, h2 = s + 64, id = h2 + 64;
  ASSERT_TRUE(mem_.memory->write(h, encode_header({VIRTIO_BLK_T_OUT, 0, 24}).data(), 16));
  ASSERT_TRUE(mem_.memory->write(d, data.data(), data.size()));
  ASSERT_TRUE(mem_.memory->write(h2, encode_header({VIRTIO_BLK_T_GET_ID, 0, 0}).data(), 16));
  driver.add_chain({{h, 16, false}, {d, 4096, false}, {s, 1, true}});
  driver.add_chain({{h2, 16, false}, {id, 21, true}});
  uint64_t one = 1;
  ASSERT_EQ(::write(kick_fd.get(), &one, 8), 8);
  pump();

  EXPECT_EQ(driver.used_idx(), 2);
  EXPECT_EQ(driver.get(s, 1)[0], VIRTIO_BLK_S_OK);
  EXPECT_EQ(driver.get(id + 20, 1)[0], VIRTIO_BLK_S_OK);
  auto idbytes = driver.get(id, 14);
  EXPECT_EQ(std::string(idbytes.begin(), idbytes.end()), "pinata-backend");
  EXPECT_TRUE(device_->writethrough());
  EXPECT_EQ(peek(24 * 512, 4096), data);  // durable at completion
  if (qcow2()) {
    EXPECT_FALSE(qcow2()->dirty_bit_on_disk());
  }
  uint64_t calls = 0;
  EXPECT_EQ(::read(call_fd.get(), &calls, 8), 8);
  EXPECT_GE(calls, 1u);

  // Back to writeback, another allocating write, then the frontend goes away.
  send(vhost::Request::SET_CONFIG, vhost::ConfigSpace{32, 1, 0, {1}});
  ASSERT_TRUE(mem_.memory->write(h, encode_header({VIRTIO_BLK_T_OUT, 0, 4096}).data(), 16));
  driver.add_chain({{h, 16, false}, {d, 4096, false}, {s, 1, true}});
  ASSERT_EQ(::write(kick_fd.get(), &one, 8), 8);
  pump();
  EXPECT_EQ(driver.used_idx(), 3);
  // qcow2 keeps the new cluster's L2 entry in its cache until a flush.
  if (qcow2()) {
    EXPECT_EQ(peek(4096 * 512, 4096), std::vector<uint8_t>(4096, 0));
  }
  frontend_.reset();
  pump();

  EXPECT_FALSE(backend_->connected());
  EXPECT_EQ(peek(4096 * 512, 4096), data);  // flushed on disconnect
  if (qcow2()) {
    EXPECT_FALSE(qcow2()->dirty_bit_on_disk());
  }
  // The next frontend is served.
  connect();
  auto again = call(vhost::Request::GET_QUEUE_NUM, std::monostate{});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(std::get<uint64_t>(again->payload), 2u);
  backend_.reset();
  EXPECT_EQ(image_bytes(24 * 512, 4096), data);
  EXPECT_EQ(image_bytes(4096 * 512, 4096), data);
}

TEST_P(BackendTest, WritesToReadOnlyConfigFieldsAreRefusedWithoutDroppingTheFrontend) {
  start_backend(1);

  send(vhost::Request::SET_CONFIG, vhost::ConfigSpace{0, 8, 0, std::vector<uint8_t>(8, 0xff)});
  auto config = call(vhost::Request::GET_CONFIG, vhost::ConfigSpace{0, 8, 0, {}});

  EXPECT_TRUE(backend_->connected());
  ASSERT_TRUE(config.has_value());
  auto c = std::get<vhost::ConfigSpace>(config->payload).data;
  EXPECT_EQ(c[0] | c[1] << 8 | c[2] << 16, static_cast<int>(kDiskSize / 512));
  auto features = call(vhost::Request::GET_FEATURES, std::monostate{});
  ASSERT_TRUE(features.has_value());
  EXPECT_FALSE(std::get<uint64_t>(features->payload) & bit(VIRTIO_BLK_F_MQ));
}

}  // namespace
}  // namespace pinata::blk
