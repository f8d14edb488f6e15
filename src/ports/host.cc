#include "ports/host.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <mutex>

#include "base/io.h"
#include "base/log.h"
#include "p9/memfs.h"
#include "p9/server.h"

namespace pinata::ports {

constexpr size_t kMaxSessions = 16;

std::string control_socket_path(const std::string& vsock_dir) {
  char name[32];
  std::snprintf(name, sizeof name, "%08x.%08x", 2u, kControlVsockPort);
  return path_join(vsock_dir, name);
}

Result<UniqueFd> dial_guest(const std::string& vsock_dir, uint32_t cid, uint32_t port,
                            const Destination& destination) {
  TRY_ASSIGN(UniqueFd fd, unix_connect(path_join(vsock_dir, "connect")));
  char handshake[32];
  std::snprintf(handshake, sizeof handshake, "%08x.%08x\n", cid, port);
  // One send: pinata-vsock reads exactly the 18 handshake bytes; the header after them is
  // already stream data for the guest.
  std::string out = std::string(handshake) + format_header(destination);
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::send(fd.get(), out.data() + done, out.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("sending the vsock handshake");
    }
    done += static_cast<size_t>(n);
  }
  return fd;
}

// ---- forwards ------------------------------------------------------------------------------

namespace {

class RealForward : public HostForward {
 public:
  std::string bound() const override { return bound_; }

  std::string bound_;
  std::unique_ptr<StreamAcceptor> tcp_;
  std::unique_ptr<UdpRelay> udp_;
};

}  // namespace

Result<std::unique_ptr<HostForward>> start_host_forward(const ForwardSpec& spec,
                                                        const HostOptions& options,
                                                        bool external_bind) {
  Ipv4Endpoint listen = spec.host;
  if (listen.ip == 0 && !external_bind) listen.ip = 0x7f000001;  // 127.0.0.1
  TRY_ASSIGN(UniqueFd fd, listen_on(spec.proto, SocketAddress::ipv4(listen)));
  auto forward = std::make_unique<RealForward>();
  TRY_ASSIGN(SocketAddress local, SocketAddress::local_of(fd.get()));
  forward->bound_ = local.to_string();
  const Destination destination{spec.proto, spec.container};
  const std::string name = "forward " + format_spec(spec);
  auto dial = [dir = options.vsock_dir, cid = options.guest_cid, port = options.data_port,
               destination]() { return dial_guest(dir, cid, port, destination); };
  if (spec.proto == Proto::kTcp) {
    TRY_ASSIGN(forward->tcp_, start_tcp_relay(std::move(fd), dial, name, options.limits));
  } else {
    auto open = [dial](const SocketAddress&) -> Result<UdpFlow> {
      TRY_ASSIGN(UniqueFd stream, dial());
      return UdpFlow{std::move(stream), FlowFraming::kStream};
    };
    TRY_ASSIGN(forward->udp_, UdpRelay::start(std::move(fd), open, name, options.limits));
  }
  return std::unique_ptr<HostForward>(std::move(forward));
}

// ---- the tree ------------------------------------------------------------------------------

namespace {

class PortRoot;

// Shared by the root, every ctl and every open of a ctl.
struct TreeState {
  StartForward start;
  size_t max_forwards = 0;
  std::weak_ptr<PortRoot> root;
  // Guards CtlFile::opens_ and the replace/remove decisions on the root's entries. Ordered
  // before memfs's tree mutex.
  std::mutex mu;
};

// /<spec>/ctl. Its directory is removed when the last open of it is clunked.
class CtlFile : public p9::MemNode {
 public:
  CtlFile(std::shared_ptr<TreeState> state, std::string name, ForwardSpec spec)
      : MemNode(p9::P9_QTFILE, 0644, p9::Access::kReadWrite),
        state_(std::move(state)),
        name_(std::move(name)),
        spec_(spec) {}

  void set_dir(std::weak_ptr<p9::MemDir> dir) { dir_ = std::move(dir); }
  // With state->mu held.
  size_t opens_locked() const { return opens_; }

  Result<std::unique_ptr<p9::OpenFile>> open(uint32_t flags) override;

 protected:
  // `echo spec > ctl` truncates first; there is nothing to truncate.
  Status truncate_locked(uint64_t) override { return {}; }

 private:
  friend class CtlHandle;
  std::shared_ptr<TreeState> state_;
  const std::string name_;
  const ForwardSpec spec_;
  std::weak_ptr<p9::MemDir> dir_;
  size_t opens_ = 0;  // guarded by state_->mu
};

class PortRoot : public p9::MemDir {
 public:
  explicit PortRoot(std::shared_ptr<TreeState> state)
      : MemDir(p9::Access::kReadOnly, 0755), state_(std::move(state)) {}

  // mkdir <spec>: a directory holding a ctl. A directory whose ctl nobody has open is a
  // leftover of a hook that died between mkdir and open: it is replaced rather than EEXIST.
  Result<std::shared_ptr<p9::Node>> mkdir(std::string_view name, uint32_t mode,
                                          uint32_t) override {
    auto spec = parse_spec(name);
    if (!spec) return p9::fail_posix(EINVAL, spec.error().message());
    std::lock_guard lock(state_->mu);
    size_t count = 0;
    for (const auto& entry : names()) count += entry != name;
    if (auto existing = get(name)) {
      auto ctl = existing->lookup("ctl");
      auto* file = ctl ? dynamic_cast<CtlFile*>(ctl->get()) : nullptr;
      if (file && file->opens_locked() > 0) {
        return p9::fail_posix(EEXIST, "forward " + std::string(name) + " is active");
      }
    }
    if (count >= state_->max_forwards) {
      return p9::fail_posix(ENOSPC, std::to_string(count) + " forwards already");
    }
    auto dir = p9::MemDir::create(p9::Access::kReadOnly, mode & 0777);
    auto ctl = std::make_shared<CtlFile>(state_, std::string(name), *spec);
    ctl->set_dir(dir);
    TRY(dir->add("ctl", ctl));
    TRY(add(name, dir));
    return std::shared_ptr<p9::Node>(dir);
  }

