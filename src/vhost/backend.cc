#include "vhost/backend.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cinttypes>

#include "base/io.h"
#include "base/log.h"
#include "vhost/message_io.h"

namespace pinata::vhost {

namespace {

// A frontend that stops mid-message or stops reading replies for this long is dropped.
constexpr int kIoTimeoutSeconds = 5;

// Protocol features the backend implements whatever the device.
constexpr uint64_t kBackendProtocolFeatures =
    bit(PROTOCOL_F_MQ) | bit(PROTOCOL_F_REPLY_ACK) | bit(PROTOCOL_F_RESET_DEVICE);
// Protocol features a device may add (the backend knows how to serve them).
constexpr uint64_t kDeviceProtocolFeatures = bit(PROTOCOL_F_CONFIG);

// Requests whose reply is their own payload (need_reply doesn't add an ack).
bool has_own_reply(uint32_t request) {
  switch (static_cast<Request>(request)) {
    case Request::GET_FEATURES:
    case Request::GET_PROTOCOL_FEATURES:
    case Request::GET_VRING_BASE:
    case Request::GET_QUEUE_NUM:
    case Request::GET_CONFIG:
    case Request::GET_INFLIGHT_FD:
    case Request::GET_MAX_MEM_SLOTS:
    case Request::GET_STATUS:
    case Request::POSTCOPY_ADVISE:
    case Request::CREATE_CRYPTO_SESSION:
      return true;
    default:
      return false;
  }
}

tl::unexpected<Error> unsupported(uint32_t request) {
  return fail(ErrorKind::kUnsupported, std::string(request_name(request)) + " is not supported");
}

}  // namespace

Status VhostUserDevice::read_config(uint32_t, std::span<uint8_t>) {
  return fail(ErrorKind::kUnsupported, "device has no config space");
}

Status VhostUserDevice::write_config(uint32_t, std::span<const uint8_t>) {
  return fail(ErrorKind::kUnsupported, "device config space is read-only");
}

VhostUserBackend::VhostUserBackend(EventLoop& loop, VhostUserDevice& device, std::string name)
    : loop_(loop), device_(device), name_(std::move(name)) {
  uint32_t n = device_.num_queues();
  queues_.reserve(n);
  for (uint32_t i = 0; i < n; i++) queues_.emplace_back(i);
}

VhostUserBackend::~VhostUserBackend() {
  disconnect();
  if (listen_fd_) {
    (void)loop_.remove(listen_fd_.get());
    ::unlink(listen_path_.c_str());
  }
}

uint64_t VhostUserBackend::offered_features() const {
  return device_.features() | bit(kFeatureProtocolFeatures);
}

uint64_t VhostUserBackend::offered_protocol_features() const {
  return kBackendProtocolFeatures | (device_.protocol_features() & kDeviceProtocolFeatures);
}

bool VhostUserBackend::reply_ack_negotiated() const {
  return acked_protocol_features_ & bit(PROTOCOL_F_REPLY_ACK);
}

bool VhostUserBackend::protocol_features_negotiated() const {
  return acked_features_ & bit(kFeatureProtocolFeatures);
}

Status VhostUserBackend::listen(const std::string& path) {
  TRY_ASSIGN(UniqueFd fd, unix_listen(path, 0600, 4));
  TRY(set_nonblocking(fd.get()));
  TRY(loop_.add(fd.get(), EPOLLIN, [this](uint32_t) { on_accept(); }));
  listen_fd_ = std::move(fd);
  listen_path_ = path;
  log::info("%s: listening on %s", name_.c_str(), path.c_str());
  return {};
}

void VhostUserBackend::on_accept() {
  UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd) {
    if (errno != EAGAIN && errno != EINTR)
      log::warn("%s: accept: %s", name_.c_str(), std::strerror(errno));
    return;
  }
  if (conn_) {
    log::warn("%s: a frontend is already connected; refusing another", name_.c_str());
    return;  // closes fd
  }
  if (auto s = serve(std::move(fd)); !s) {
    log::error("%s: %s", name_.c_str(), s.error().message().c_str());
  }
}

