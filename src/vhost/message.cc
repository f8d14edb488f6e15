#include "vhost/message.h"

#include <cstring>

namespace pinata::vhost {

namespace {

// Little-endian field access (all our hosts are little-endian, like the protocol assumes).
template <typename T>
T load(std::span<const uint8_t> b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}
template <typename T>
void store(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

constexpr size_t kVringStateSize = 8;
constexpr size_t kVringAddrSize = 40;
constexpr size_t kRegionSize = 32;
constexpr size_t kMemTableHeader = 8;
constexpr size_t kLogSize = 16;
constexpr size_t kInflightSize = 24;  // sizeof(VhostUserInflight) with its padding
constexpr size_t kInflightMin = 20;
constexpr size_t kMemRegMsgSize = 8 + kRegionSize;

std::string what(uint32_t request) {
  return std::string(request_name(request)) + " (" + std::to_string(request) + ")";
}

tl::unexpected<Error> bad(uint32_t request, const std::string& why) {
  return fail(ErrorKind::kInvalidInput, what(request) + ": " + why);
}

Status expect_size(uint32_t request, size_t got, size_t want) {
  if (got != want) {
    return bad(request,
               "payload is " + std::to_string(got) + " bytes, expected " + std::to_string(want));
  }
  return {};
}

Status expect_fds(uint32_t request, size_t got, size_t want) {
  if (got != want) {
    return bad(request,
               "carries " + std::to_string(got) + " fds, expected " + std::to_string(want));
  }
  return {};
}

MemoryRegionDesc load_region(std::span<const uint8_t> b, size_t off) {
  MemoryRegionDesc r;
  r.guest_phys_addr = load<uint64_t>(b, off);
  r.memory_size = load<uint64_t>(b, off + 8);
  r.userspace_addr = load<uint64_t>(b, off + 16);
  r.mmap_offset = load<uint64_t>(b, off + 24);
  return r;
}

void store_region(std::vector<uint8_t>& out, const MemoryRegionDesc& r) {
  store(out, r.guest_phys_addr);
  store(out, r.memory_size);
  store(out, r.userspace_addr);
  store(out, r.mmap_offset);
}

Result<ConfigSpace> decode_config(uint32_t request, std::span<const uint8_t> p,
                                  bool data_required) {
  if (p.size() < kConfigHeaderSize) {
    return bad(request, "payload of " + std::to_string(p.size()) + " bytes is shorter than the " +
                            "12-byte config header");
  }
  ConfigSpace c;
  c.offset = load<uint32_t>(p, 0);
  c.size = load<uint32_t>(p, 4);
  c.flags = load<uint32_t>(p, 8);
  if (c.size > kMaxConfigSize || c.offset > kMaxConfigSize || c.offset + c.size > kMaxConfigSize) {
    return bad(request, "config range offset " + std::to_string(c.offset) + " size " +
                            std::to_string(c.size) + " exceeds 256 bytes");
  }
  size_t rest = p.size() - kConfigHeaderSize;
  if (rest != c.size && !(rest == 0 && !data_required)) {
    return bad(request, "config payload has " + std::to_string(rest) + " data bytes for size " +
                            std::to_string(c.size));
  }
  c.data.assign(p.begin() + kConfigHeaderSize, p.end());
  return c;
}

VringState load_state(std::span<const uint8_t> p) {
  return VringState{load<uint32_t>(p, 0), load<uint32_t>(p, 4)};
}

}  // namespace

const char* request_name(uint32_t request) {
  static const char* const kNames[] = {
      "NONE",
      "GET_FEATURES",
      "SET_FEATURES",
      "SET_OWNER",
      "RESET_OWNER",
      "SET_MEM_TABLE",
      "SET_LOG_BASE",
      "SET_LOG_FD",
      "SET_VRING_NUM",
      "SET_VRING_ADDR",
      "SET_VRING_BASE",
      "GET_VRING_BASE",
      "SET_VRING_KICK",
      "SET_VRING_CALL",
      "SET_VRING_ERR",
      "GET_PROTOCOL_FEATURES",
      "SET_PROTOCOL_FEATURES",
      "GET_QUEUE_NUM",
      "SET_VRING_ENABLE",
      "SEND_RARP",
      "NET_SET_MTU",
      "SET_BACKEND_REQ_FD",
      "IOTLB_MSG",
      "SET_VRING_ENDIAN",
      "GET_CONFIG",
      "SET_CONFIG",
      "CREATE_CRYPTO_SESSION",
      "CLOSE_CRYPTO_SESSION",
      "POSTCOPY_ADVISE",
      "POSTCOPY_LISTEN",
      "POSTCOPY_END",
      "GET_INFLIGHT_FD",
      "SET_INFLIGHT_FD",
      "GPU_SET_SOCKET",
      "RESET_DEVICE",
      "VRING_KICK",
      "GET_MAX_MEM_SLOTS",
      "ADD_MEM_REG",
      "REM_MEM_REG",
      "SET_STATUS",
      "GET_STATUS",
  };
  static_assert(sizeof kNames / sizeof kNames[0] == kMaxKnownRequest + 1);
  return request <= kMaxKnownRequest ? kNames[request] : "UNKNOWN";
}

uint32_t Message::vring_index() const {
  if (const auto* v = std::get_if<uint64_t>(&payload))
    return static_cast<uint32_t>(*v & kVringIndexMask);
  if (const auto* s = std::get_if<VringState>(&payload)) return s->index;
  if (const auto* a = std::get_if<VringAddr>(&payload)) return a->index;
  return 0;
}

bool Message::vring_has_fd() const {
  if (const auto* v = std::get_if<uint64_t>(&payload)) return (*v & kVringNoFdMask) == 0;
  return false;
}

Result<Header> decode_header(std::span<const uint8_t> bytes) {
  if (bytes.size() < kHeaderSize) {
    return fail(ErrorKind::kInvalidInput,
                "vhost-user header is " + std::to_string(bytes.size()) + " bytes, need 12");
  }
  Header h;
  h.request = load<uint32_t>(bytes, 0);
  h.flags = load<uint32_t>(bytes, 4);
  h.size = load<uint32_t>(bytes, 8);
  if ((h.flags & kVersionMask) != kVersion) {
    return fail(ErrorKind::kInvalidInput, what(h.request) + ": unsupported version " +
                                              std::to_string(h.flags & kVersionMask) +
                                              " in flags (want 1)");
  }
  if (h.size > kMaxPayloadSize) {
    return fail(ErrorKind::kInvalidInput, what(h.request) + ": payload size " +
                                              std::to_string(h.size) + " exceeds " +
                                              std::to_string(kMaxPayloadSize));
  }
  return h;
}

Result<Message> decode_request(const Header& header, std::span<const uint8_t> p, size_t num_fds) {
  const uint32_t r = header.request;
  Message m;
  m.header = header;
  if (p.size() != header.size) {
    return bad(r, "have " + std::to_string(p.size()) + " payload bytes, header says " +
                      std::to_string(header.size));
  }
  if (num_fds > kMaxFds) return bad(r, "too many fds (" + std::to_string(num_fds) + ")");
  if (header.is_reply()) return bad(r, "reply flag set on a request");
  if (r == 0 || r > kMaxKnownRequest) return bad(r, "unknown request");

  switch (static_cast<Request>(r)) {
    // No payload, no fds.
    case Request::GET_FEATURES:
    case Request::GET_PROTOCOL_FEATURES:
    case Request::GET_QUEUE_NUM:
    case Request::SET_OWNER:
    case Request::RESET_OWNER:
    case Request::RESET_DEVICE:
    case Request::GET_MAX_MEM_SLOTS:
    case Request::GET_STATUS:
    case Request::POSTCOPY_ADVISE:
    case Request::POSTCOPY_LISTEN:
    case Request::POSTCOPY_END:
      TRY(expect_size(r, p.size(), 0));
      TRY(expect_fds(r, num_fds, 0));
      return m;

    // u64, no fds.
    case Request::SET_FEATURES:
    case Request::SET_PROTOCOL_FEATURES:
    case Request::SET_STATUS:
    case Request::SEND_RARP:
    case Request::NET_SET_MTU:
    case Request::CLOSE_CRYPTO_SESSION:
      TRY(expect_size(r, p.size(), 8));
      TRY(expect_fds(r, num_fds, 0));
      m.payload = load<uint64_t>(p, 0);
      return m;

    case Request::SET_VRING_KICK:
    case Request::SET_VRING_CALL:
    case Request::SET_VRING_ERR: {
      TRY(expect_size(r, p.size(), 8));
      uint64_t v = load<uint64_t>(p, 0);
      m.payload = v;
      TRY(expect_fds(r, num_fds, (v & kVringNoFdMask) ? 0 : 1));
      return m;
    }

    case Request::SET_VRING_NUM:
    case Request::SET_VRING_BASE:
    case Request::GET_VRING_BASE:
    case Request::SET_VRING_ENABLE:
    case Request::SET_VRING_ENDIAN:
    case Request::VRING_KICK:
      TRY(expect_size(r, p.size(), kVringStateSize));
      TRY(expect_fds(r, num_fds, 0));
      m.payload = load_state(p);
      return m;

    case Request::SET_VRING_ADDR: {
      TRY(expect_size(r, p.size(), kVringAddrSize));
      TRY(expect_fds(r, num_fds, 0));
      VringAddr a;
      a.index = load<uint32_t>(p, 0);
      a.flags = load<uint32_t>(p, 4);
      a.descriptor = load<uint64_t>(p, 8);
      a.used = load<uint64_t>(p, 16);
      a.available = load<uint64_t>(p, 24);
      a.log = load<uint64_t>(p, 32);
      m.payload = a;
      return m;
    }

    case Request::SET_MEM_TABLE: {
      if (p.size() < kMemTableHeader) {
        return bad(r, "payload of " + std::to_string(p.size()) + " bytes has no region count");
      }
      uint32_t n = load<uint32_t>(p, 0);
      if (n > kMaxMemRegions) {
        return bad(r, std::to_string(n) + " regions, at most 8 supported");
      }
      size_t exact = kMemTableHeader + n * kRegionSize;
      size_t full = kMemTableHeader + kMaxMemRegions * kRegionSize;
      if (p.size() != exact && p.size() != full) {
        return bad(r, "payload is " + std::to_string(p.size()) + " bytes for " + std::to_string(n) +
                          " regions (expected " + std::to_string(exact) + ")");
      }
      TRY(expect_fds(r, num_fds, n));
      MemoryTable t;
      for (uint32_t i = 0; i < n; i++)
        t.regions.push_back(load_region(p, kMemTableHeader + i * kRegionSize));
      m.payload = std::move(t);
      return m;
    }

    case Request::ADD_MEM_REG:
    case Request::REM_MEM_REG: {
      TRY(expect_size(r, p.size(), kMemRegMsgSize));
      if (static_cast<Request>(r) == Request::ADD_MEM_REG) {
        TRY(expect_fds(r, num_fds, 1));
      } else if (num_fds > 1) {
        TRY(expect_fds(r, num_fds, 1));
      }
      m.payload = SingleRegion{load_region(p, 8)};
      return m;
    }

    case Request::SET_LOG_BASE:
      if (p.size() == 8) {
        m.payload = load<uint64_t>(p, 0);
      } else {
        TRY(expect_size(r, p.size(), kLogSize));
        m.payload = LogPayload{load<uint64_t>(p, 0), load<uint64_t>(p, 8)};
      }
      if (num_fds > 1) TRY(expect_fds(r, num_fds, 1));
      return m;

    case Request::SET_LOG_FD:
      if (p.size() != 0 && p.size() != 8) TRY(expect_size(r, p.size(), 8));
      if (p.size() == 8) m.payload = load<uint64_t>(p, 0);
      TRY(expect_fds(r, num_fds, 1));
      return m;

    case Request::GET_CONFIG: {
      TRY(expect_fds(r, num_fds, 0));
      TRY_ASSIGN(m.payload, decode_config(r, p, /*data_required=*/false));
      return m;
    }
    case Request::SET_CONFIG: {
      TRY(expect_fds(r, num_fds, 0));
      TRY_ASSIGN(m.payload, decode_config(r, p, /*data_required=*/true));
      return m;
    }

    case Request::GET_INFLIGHT_FD:
    case Request::SET_INFLIGHT_FD: {
      if (p.size() != kInflightSize && p.size() != kInflightMin) {
        TRY(expect_size(r, p.size(), kInflightSize));
      }
      TRY(expect_fds(r, num_fds, static_cast<Request>(r) == Request::SET_INFLIGHT_FD ? 1 : 0));
      InflightPayload in;
      in.mmap_size = load<uint64_t>(p, 0);
      in.mmap_offset = load<uint64_t>(p, 8);
      in.num_queues = load<uint16_t>(p, 16);
      in.queue_size = load<uint16_t>(p, 18);
      m.payload = in;
      return m;
    }

    // One fd, payload not interpreted.
    case Request::SET_BACKEND_REQ_FD:
    case Request::GPU_SET_SOCKET:
      TRY(expect_fds(r, num_fds, 1));
      m.payload = RawPayload{{p.begin(), p.end()}};
      return m;

    // Not interpreted, no fds.
    case Request::IOTLB_MSG:
    case Request::CREATE_CRYPTO_SESSION:
      TRY(expect_fds(r, num_fds, 0));
      m.payload = RawPayload{{p.begin(), p.end()}};
      return m;
  }
  return bad(r, "unknown request");
}

Result<Message> decode_reply(const Header& header, std::span<const uint8_t> p,
                             uint32_t expected_request) {
  const uint32_t r = header.request;
  if (!header.is_reply()) return bad(r, "reply flag not set");
  if (r != expected_request) {
    return bad(r, "reply to the wrong request (expected " + what(expected_request) + ")");
  }
  if (p.size() != header.size) return bad(r, "truncated reply");
  Message m;
  m.header = header;
  if (static_cast<Request>(r) == Request::GET_VRING_BASE) {
    TRY(expect_size(r, p.size(), kVringStateSize));
    m.payload = load_state(p);
    return m;
  }
  if (static_cast<Request>(r) == Request::GET_CONFIG) {
    if (p.empty()) return m;  // the backend's "failed"
    TRY_ASSIGN(m.payload, decode_config(r, p, /*data_required=*/true));
    return m;
  }
  TRY(expect_size(r, p.size(), 8));
  m.payload = load<uint64_t>(p, 0);
  return m;
}

std::vector<uint8_t> encode(uint32_t request, uint32_t flags, const Payload& payload) {
  std::vector<uint8_t> body;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
        } else if constexpr (std::is_same_v<T, uint64_t>) {
          store(body, v);
        } else if constexpr (std::is_same_v<T, VringState>) {
          store(body, v.index);
          store(body, v.num);
        } else if constexpr (std::is_same_v<T, VringAddr>) {
          store(body, v.index);
          store(body, v.flags);
          store(body, v.descriptor);
          store(body, v.used);
          store(body, v.available);
          store(body, v.log);
        } else if constexpr (std::is_same_v<T, MemoryTable>) {
          store(body, static_cast<uint32_t>(v.regions.size()));
          store(body, uint32_t{0});
          for (const auto& reg : v.regions) store_region(body, reg);
        } else if constexpr (std::is_same_v<T, ConfigSpace>) {
          store(body, v.offset);
          store(body, v.size);
          store(body, v.flags);
          body.insert(body.end(), v.data.begin(), v.data.end());
        } else if constexpr (std::is_same_v<T, LogPayload>) {
          store(body, v.mmap_size);
          store(body, v.mmap_offset);
        } else if constexpr (std::is_same_v<T, InflightPayload>) {
          store(body, v.mmap_size);
          store(body, v.mmap_offset);
          store(body, v.num_queues);
          store(body, v.queue_size);
          store(body, uint32_t{0});
        } else if constexpr (std::is_same_v<T, SingleRegion>) {
          store(body, uint64_t{0});
          store_region(body, v.region);
        } else if constexpr (std::is_same_v<T, RawPayload>) {
          body.insert(body.end(), v.bytes.begin(), v.bytes.end());
        }
      },
      payload);
  std::vector<uint8_t> out;
  out.reserve(kHeaderSize + body.size());
  store(out, request);
  store(out, flags);
  store(out, static_cast<uint32_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

std::vector<uint8_t> encode_reply(uint32_t request, const Payload& payload) {
  return encode(request, kVersion | kFlagReply, payload);
}

}  // namespace pinata::vhost
