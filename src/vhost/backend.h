// VhostUserBackend: serves the vhost-user protocol for one device, one frontend at a time.
//
// The backend owns the control connection, the guest memory mapping and the per-queue state
// (size, ring addresses, kick/call/err eventfds, started/enabled). It runs entirely on one
// EventLoop thread: control messages, queue kicks and the device's own fds are all dispatched
// there, so device code never needs locks against the protocol (see
// docs/protocols/vhost-user.md for why).
//
// Device code implements VhostUserDevice; a queue is handed to it (queue_ready) once it is
// started (kick fd received), enabled and its rings translate against the memory table, and
// taken back (queue_stopped) on GET_VRING_BASE, disable, reset or disconnect.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/fd.h"
#include "base/result.h"
#include "vhost/guest_memory.h"
#include "vhost/message.h"
#include "vhost/virtqueue.h"

namespace pinata::vhost {

class VhostUserDevice {
 public:
  virtual ~VhostUserDevice() = default;

  // Virtio feature bits the device offers (VIRTIO_F_VERSION_1, EVENT_IDX, ...). The backend
  // adds VHOST_USER_F_PROTOCOL_FEATURES itself.
  virtual uint64_t features() const = 0;
  // Protocol features beyond the backend's own (MQ, REPLY_ACK, RESET_DEVICE), e.g.
  // bit(PROTOCOL_F_CONFIG) for a device with a config space.
  virtual uint64_t protocol_features() const { return 0; }
  virtual uint32_t num_queues() const = 0;
  // The largest queue size the device accepts.
  virtual uint32_t max_queue_size() const { return kMaxQueueSize; }
  // The virtio features the driver acked (without the vhost-user bit).
  virtual void set_features(uint64_t /*acked*/) {}

  // Config space access (GET_CONFIG / SET_CONFIG); the range is within 256 bytes.
  virtual Status read_config(uint32_t offset, std::span<uint8_t> out);
  virtual Status write_config(uint32_t offset, std::span<const uint8_t> data);

  // `queue` may be used until queue_stopped(index). The backend polls `kick_fd` itself and
  // calls handle_kick; the fd is passed for devices that want to know it.
  virtual void queue_ready(uint32_t /*index*/, Virtqueue& /*queue*/, int /*kick_fd*/) {}
  virtual void queue_stopped(uint32_t /*index*/, Virtqueue& /*queue*/) {}
  // The driver kicked queue `index` (or the queue just became ready). Pop chains and
  // add_used() them; the backend calls queue.notify() after this returns.
  virtual void handle_kick(uint32_t index, Virtqueue& queue) = 0;
  // Back to the initial state: the frontend disconnected or reset the device. All queues
  // have been stopped before this is called.
  virtual void reset() {}
};

class VhostUserBackend {
 public:
  VhostUserBackend(EventLoop& loop, VhostUserDevice& device, std::string name = "vhost-user");
  ~VhostUserBackend();
  VhostUserBackend(const VhostUserBackend&) = delete;
  VhostUserBackend& operator=(const VhostUserBackend&) = delete;

  // Listens on a unix socket at `path` (mode 0600) and serves frontends from the loop. While
  // one is connected, further connections are accepted and closed at once.
  Status listen(const std::string& path);
  // Serves an already-connected socket (tests, socket activation, a frontend-created pair).
  Status serve(UniqueFd connection);
  bool connected() const { return conn_.valid(); }
  // Drops the frontend: stops all queues, resets the device, unmaps guest memory.
  void disconnect();

  EventLoop& loop() { return loop_; }
  Virtqueue& queue(uint32_t index) { return queues_.at(index).queue; }
  uint64_t acked_features() const { return acked_features_; }
  uint64_t acked_protocol_features() const { return acked_protocol_features_; }
  const std::shared_ptr<const GuestMemory>& memory() const { return memory_; }
  // Called with each request's header before it is handled (tracing, tests).
  void set_observer(std::function<void(const Header&)> observer) {
    observer_ = std::move(observer);
  }

  // The protocol features the backend offers: its own plus the device's.
  uint64_t offered_protocol_features() const;
  uint64_t offered_features() const;

 private:
  struct QueueState {
    explicit QueueState(uint32_t index) : queue(index) {}
    Virtqueue queue;
    UniqueFd kick;
    bool started = false;  // SET_VRING_KICK received (and not stopped since)
    bool enabled = false;  // SET_VRING_ENABLE state
    bool ready = false;    // handed to the device, kick fd on the loop
  };

  void on_accept();
  void on_readable(uint32_t events);
  // Handles one request; errors of kind kUnsupported are refusals (the connection stays).
  Status handle(Message& msg);
  Status reply(uint32_t request, const Payload& payload);
  bool reply_ack_negotiated() const;
  bool protocol_features_negotiated() const;
  Result<QueueState*> queue_for(uint32_t index);
  // Starts or stops queue `q` according to its state.
  void update_queue(QueueState& q);
  void stop_queue(QueueState& q);
  void on_kick(QueueState& q);
  void reset_state();

  Status set_mem_table(Message& msg);
  Status set_vring_fd(Message& msg);

  EventLoop& loop_;
  VhostUserDevice& device_;
  std::string name_;
  std::string listen_path_;
  UniqueFd listen_fd_;
  UniqueFd conn_;
  std::vector<QueueState> queues_;
  std::shared_ptr<const GuestMemory> memory_;
  uint64_t acked_features_ = 0;
  uint64_t acked_protocol_features_ = 0;
  bool features_set_ = false;
  std::function<void(const Header&)> observer_;
};

}  // namespace pinata::vhost