Status VhostUserBackend::serve(UniqueFd connection) {
  if (conn_) return fail(ErrorKind::kAlreadyExists, "a frontend is already connected");
  struct timeval tv {
    kIoTimeoutSeconds, 0
  };
  if (::setsockopt(connection.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      ::setsockopt(connection.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
    return fail_errno("setsockopt SO_RCVTIMEO/SO_SNDTIMEO");
  }
  TRY(set_nonblocking(connection.get(), false));
  TRY(loop_.add(connection.get(), EPOLLIN, [this](uint32_t ev) { on_readable(ev); }));
  conn_ = std::move(connection);  // state is initial: reset on construction and disconnect
  log::info("%s: frontend connected", name_.c_str());
  return {};
}

void VhostUserBackend::disconnect() {
  if (!conn_) return;
  (void)loop_.remove(conn_.get());
  conn_.reset();
  reset_state();
  log::info("%s: frontend disconnected; device reset", name_.c_str());
}

void VhostUserBackend::reset_state() {
  for (auto& q : queues_) {
    stop_queue(q);
    q.queue.reset();
    q.kick.reset();
    q.started = q.enabled = false;
  }
  device_.reset();
  memory_.reset();
  acked_features_ = 0;
  acked_protocol_features_ = 0;
  features_set_ = false;
}

void VhostUserBackend::on_readable(uint32_t /*events*/) {
  // One message per wakeup (level-triggered: the loop calls again while more are queued).
  // EPOLLHUP/EPOLLERR show up as EOF or an error from the read.
  auto received = receive_message(conn_.get());
  if (!received) {
    log::error("%s: %s; dropping the frontend", name_.c_str(), received.error().message().c_str());
    disconnect();
    return;
  }
  if (!*received) {
    disconnect();  // EOF
    return;
  }
  ReceivedMessage& raw = **received;
  const uint32_t request = raw.header.request;
  if (observer_) observer_(raw.header);
  const bool want_ack =
      raw.header.need_reply() && reply_ack_negotiated() && !has_own_reply(request);

  auto decoded = decode_request(raw.header, raw.payload, raw.fds.size());
  Status result;
  if (!decoded) {
    result = tl::unexpected(decoded.error());
  } else {
    decoded->fds = std::move(raw.fds);
    log::debug("%s: %s", name_.c_str(), request_name(request));
    result = handle(*decoded);
  }

  if (!result) {
    const Error& e = result.error();
    bool refusal = e.kind() == ErrorKind::kUnsupported;
    if (want_ack) {
      log::warn("%s: %s failed: %s", name_.c_str(), request_name(request), e.message().c_str());
      if (auto s = reply(request, uint64_t{1}); !s) {
        log::error("%s: reply: %s", name_.c_str(), s.error().message().c_str());
        disconnect();
      }
      return;
    }
    if (static_cast<Request>(request) == Request::GET_CONFIG && decoded) {
      // The protocol's "failed": a reply with an empty payload.
      log::warn("%s: GET_CONFIG failed: %s", name_.c_str(), e.message().c_str());
      if (auto s = reply(request, std::monostate{}); !s) disconnect();
      return;
    }
    if (refusal && !has_own_reply(request)) {
      log::warn("%s: refused %s: %s", name_.c_str(), request_name(request), e.message().c_str());
      return;
    }
    log::error("%s: %s: %s; dropping the frontend", name_.c_str(), request_name(request),
               e.message().c_str());
    disconnect();
    return;
  }
  if (want_ack) {
    if (auto s = reply(request, uint64_t{0}); !s) {
      log::error("%s: reply: %s", name_.c_str(), s.error().message().c_str());
      disconnect();
    }
  }
}

Status VhostUserBackend::reply(uint32_t request, const Payload& payload) {
  if (!conn_) return fail(ErrorKind::kIo, "no frontend");
  auto bytes = encode_reply(request, payload);
  return send_message(conn_.get(), bytes);
}

Result<VhostUserBackend::QueueState*> VhostUserBackend::queue_for(uint32_t index) {
  if (index >= queues_.size()) {
    return fail(ErrorKind::kInvalidInput, "queue index " + std::to_string(index) +
                                              " out of range (" + std::to_string(queues_.size()) +
                                              " queues)");
  }
  return &queues_[index];
}

void VhostUserBackend::stop_queue(QueueState& q) {
  if (!q.ready) return;
  if (q.kick) (void)loop_.remove(q.kick.get());
  q.ready = false;
  device_.queue_stopped(q.queue.index(), q.queue);
  q.queue.deactivate();
}

void VhostUserBackend::update_queue(QueueState& q) {
  bool enabled = protocol_features_negotiated() ? q.enabled : true;
  bool should_run = q.started && q.kick && enabled && memory_ != nullptr;
  if (!should_run) {
    stop_queue(q);
    return;
  }
  if (q.ready) return;
  if (auto s = q.queue.activate(memory_); !s) {
    return;  // marked broken and logged by the queue
  }
  int kick = q.kick.get();
  if (auto s = loop_.add(kick, EPOLLIN, [this, &q](uint32_t) { on_kick(q); }); !s) {
    log::error("%s: queue %u: %s", name_.c_str(), q.queue.index(), s.error().message().c_str());
    q.queue.deactivate();
    return;
  }
  q.ready = true;
  log::debug("%s: queue %u ready (size %u)", name_.c_str(), q.queue.index(), q.queue.size());
  device_.queue_ready(q.queue.index(), q.queue, kick);
  // Buffers may already be waiting (e.g. after a restart): look now.
  if (q.ready) {
    device_.handle_kick(q.queue.index(), q.queue);
    q.queue.notify();
  }
}

void VhostUserBackend::on_kick(QueueState& q) {
  uint64_t value;
  ssize_t n = ::read(q.kick.get(), &value, sizeof value);
  (void)n;  // EAGAIN (spurious) or a count: either way look at the ring
  if (!q.ready) return;
  device_.handle_kick(q.queue.index(), q.queue);
  if (q.ready) q.queue.notify();
}

Status VhostUserBackend::set_mem_table(Message& msg) {
  auto& table = std::get<MemoryTable>(msg.payload);
  TRY_ASSIGN(auto mem, GuestMemory::map(table.regions, std::move(msg.fds)));
  memory_ = std::move(mem);
  log::info("%s: memory table with %zu regions", name_.c_str(), table.regions.size());
  for (auto& q : queues_) {
    if (q.ready) {
      // Re-translate the rings in the new mapping; a failure marks the queue broken.
      (void)q.queue.activate(memory_);
    }
    update_queue(q);
  }
  return {};
}

Status VhostUserBackend::set_vring_fd(Message& msg) {
  const uint32_t request = msg.request();
  TRY_ASSIGN(QueueState * q, queue_for(msg.vring_index()));
  UniqueFd fd = msg.vring_has_fd() ? std::move(msg.fds.at(0)) : UniqueFd();
  switch (static_cast<Request>(request)) {
    case Request::SET_VRING_KICK:
      stop_queue(*q);
      if (fd) TRY(set_nonblocking(fd.get()));
      q->kick = std::move(fd);
      q->started = true;
      if (!q->kick) {
        log::warn("%s: queue %u: kick without fd (polling) is not supported; queue not started",
                  name_.c_str(), q->queue.index());
      }
      update_queue(*q);
      return {};
    case Request::SET_VRING_CALL:
      q->queue.set_call_fd(std::move(fd));
      return {};
    case Request::SET_VRING_ERR:
      q->queue.set_err_fd(std::move(fd));
      return {};
    default:
      return fail(ErrorKind::kInternal, "not a vring fd request");
  }
}

Status VhostUserBackend::handle(Message& msg) {
  const uint32_t request = msg.request();
  switch (static_cast<Request>(request)) {
    case Request::GET_FEATURES:
      return reply(request, offered_features());

    case Request::SET_FEATURES: {
      uint64_t features = std::get<uint64_t>(msg.payload);
      uint64_t extra = features & ~offered_features();
      if (extra) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "0x%" PRIx64, extra);
        return fail(ErrorKind::kInvalidInput,
                    std::string("SET_FEATURES acks unoffered bits ") + buf);
      }
      acked_features_ = features;
      features_set_ = true;
      bool event_idx = features & bit(VIRTIO_RING_F_EVENT_IDX);
      for (auto& q : queues_) q.queue.set_event_idx(event_idx);
      device_.set_features(features & ~bit(kFeatureProtocolFeatures));
      for (auto& q : queues_) update_queue(q);  // enable state may have changed meaning
      return {};
    }

    case Request::GET_PROTOCOL_FEATURES:
      return reply(request, offered_protocol_features());

    case Request::SET_PROTOCOL_FEATURES: {
      uint64_t features = std::get<uint64_t>(msg.payload);
      if (features & ~offered_protocol_features()) {
        return fail(ErrorKind::kInvalidInput, "SET_PROTOCOL_FEATURES acks unoffered bits");
      }
      acked_protocol_features_ = features;
      return {};
    }

    case Request::GET_QUEUE_NUM:
      return reply(request, uint64_t{device_.num_queues()});

    case Request::GET_MAX_MEM_SLOTS:
      return reply(request, uint64_t{kMaxMemRegions});

    case Request::SET_OWNER:
      return {};

    case Request::RESET_OWNER:
    case Request::RESET_DEVICE: {
      auto memory = memory_;
      uint64_t protocol = acked_protocol_features_;
      reset_state();
      memory_ = std::move(memory);
      acked_protocol_features_ = protocol;
      return {};
    }

    case Request::SET_MEM_TABLE:
      return set_mem_table(msg);

    case Request::SET_VRING_NUM: {
      auto s = std::get<VringState>(msg.payload);
      TRY_ASSIGN(QueueState * q, queue_for(s.index));
      if (s.num > device_.max_queue_size()) {
        return fail(ErrorKind::kInvalidInput, "queue size " + std::to_string(s.num) +
                                                  " exceeds the device's " +
                                                  std::to_string(device_.max_queue_size()));
      }
      stop_queue(*q);
      TRY(q->queue.set_size(s.num));
      update_queue(*q);
      return {};
    }

    case Request::SET_VRING_ADDR: {
      auto a = std::get<VringAddr>(msg.payload);
      TRY_ASSIGN(QueueState * q, queue_for(a.index));
      q->queue.set_addresses(a.descriptor, a.available, a.used);
      if (q->ready) (void)q->queue.activate(memory_);  // re-translate; failure marks broken
      return {};
    }

    case Request::SET_VRING_BASE: {
      auto s = std::get<VringState>(msg.payload);
      TRY_ASSIGN(QueueState * q, queue_for(s.index));
      if (s.num > 0xffff) {
        return fail(ErrorKind::kInvalidInput, "vring base " + std::to_string(s.num) + " > 65535");
      }
      q->queue.set_base(static_cast<uint16_t>(s.num));
      return {};
    }

    case Request::GET_VRING_BASE: {
      auto s = std::get<VringState>(msg.payload);
      TRY_ASSIGN(QueueState * q, queue_for(s.index));
      stop_queue(*q);
      q->started = false;
      q->kick.reset();
      q->queue.clear_broken();
      return reply(request, VringState{s.index, q->queue.next_avail()});
    }

    case Request::SET_VRING_KICK:
    case Request::SET_VRING_CALL:
    case Request::SET_VRING_ERR:
      return set_vring_fd(msg);

    case Request::SET_VRING_ENABLE: {
      auto s = std::get<VringState>(msg.payload);
      TRY_ASSIGN(QueueState * q, queue_for(s.index));
      if (s.num > 1) {
        return fail(ErrorKind::kInvalidInput, "SET_VRING_ENABLE with " + std::to_string(s.num));
      }
      q->enabled = s.num == 1;
      update_queue(*q);
      return {};
    }

    case Request::GET_CONFIG: {
      auto c = std::get<ConfigSpace>(msg.payload);
      // QEMU asks before (and whether or not) CONFIG is acked; answer if we offer it.
      if (!(offered_protocol_features() & bit(PROTOCOL_F_CONFIG))) return unsupported(request);
      std::vector<uint8_t> data(c.size);
      TRY(device_.read_config(c.offset, data));
      c.data = std::move(data);
      return reply(request, c);
    }

    case Request::SET_CONFIG: {
      auto c = std::get<ConfigSpace>(msg.payload);
      if (!(offered_protocol_features() & bit(PROTOCOL_F_CONFIG))) return unsupported(request);
      return device_.write_config(c.offset, c.data);
    }

    case Request::SET_LOG_BASE:
    case Request::SET_LOG_FD:
      // We never offer LOG_SHMFD or VHOST_F_LOG_ALL: no dirty logging, so no live migration.
      return fail(ErrorKind::kUnsupported,
                  std::string(request_name(request)) + ": dirty-page logging is not supported");

    case Request::GET_INFLIGHT_FD:
    case Request::GET_STATUS:
    case Request::POSTCOPY_ADVISE:
    case Request::CREATE_CRYPTO_SESSION:
      // Never offered; we cannot produce their replies.
      return fail(ErrorKind::kInvalidInput,
                  std::string(request_name(request)) + " was never negotiated");

    case Request::SEND_RARP:
    case Request::NET_SET_MTU:
    case Request::SET_BACKEND_REQ_FD:
    case Request::IOTLB_MSG:
    case Request::SET_VRING_ENDIAN:
    case Request::CLOSE_CRYPTO_SESSION:
    case Request::POSTCOPY_LISTEN:
    case Request::POSTCOPY_END:
    case Request::SET_INFLIGHT_FD:
    case Request::GPU_SET_SOCKET:
    case Request::VRING_KICK:
    case Request::ADD_MEM_REG:
    case Request::REM_MEM_REG:
    case Request::SET_STATUS:
      return unsupported(request);
  }
  return unsupported(request);
}

}  // namespace pinata::vhost
