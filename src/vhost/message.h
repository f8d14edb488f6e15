// The vhost-user message codec (QEMU docs/interop/vhost-user.rst). Pure: bytes in, values
// out; no sockets, no fds are opened or closed here (socket I/O is in message_io.h).
//
// Wire format: a 12-byte header {request u32, flags u32, size u32} (little-endian, as on every
// host we run on) followed by `size` payload bytes; fds travel as SCM_RIGHTS with the header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "vhost/guest_memory.h"

namespace pinata::vhost {

// Front-end → back-end requests (VhostUserRequest).
enum class Request : uint32_t {
  GET_FEATURES = 1,
  SET_FEATURES = 2,
  SET_OWNER = 3,
  RESET_OWNER = 4,
  SET_MEM_TABLE = 5,
  SET_LOG_BASE = 6,
  SET_LOG_FD = 7,
  SET_VRING_NUM = 8,
  SET_VRING_ADDR = 9,
  SET_VRING_BASE = 10,
  GET_VRING_BASE = 11,
  SET_VRING_KICK = 12,
  SET_VRING_CALL = 13,
  SET_VRING_ERR = 14,
  GET_PROTOCOL_FEATURES = 15,
  SET_PROTOCOL_FEATURES = 16,
  GET_QUEUE_NUM = 17,
  SET_VRING_ENABLE = 18,
  SEND_RARP = 19,
  NET_SET_MTU = 20,
  SET_BACKEND_REQ_FD = 21,
  IOTLB_MSG = 22,
  SET_VRING_ENDIAN = 23,
  GET_CONFIG = 24,
  SET_CONFIG = 25,
  CREATE_CRYPTO_SESSION = 26,
  CLOSE_CRYPTO_SESSION = 27,
  POSTCOPY_ADVISE = 28,
  POSTCOPY_LISTEN = 29,
  POSTCOPY_END = 30,
  GET_INFLIGHT_FD = 31,
  SET_INFLIGHT_FD = 32,
  GPU_SET_SOCKET = 33,
  RESET_DEVICE = 34,
  VRING_KICK = 35,
  GET_MAX_MEM_SLOTS = 36,
  ADD_MEM_REG = 37,
  REM_MEM_REG = 38,
  SET_STATUS = 39,
  GET_STATUS = 40,
};
constexpr uint32_t kMaxKnownRequest = 40;

const char* request_name(uint32_t request);

// Header flags.
constexpr uint32_t kVersionMask = 0x3;
constexpr uint32_t kVersion = 0x1;
constexpr uint32_t kFlagReply = 1u << 2;
constexpr uint32_t kFlagNeedReply = 1u << 3;

constexpr size_t kHeaderSize = 12;
// Largest payload we accept (the largest defined payload is a few hundred bytes).
constexpr size_t kMaxPayloadSize = 4096;
// Most fds one message may carry (VHOST_MEMORY_BASELINE_NREGIONS).
constexpr size_t kMaxFds = 8;
constexpr size_t kMaxMemRegions = 8;
constexpr size_t kMaxConfigSize = 256;
constexpr size_t kConfigHeaderSize = 12;

// SET_VRING_KICK/CALL/ERR u64 payload: the low byte is the queue index; this bit says "no fd".
constexpr uint64_t kVringIndexMask = 0xff;
constexpr uint64_t kVringNoFdMask = 0x100;

// Feature bits.
constexpr int kFeatureProtocolFeatures = 30;  // VHOST_USER_F_PROTOCOL_FEATURES
enum ProtocolFeature : int {
  PROTOCOL_F_MQ = 0,
  PROTOCOL_F_LOG_SHMFD = 1,
  PROTOCOL_F_RARP = 2,
  PROTOCOL_F_REPLY_ACK = 3,
  PROTOCOL_F_NET_MTU = 4,
  PROTOCOL_F_BACKEND_REQ = 5,
  PROTOCOL_F_CROSS_ENDIAN = 6,
  PROTOCOL_F_CRYPTO_SESSION = 7,
  PROTOCOL_F_PAGEFAULT = 8,
  PROTOCOL_F_CONFIG = 9,
  PROTOCOL_F_BACKEND_SEND_FD = 10,
  PROTOCOL_F_HOST_NOTIFIER = 11,
  PROTOCOL_F_INFLIGHT_SHMFD = 12,
  PROTOCOL_F_RESET_DEVICE = 13,
  PROTOCOL_F_INBAND_NOTIFICATIONS = 14,
  PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
  PROTOCOL_F_STATUS = 16,
};
constexpr uint64_t bit(int n) { return uint64_t{1} << n; }

struct Header {
  uint32_t request = 0;
  uint32_t flags = 0;
  uint32_t size = 0;

  bool need_reply() const { return flags & kFlagNeedReply; }
  bool is_reply() const { return flags & kFlagReply; }
};

// Payloads.
struct VringState {
  uint32_t index = 0;
  uint32_t num = 0;
};
struct VringAddr {
  uint32_t index = 0;
  uint32_t flags = 0;
  uint64_t descriptor = 0;  // frontend virtual addresses
  uint64_t used = 0;
  uint64_t available = 0;
  uint64_t log = 0;
};
struct MemoryTable {
  std::vector<MemoryRegionDesc> regions;
};
struct ConfigSpace {
  uint32_t offset = 0;
  uint32_t size = 0;
  uint32_t flags = 0;
  std::vector<uint8_t> data;  // size bytes for SET_CONFIG and replies; may be empty for GET
};
struct LogPayload {
  uint64_t mmap_size = 0;
  uint64_t mmap_offset = 0;
};
struct InflightPayload {
  uint64_t mmap_size = 0;
  uint64_t mmap_offset = 0;
  uint16_t num_queues = 0;
  uint16_t queue_size = 0;
};
struct SingleRegion {  // ADD_MEM_REG / REM_MEM_REG
  MemoryRegionDesc region;
};
// Payloads we don't interpret (unknown requests, IOTLB, crypto, ...): kept as bytes.
struct RawPayload {
  std::vector<uint8_t> bytes;
};

using Payload = std::variant<std::monostate, uint64_t, VringState, VringAddr, MemoryTable,
                             ConfigSpace, LogPayload, InflightPayload, SingleRegion, RawPayload>;

struct Message {
  Header header;
  Payload payload;
  std::vector<UniqueFd> fds;  // attached by the caller after decode (see message_io.h)

  uint32_t request() const { return header.request; }
  // For SET_VRING_KICK/CALL/ERR: the queue index and whether an fd comes with it.
  uint32_t vring_index() const;
  bool vring_has_fd() const;
};

// Decodes and validates a header: version must be 1, size ≤ kMaxPayloadSize.
Result<Header> decode_header(std::span<const uint8_t> bytes);
// Decodes the payload of a request from the frontend and checks that `num_fds` fds are right
// for it. The returned Message has no fds; the caller moves the received fds in.
Result<Message> decode_request(const Header& header, std::span<const uint8_t> payload,
                               size_t num_fds);
// Decodes a reply (what a frontend reads; used by tests and tools).
Result<Message> decode_reply(const Header& header, std::span<const uint8_t> payload,
                             uint32_t expected_request);

// Encodes header + payload. `flags` should include the version bit.
std::vector<uint8_t> encode(uint32_t request, uint32_t flags, const Payload& payload);
// Encodes a reply to `request`: version | reply flag. A GET_CONFIG failure is a reply with
// an empty payload (std::monostate).
std::vector<uint8_t> encode_reply(uint32_t request, const Payload& payload);

}  // namespace pinata::vhost