 private:
  std::shared_ptr<TreeState> state_;
};

// One open of a ctl: the forward it started lives as long as it does.
class CtlHandle : public p9::OpenFile {
 public:
  explicit CtlHandle(std::shared_ptr<CtlFile> ctl) : ctl_(std::move(ctl)) {}

  // The clunk hook: stop the forward, then drop the directory if this was its last open.
  ~CtlHandle() override {
    std::string spec = format_spec(ctl_->spec_);
    if (forward_) {
      forward_.reset();  // synchronous: the port is free after this
      log::info("ports: stopped %s", spec.c_str());
    }
    auto& state = *ctl_->state_;
    std::lock_guard lock(state.mu);
    if (--ctl_->opens_ > 0) return;
    auto root = state.root.lock();
    auto dir = ctl_->dir_.lock();
    if (root && dir && root->get(ctl_->name_) == dir) (void)root->remove(ctl_->name_);
  }

  void read(uint64_t offset, uint32_t count, p9::Responder responder) override {
    std::string out;
    {
      std::lock_guard lock(mu_);
      if (offset < result_.size()) out = result_.substr(offset, count);
    }
    responder.reply(out);
  }

  Result<uint32_t> write(uint64_t, std::string_view data) override {
    std::string result = handle(data);
    std::lock_guard lock(mu_);
    result_ = std::move(result);
    return static_cast<uint32_t>(data.size());
  }

 private:
  std::string handle(std::string_view data) {
    // `echo` adds a newline; tolerate trailing whitespace.
    while (!data.empty() && (data.back() == '\n' || data.back() == ' ' || data.back() == '\r')) {
      data.remove_suffix(1);
    }
    auto spec = parse_spec(data);
    if (!spec) return "ERROR malformed spec: " + spec.error().message() + "\n";
    if (*spec != ctl_->spec_) return "ERROR spec written to ctl does not match the directory\n";
    if (forward_) return "OK " + forward_->bound() + "\n";  // already running: same answer
    auto forward = ctl_->state_->start(*spec);
    if (!forward) {
      log::info("ports: %s refused: %s", format_spec(*spec).c_str(),
                forward.error().message().c_str());
      return "ERROR " + forward.error().message() + "\n";
    }
    forward_ = std::move(*forward);
    log::info("ports: %s listening on %s", format_spec(*spec).c_str(), forward_->bound().c_str());
    return "OK " + forward_->bound() + "\n";
  }

  std::shared_ptr<CtlFile> ctl_;
  std::mutex mu_;
  std::string result_;
  std::unique_ptr<HostForward> forward_;
};

Result<std::unique_ptr<p9::OpenFile>> CtlFile::open(uint32_t) {
  std::lock_guard lock(state_->mu);
  opens_++;
  return std::unique_ptr<p9::OpenFile>(
      new CtlHandle(std::static_pointer_cast<CtlFile>(shared_from_this())));
}

}  // namespace

std::shared_ptr<p9::FileSystem> make_port_tree(StartForward start, size_t max_forwards) {
  auto state = std::make_shared<TreeState>();
  state->start = std::move(start);
  state->max_forwards = max_forwards;
  auto root = std::make_shared<PortRoot>(state);
  state->root = root;
  return std::make_shared<p9::MemFs>(root);
}

// ---- the service ---------------------------------------------------------------------------

Result<std::unique_ptr<PortService>> PortService::create(HostOptions options) {
  std::unique_ptr<PortService> s(new PortService());
  s->options_ = std::move(options);
  s->external_bind_ = std::make_shared<std::atomic<bool>>(s->options_.external_bind);
  s->fs_ = make_port_tree(
      [options = s->options_, external = s->external_bind_](const ForwardSpec& spec) {
        return start_host_forward(spec, options, external->load());
      },
      s->options_.max_forwards);
  return s;
}

PortService::~PortService() {
  acceptor_.reset();  // sessions end, their fids are clunked, the forwards stop
}

Status PortService::serve(const std::string& socket_path) {
  TRY_ASSIGN(UniqueFd listener, unix_listen(socket_path, 0600, 16));
  auto handler = [fs = fs_](UniqueFd conn) {
    p9::SessionOptions options;
    options.name = "ports-9p";
    p9::Session session(fs, std::move(conn), options);
    log::info("ports: the guest connected to the port tree");
    if (auto st = session.run(); !st) {
      log::warn("ports: 9P session: %s", st.error().message().c_str());
    } else {
      log::info("ports: the guest disconnected from the port tree; its forwards are stopped");
    }
  };
  TRY_ASSIGN(acceptor_,
             StreamAcceptor::start(std::move(listener), handler, "ports-9p", kMaxSessions));
  log::info("ports: serving the port-forwarding tree on %s", socket_path.c_str());
  return {};
}

size_t PortService::session_count() const {
  return acceptor_ ? acceptor_->connection_count() : 0;
}

}  // namespace pinata::ports
