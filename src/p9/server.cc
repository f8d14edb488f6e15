#include "p9/server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/log.h"

namespace pinata::p9 {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Deepest path a fid may walk to below its attach root (ENAMETOOLONG beyond).
constexpr size_t kMaxDepth = 1024;

uint8_t dirent_type(const Qid& qid) {
  if (qid.type & P9_QTDIR) return 4;       // DT_DIR
  if (qid.type & P9_QTSYMLINK) return 10;  // DT_LNK
  return 8;                                // DT_REG
}

// A Tread waiting for its answer. Guarded by Wire::mu.
struct Pending {
  uint16_t tag = 0;
  uint32_t fid = 0;
  bool done = false;  // answered or cancelled: no (further) reply may be written
  bool cancelled = false;
  std::function<void()> hook;
};

// The write side of a session, shared with its responders (which may outlive the session).
// `mu` serialises every reply and guards the pending-read table, so "is this read still
// pending? then write its reply" is atomic with respect to Tflush and cancellation.
class Wire {
 public:
  std::mutex mu;
  int fd = -1;        // guarded by mu; -1 once the session has closed
  UniqueFd owned_fd;  // the write fd when it is separate from the read fd
  bool is_socket = false;
  bool broken = false;  // a write failed
  std::unordered_map<uint16_t, std::shared_ptr<Pending>> pending;
  UniqueFd wake_fd;  // eventfd: makes the reader's poll return
  std::string name;

  void wake() {
    if (!wake_fd) return;
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd.get(), &one, sizeof one);
    (void)n;
  }

  // Writes one whole frame; caller holds mu.
  void write_locked(const std::vector<uint8_t>& frame) {
    if (fd < 0 || broken) return;
    size_t done = 0;
    while (done < frame.size()) {
      const uint8_t* p = frame.data() + done;
      size_t left = frame.size() - done;
      ssize_t n = is_socket ? ::send(fd, p, left, MSG_NOSIGNAL) : ::write(fd, p, left);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        ::poll(&pfd, 1, -1);
        continue;
      }
      log::warn("%s: writing a reply failed: %s", name.c_str(),
                n < 0 ? std::strerror(errno) : "wrote nothing");
      broken = true;
      wake();
      return;
    }
  }

  void send(const std::vector<uint8_t>& frame) {
    std::lock_guard lock(mu);
    write_locked(frame);
  }

  // Answers `p` with `frame` unless it is already answered or cancelled.
  bool complete(const std::shared_ptr<Pending>& p, const std::vector<uint8_t>& frame) {
    std::function<void()> hook;  // destroyed after the lock is released
    std::lock_guard lock(mu);
    if (p->done) return false;
    p->done = true;
    hook = std::move(p->hook);
    auto it = pending.find(p->tag);
    if (it != pending.end() && it->second == p) pending.erase(it);
    write_locked(frame);
    return true;
  }
};

class ReadState final : public Responder::State {
 public:
  ReadState(std::shared_ptr<Wire> wire, std::shared_ptr<Pending> pending, uint32_t count)
      : wire_(std::move(wire)), pending_(std::move(pending)), count_(count) {}
  ~ReadState() override {
    if (!finished()) complete(tl::unexpected<Error>(posix_error(EIO, "read dropped unanswered")));
  }

  uint32_t count() const override { return count_; }

  bool complete(Result<std::string_view> result) override {
    std::vector<uint8_t> frame;
    if (result) {
      frame = encode_rmessage(pending_->tag, Rread{std::string(result->substr(0, count_))});
    } else {
      frame =
          encode_rmessage(pending_->tag, Rlerror{static_cast<uint32_t>(to_errno(result.error()))});
    }
    return wire_->complete(pending_, frame);
  }

  void on_cancel(std::function<void()> hook) override {
    std::function<void()> run;  // both destroyed after the lock is released
    std::function<void()> drop;
    {
      std::lock_guard lock(wire_->mu);
      if (!pending_->done) {
        drop = std::move(pending_->hook);
        pending_->hook = std::move(hook);
        return;
      }
      if (pending_->cancelled) {
        run = std::move(hook);
      } else {
        drop = std::move(hook);
      }
    }
    if (run) run();
  }

  bool finished() const override {
    std::lock_guard lock(wire_->mu);
    return pending_->done;
  }

 private:
  std::shared_ptr<Wire> wire_;
  std::shared_ptr<Pending> pending_;
  const uint32_t count_;
};

// A fid's place in the tree: a chain up to the attach root, shared between fids.
struct PathNode {
  std::shared_ptr<const PathNode> parent;  // null at the attach root
  std::string name;
  std::shared_ptr<Node> node;
  size_t depth = 0;
};

std::shared_ptr<const PathNode> child_path(const std::shared_ptr<const PathNode>& parent,
                                           std::string name, std::shared_ptr<Node> node) {
  auto p = std::make_shared<PathNode>();
  p->parent = parent;
  p->name = std::move(name);
  p->node = std::move(node);
  p->depth = parent->depth + 1;
  return p;
}

enum class OpenState { kClosed, kFile, kDirectory };

struct Fid {
  std::shared_ptr<const PathNode> path;
  OpenState open = OpenState::kClosed;
  uint32_t flags = 0;
  std::unique_ptr<OpenFile> file;
  std::vector<Dirent> snapshot;  // of the directory, taken by Treaddir at offset 0
  bool has_snapshot = false;

  const std::shared_ptr<Node>& node() const { return path->node; }
};

}  // namespace

struct Session::Impl {
  std::shared_ptr<FileSystem> fs;
  SessionOptions options;
  UniqueFd read_fd;
  std::shared_ptr<Wire> wire = std::make_shared<Wire>();
  std::atomic<bool> stopping{false};
  bool shut_down = false;

  bool negotiated = false;
  uint32_t msize = 0;
  std::unordered_map<uint32_t, std::unique_ptr<Fid>> fids;
  std::atomic<size_t> fid_count{0};

  Impl(std::shared_ptr<FileSystem> filesystem, SessionOptions opts)
      : fs(std::move(filesystem)), options(std::move(opts)) {
    wire->name = options.name;
    int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd >= 0) wire->wake_fd.reset(efd);
  }

  void set_write_fd(int fd) {
    struct stat st;
    wire->fd = fd;
    wire->is_socket = ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
  }

  uint32_t frame_limit() const { return negotiated ? msize : options.max_msize; }

  Status run();
  void handle_frame(std::span<const uint8_t> frame);
  void shutdown();

  void reply(uint16_t tag, const RMessage& message) { wire->send(encode_rmessage(tag, message)); }
  void reply_error(uint16_t tag, int err) { reply(tag, Rlerror{static_cast<uint32_t>(err)}); }

  // Cancels pending reads (of `fid`, or all); answers each with Rlerror(err) if err != 0.
  void abort_pending(std::optional<uint32_t> fid, int err);
  void clunk_all();

  Result<Fid*> find_fid(uint32_t fid) {
    auto it = fids.find(fid);
    if (it == fids.end()) return fail_posix(EBADF, "unknown fid " + std::to_string(fid));
    return it->second.get();
  }
  Status check_new_fid(uint32_t fid) {
    if (fids.count(fid)) return fail_posix(EBADF, "fid " + std::to_string(fid) + " in use");
    if (fids.size() >= options.max_fids) {
      return fail_posix(EMFILE, "more than " + std::to_string(options.max_fids) + " fids");
    }
    return {};
  }
  Result<Fid*> find_dir_fid(uint32_t fid) {
    TRY_ASSIGN(Fid * f, find_fid(fid));
    if (!f->node()->is_directory()) return fail_posix(ENOTDIR, "not a directory");
    return f;
  }

  void handle_read(uint16_t tag, const Tread& m);

  Result<RMessage> handle(uint16_t tag, const Tversion& m);
  Result<RMessage> handle(uint16_t tag, const Tauth& m);
  Result<RMessage> handle(uint16_t tag, const Tattach& m);
  Result<RMessage> handle(uint16_t tag, const Tflush& m);
  Result<RMessage> handle(uint16_t tag, const Twalk& m);
  Result<RMessage> handle(uint16_t tag, const Tlopen& m);
  Result<RMessage> handle(uint16_t tag, const Tlcreate& m);
  Result<RMessage> handle(uint16_t tag, const Tsymlink& m);
  Result<RMessage> handle(uint16_t tag, const Tmknod& m);
  Result<RMessage> handle(uint16_t tag, const Trename& m);
  Result<RMessage> handle(uint16_t tag, const Treadlink& m);
  Result<RMessage> handle(uint16_t tag, const Tgetattr& m);
  Result<RMessage> handle(uint16_t tag, const Tsetattr& m);
  Result<RMessage> handle(uint16_t tag, const Txattrwalk& m);
  Result<RMessage> handle(uint16_t tag, const Txattrcreate& m);
  Result<RMessage> handle(uint16_t tag, const Treaddir& m);
  Result<RMessage> handle(uint16_t tag, const Tfsync& m);
  Result<RMessage> handle(uint16_t tag, const Tlock& m);
  Result<RMessage> handle(uint16_t tag, const Tgetlock& m);
  Result<RMessage> handle(uint16_t tag, const Tlink& m);
  Result<RMessage> handle(uint16_t tag, const Tmkdir& m);
  Result<RMessage> handle(uint16_t tag, const Trenameat& m);
  Result<RMessage> handle(uint16_t tag, const Tunlinkat& m);
  Result<RMessage> handle(uint16_t tag, const Tstatfs& m);
  Result<RMessage> handle(uint16_t tag, const Tread& m);
  Result<RMessage> handle(uint16_t tag, const Twrite& m);
  Result<RMessage> handle(uint16_t tag, const Tclunk& m);
  Result<RMessage> handle(uint16_t tag, const Tremove& m);
};

// ---- connection ----------------------------------------------------------------------------

Status Session::Impl::run() {
  if (!wire->wake_fd) return fail_errno("eventfd");
  std::vector<uint8_t> buf(kReadChunk);
  size_t start = 0;
  size_t end = 0;
  Status status;
  for (;;) {
    // Handle every complete frame in the buffer.
    bool fatal = false;
    while (end - start >= 4 && !fatal) {
      const uint8_t* p = buf.data() + start;
      uint32_t size =
          uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
      if (size < kHeaderSize || size > frame_limit()) {
        log::warn("%s: message size %u outside [7, %u]: closing the connection",
                  options.name.c_str(), size, frame_limit());
        status = fail(ErrorKind::kInvalidInput,
                      "9P message size " + std::to_string(size) + " out of range");
        fatal = true;
        break;
      }
      if (end - start < size) break;
      handle_frame(std::span<const uint8_t>(p, size));
      start += size;
      if (stopping.load()) fatal = true;
    }
    if (fatal) break;
    {
      std::lock_guard lock(wire->mu);
      if (wire->broken) {
        status = fail(ErrorKind::kIo, "writing a reply failed");
        break;
      }
    }
    if (start > 0) {
      std::memmove(buf.data(), buf.data() + start, end - start);
      end -= start;
      start = 0;
    }
    if (buf.size() - end < kReadChunk) buf.resize(end + kReadChunk);

    struct pollfd pfds[2] = {{read_fd.get(), POLLIN, 0}, {wire->wake_fd.get(), POLLIN, 0}};
    int r = ::poll(pfds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      status = fail_errno("poll");
      break;
    }
    if (pfds[1].revents & POLLIN) {
      uint64_t v;
      ssize_t n = ::read(wire->wake_fd.get(), &v, sizeof v);
      (void)n;
      if (stopping.load()) break;
      continue;  // a write error: the check above ends the loop
    }
    if (pfds[0].revents == 0) continue;
    ssize_t n = ::read(read_fd.get(), buf.data() + end, buf.size() - end);
    if (n == 0) {
      if (end > 0) {
        log::warn("%s: connection closed inside a message (%zu bytes)", options.name.c_str(), end);
      }
      break;
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (errno == ECONNRESET) break;
      status = fail_errno("reading 9P messages");
      break;
    }
    end += static_cast<size_t>(n);
  }
  shutdown();
  return status;
}

void Session::Impl::abort_pending(std::optional<uint32_t> fid, int err) {
  std::vector<std::function<void()>> hooks;  // run and destroyed after the lock is released
  {
    std::lock_guard lock(wire->mu);
    for (auto it = wire->pending.begin(); it != wire->pending.end();) {
      Pending& p = *it->second;
      if (fid && p.fid != *fid) {
        ++it;
        continue;
      }
      p.done = true;
      p.cancelled = true;
      hooks.push_back(std::move(p.hook));
      if (err != 0) wire->write_locked(encode_rmessage(p.tag, Rlerror{uint32_t(err)}));
      it = wire->pending.erase(it);
    }
  }
  for (auto& hook : hooks) {
    if (hook) hook();
  }
}

void Session::Impl::clunk_all() {
  // Move the table out first so that OpenFile destructors see a consistent session.
  auto doomed = std::move(fids);
  fids.clear();
  fid_count = 0;
  doomed.clear();
}

void Session::Impl::shutdown() {
  if (shut_down) return;
  shut_down = true;
  abort_pending(std::nullopt, 0);
  clunk_all();
  {
    std::lock_guard lock(wire->mu);
    wire->fd = -1;
    wire->owned_fd.reset();
  }
  read_fd.reset();
}

void Session::Impl::handle_frame(std::span<const uint8_t> frame) {
  auto header = decode_header(frame);
  if (!header) return;  // run() checked the size; unreachable
  const uint16_t tag = header->tag;
  const char* type_name = message_type_name(header->type);

  if (header->type != static_cast<uint8_t>(MessageType::Tversion)) {
    bool in_use;
    {
      std::lock_guard lock(wire->mu);
      in_use = wire->pending.count(tag) != 0;
    }
    if (in_use) {
      log::warn("%s: %s reuses tag %u of a pending request", options.name.c_str(), type_name, tag);
      reply_error(tag, EINVAL);
      return;
    }
  }

  auto decoded = decode_tmessage(frame, frame_limit());
  if (!decoded) {
    const Error& e = decoded.error();
    if (e.kind() == ErrorKind::kUnsupported) {
      log::debug("%s: %s", options.name.c_str(), e.message().c_str());
    } else {
      log::warn("%s: bad message: %s", options.name.c_str(), e.message().c_str());
    }
    reply_error(tag, to_errno(e));
    return;
  }
  const TMessage& message = decoded->message;
  if (!negotiated && !std::holds_alternative<Tversion>(message)) {
    log::warn("%s: %s before Tversion", options.name.c_str(), type_name);
    reply_error(tag, EPROTO);
    return;
  }

  if (const auto* read = std::get_if<Tread>(&message)) {
    handle_read(tag, *read);
  } else {
    Result<RMessage> out =
        std::visit([&](const auto& m) -> Result<RMessage> { return handle(tag, m); }, message);
    fid_count = fids.size();  // before the reply, so a client that saw it sees the count
    if (out) {
      reply(tag, *out);
    } else {
      log::debug("%s: %s: %s", options.name.c_str(), type_name, out.error().message().c_str());
      reply_error(tag, to_errno(out.error()));
    }
  }
}

// ---- handlers ------------------------------------------------------------------------------

Result<RMessage> Session::Impl::handle(uint16_t, const Tversion& m) {
  // A new version starts a new session: abort everything, clunk every fid.
  abort_pending(std::nullopt, 0);
  clunk_all();
  uint32_t size = std::min(m.msize, options.max_msize);
  if (m.version != kVersion9P2000L || m.msize < kMinMsize) {
    negotiated = false;
    log::warn("%s: client offered version \"%s\" msize %u: answering \"unknown\"",
              options.name.c_str(), m.version.c_str(), m.msize);
    return Rversion{size, std::string(kVersionUnknown)};
  }
  negotiated = true;
  msize = size;
  return Rversion{size, std::string(kVersion9P2000L)};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tauth&) {
  return fail_posix(EOPNOTSUPP, "authentication is not required");
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tattach& m) {
  TRY(check_new_fid(m.fid));
  TRY_ASSIGN(std::shared_ptr<Node> root, fs->attach(m.uname, m.aname, m.n_uname));
  if (!root) return fail_posix(EIO, "attach returned no root");
  auto path = std::make_shared<PathNode>();
  path->node = root;
  auto fid = std::make_unique<Fid>();
  fid->path = std::move(path);
  fids[m.fid] = std::move(fid);
  return Rattach{root->qid()};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tflush& m) {
  std::function<void()> hook;  // run and destroyed after the lock is released
  {
    std::lock_guard lock(wire->mu);
    auto it = wire->pending.find(m.oldtag);
    if (it != wire->pending.end()) {
      Pending& p = *it->second;
      p.done = true;
      p.cancelled = true;
      hook = std::move(p.hook);
      wire->pending.erase(it);
    }
  }
  // The flushed read will never be answered; a read answered before this point had its reply
  // written before we took the lock, so Rflush follows it.
  if (hook) hook();
  return Rflush{};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Twalk& m) {
  TRY_ASSIGN(Fid * f, find_fid(m.fid));
  const bool in_place = m.newfid == m.fid;
  if (in_place) {
    if (f->open != OpenState::kClosed) return fail_posix(EBADF, "walk of an open fid in place");
  } else {
    TRY(check_new_fid(m.newfid));
  }
  std::shared_ptr<const PathNode> path = f->path;
  std::vector<Qid> qids;
  std::optional<Error> error;
  for (const std::string& name : m.names) {
    const std::shared_ptr<Node>& cur = path->node;
    if (!cur->is_directory()) {
      error = posix_error(ENOTDIR, "walk through a non-directory");
      break;
    }
    if (name == "..") {
      if (path->parent) path = path->parent;  // never above the attach root
      qids.push_back(path->node->qid());
      continue;
    }
    if (name == ".") {
      qids.push_back(cur->qid());
      continue;
    }
    if (path->depth >= kMaxDepth) {
      error = posix_error(ENAMETOOLONG, "path deeper than " + std::to_string(kMaxDepth));
      break;
    }
    auto child = cur->lookup(name);
    if (!child || !*child) {
      error = child ? posix_error(ENOENT, name) : child.error();
      break;
    }
    qids.push_back((*child)->qid());
    path = child_path(path, name, std::move(*child));
  }
  if (qids.size() < m.names.size()) {
    if (qids.empty()) return tl::unexpected<Error>(*error);
    return Rwalk{std::move(qids)};  // partial walk: newfid is not made
  }
  if (in_place) {
    f->path = std::move(path);
    f->has_snapshot = false;
    f->snapshot.clear();
  } else {
    auto nf = std::make_unique<Fid>();
    nf->path = std::move(path);
    fids[m.newfid] = std::move(nf);
  }
  return Rwalk{std::move(qids)};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tlopen& m) {
  TRY_ASSIGN(Fid * f, find_fid(m.fid));
  if (f->open != OpenState::kClosed) return fail_posix(EBADF, "fid already open");
  const std::shared_ptr<Node>& node = f->node();
  if (node->is_directory()) {
    if ((m.flags & P9_DOTL_ACCMODE) != P9_DOTL_RDONLY) {
      return fail_posix(EISDIR, "directory opened for writing");
    }
    f->open = OpenState::kDirectory;
    f->flags = m.flags;
    return Rlopen{node->qid(), 0};
  }
  TRY_ASSIGN(std::unique_ptr<OpenFile> file, node->open(m.flags));
  if (!file) return fail_posix(EIO, "open returned no file");
  uint32_t iounit = file->iounit();
  f->file = std::move(file);
  f->open = OpenState::kFile;
  f->flags = m.flags;
  return Rlopen{node->qid(), iounit};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tlcreate& m) {
  TRY_ASSIGN(Fid * f, find_dir_fid(m.fid));
  if (f->open != OpenState::kClosed) return fail_posix(EBADF, "fid already open");
  if (f->path->depth >= kMaxDepth) return fail_posix(ENAMETOOLONG, "path too deep");
  TRY_ASSIGN(std::shared_ptr<Node> child, f->node()->create(m.name, m.flags, m.mode, m.gid));
  if (!child) return fail_posix(EIO, "create returned no node");
  TRY_ASSIGN(std::unique_ptr<OpenFile> file, child->open(m.flags));
  if (!file) return fail_posix(EIO, "open returned no file");
  uint32_t iounit = file->iounit();
  Qid qid = child->qid();
  f->path = child_path(f->path, m.name, std::move(child));
  f->file = std::move(file);
  f->open = OpenState::kFile;
  f->flags = m.flags;
  return Rlcreate{qid, iounit};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tsymlink& m) {
  TRY(find_dir_fid(m.fid));
  return fail_posix(EOPNOTSUPP, "symlink");
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tmknod& m) {
  TRY(find_dir_fid(m.dfid));
  return fail_posix(EOPNOTSUPP, "mknod");
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tlink& m) {
  TRY(find_dir_fid(m.dfid));
  TRY(find_fid(m.fid));
  return fail_posix(EOPNOTSUPP, "link");
}

Result<RMessage> Session::Impl::handle(uint16_t, const Trename& m) {
  TRY_ASSIGN(Fid * f, find_fid(m.fid));
  TRY_ASSIGN(Fid * d, find_dir_fid(m.dfid));
  if (!f->path->parent) return fail_posix(EBUSY, "rename of the attach root");
  if (d->path->depth >= kMaxDepth) return fail_posix(ENAMETOOLONG, "path too deep");
  TRY(f->path->parent->node->rename(f->path->name, d->node(), m.name));
  f->path = child_path(d->path, m.name, f->node());
  return Rrename{};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Treadlink& m) {
  TRY_ASSIGN(Fid * f, find_fid(m.fid));
  TRY_ASSIGN(std::string target, f->node()->readlink());
  if (target.size() > 0xffff) return fail_posix(ENAMETOOLONG, "link target too long");
  return Rreadlink{std::move(target)};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tgetattr& m) {
  TRY_ASSIGN(Fid * f, find_fid(m.fid));
  const std::shared_ptr<Node>& node = f->node();
  TRY_ASSIGN(Attr a, node->getattr());
  Stat s;
  s.valid = P9_GETATTR_BASIC;
  s.qid = node->qid();
  s.mode = a.mode;
  s.uid = a.uid;
  s.gid = a.gid;
  s.nlink = a.nlink;
  s.rdev = a.rdev;
  s.size = a.size;
  s.blksize = 4096;
  s.blocks = (a.size + 511) / 512;
  s.atime_sec = a.atime.sec;
  s.atime_nsec = a.atime.nsec;
  s.mtime_sec = a.mtime.sec;
  s.mtime_nsec = a.mtime.nsec;
  s.ctime_sec = a.ctime.sec;
  s.ctime_nsec = a.ctime.nsec;
  return Rgetattr{s};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tsetattr& m) {
  TRY_ASSIGN(Fid * f, find_fid(m.fid));
  SetAttr attr = m.attr;
  Timespec t = now();
  if ((attr.valid & P9_SETATTR_ATIME) && !(attr.valid & P9_SETATTR_ATIME_SET)) {
    attr.atime_sec = t.sec;
    attr.atime_nsec = t.nsec;
  }
  if ((attr.valid & P9_SETATTR_MTIME) && !(attr.valid & P9_SETATTR_MTIME_SET)) {
    attr.mtime_sec = t.sec;
    attr.mtime_nsec = t.nsec;
  }
  TRY(f->node()->setattr(attr));
  return Rsetattr{};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Txattrwalk& m) {
  TRY(find_fid(m.fid));
  return fail_posix(EOPNOTSUPP, "extended attributes");
}

Result<RMessage> Session::Impl::handle(uint16_t, const Txattrcreate& m) {
  TRY(find_fid(m.fid));
  return fail_posix(EOPNOTSUPP, "extended attributes");
}

Result<RMessage> Session::Impl::handle(uint16_t, const Treaddir& m) {
  TRY_ASSIGN(Fid * f, find_fid(m.fid));
  if (f->open == OpenState::kFile) return fail_posix(ENOTDIR, "readdir of a file");
  if (f->open != OpenState::kDirectory) return fail_posix(EBADF, "readdir of an unopened fid");
  if (m.offset == 0 || !f->has_snapshot) {
    TRY_ASSIGN(std::vector<DirEntry> entries, f->node()->readdir());
    f->snapshot.clear();
    f->snapshot.reserve(entries.size() + 2);
    const Qid self = f->node()->qid();
    const Qid parent = f->path->parent ? f->path->parent->node->qid() : self;
    f->snapshot.push_back(Dirent{self, 0, dirent_type(self), "."});
    f->snapshot.push_back(Dirent{parent, 0, dirent_type(parent), ".."});
    for (DirEntry& e : entries) {
      if (!check_name(e.name, NameUse::kCreate)) {
        log::debug("%s: readdir skips bad name \"%s\"", options.name.c_str(), e.name.c_str());
        continue;
      }
      f->snapshot.push_back(Dirent{e.qid, 0, dirent_type(e.qid), std::move(e.name)});
    }
    for (size_t i = 0; i < f->snapshot.size(); i++) f->snapshot[i].offset = i + 1;
    f->has_snapshot = true;
  }
  const size_t limit = std::min<size_t>(m.count, msize - kRreadOverhead);
  std::string data;
  for (uint64_t i = m.offset; i < f->snapshot.size(); i++) {
    const Dirent& d = f->snapshot[i];
    if (data.size() + dirent_size(d.name) > limit) break;
    append_dirent(data, d);
  }
  if (data.empty() && m.offset < f->snapshot.size()) {
    return fail_posix(EINVAL, "readdir count too small for the next entry");
  }
  return Rreaddir{std::move(data)};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tfsync& m) {
  TRY_ASSIGN(Fid * f, find_fid(m.fid));
  if (f->open == OpenState::kClosed) return fail_posix(EBADF, "fsync of an unopened fid");
  if (f->open == OpenState::kFile) TRY(f->file->fsync());
  return Rfsync{};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tlock& m) {
  TRY(find_fid(m.fid));
  return Rlock{P9_LOCK_SUCCESS};  // advisory locks are granted (not tracked)
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tgetlock& m) {
  TRY(find_fid(m.fid));
  return Rgetlock{P9_LOCK_TYPE_UNLCK, m.start, m.length, m.proc_id, m.client_id};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tmkdir& m) {
  TRY_ASSIGN(Fid * d, find_dir_fid(m.dfid));
  if (d->path->depth >= kMaxDepth) return fail_posix(ENAMETOOLONG, "path too deep");
  TRY_ASSIGN(std::shared_ptr<Node> child, d->node()->mkdir(m.name, m.mode, m.gid));
  if (!child) return fail_posix(EIO, "mkdir returned no node");
  return Rmkdir{child->qid()};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Trenameat& m) {
  TRY_ASSIGN(Fid * from, find_dir_fid(m.olddirfid));
  TRY_ASSIGN(Fid * to, find_dir_fid(m.newdirfid));
  TRY(from->node()->rename(m.oldname, to->node(), m.newname));
  return Rrenameat{};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tunlinkat& m) {
  TRY_ASSIGN(Fid * d, find_dir_fid(m.dirfid));
  if (m.flags & ~P9_AT_REMOVEDIR) return fail_posix(EINVAL, "unlinkat flags");
  UnlinkKind kind = (m.flags & P9_AT_REMOVEDIR) ? UnlinkKind::kDirectory : UnlinkKind::kFile;
  TRY(d->node()->unlink(m.name, kind));
  return Runlinkat{};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tstatfs& m) {
  TRY(find_fid(m.fid));
  TRY_ASSIGN(StatFs st, fs->statfs());
  return Rstatfs{st};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tread&) {
  return fail_posix(EIO, "Tread is handled by handle_read");  // unreachable
}

void Session::Impl::handle_read(uint16_t tag, const Tread& m) {
  auto f = find_fid(m.fid);
  if (!f) return reply_error(tag, EBADF);
  Fid* fid = *f;
  if (fid->open == OpenState::kDirectory) return reply_error(tag, EISDIR);
  if (fid->open != OpenState::kFile) return reply_error(tag, EBADF);
  uint32_t mode = fid->flags & P9_DOTL_ACCMODE;
  if (mode != P9_DOTL_RDONLY && mode != P9_DOTL_RDWR) return reply_error(tag, EBADF);

  const uint32_t count = std::min<uint32_t>(m.count, msize - kRreadOverhead);
  auto pending = std::make_shared<Pending>();
  pending->tag = tag;
  pending->fid = m.fid;
  {
    std::lock_guard lock(wire->mu);
    wire->pending[tag] = pending;
  }
  fid->file->read(m.offset, count,
                  Responder(std::make_shared<ReadState>(wire, std::move(pending), count)));
}

Result<RMessage> Session::Impl::handle(uint16_t, const Twrite& m) {
  TRY_ASSIGN(Fid * f, find_fid(m.fid));
  if (f->open == OpenState::kDirectory) return fail_posix(EISDIR, "write to a directory");
  if (f->open != OpenState::kFile) return fail_posix(EBADF, "write to an unopened fid");
  uint32_t mode = f->flags & P9_DOTL_ACCMODE;
  if (mode != P9_DOTL_WRONLY && mode != P9_DOTL_RDWR) {
    return fail_posix(EBADF, "fid not open for writing");
  }
  TRY_ASSIGN(uint32_t n, f->file->write(m.offset, m.data));
  return Rwrite{std::min<uint32_t>(n, static_cast<uint32_t>(m.data.size()))};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tclunk& m) {
  TRY(find_fid(m.fid));
  abort_pending(m.fid, EBADF);
  auto doomed = std::move(fids[m.fid]);
  fids.erase(m.fid);
  doomed.reset();  // the clunk hook
  return Rclunk{};
}

Result<RMessage> Session::Impl::handle(uint16_t, const Tremove& m) {
  TRY(find_fid(m.fid));
  abort_pending(m.fid, EBADF);
  auto doomed = std::move(fids[m.fid]);
  fids.erase(m.fid);
  // The fid is clunked whether or not the remove succeeds.
  if (!doomed->path->parent) return fail_posix(EBUSY, "remove of the attach root");
  UnlinkKind kind = doomed->node()->is_directory() ? UnlinkKind::kDirectory : UnlinkKind::kFile;
  Status st = doomed->path->parent->node->unlink(doomed->path->name, kind);
  doomed.reset();
  TRY(st);
  return Rremove{};
}

// ---- Session -------------------------------------------------------------------------------

Session::Session(std::shared_ptr<FileSystem> fs, UniqueFd fd, SessionOptions options)
    : impl_(std::make_unique<Impl>(std::move(fs), std::move(options))) {
  impl_->read_fd = std::move(fd);
  impl_->set_write_fd(impl_->read_fd.get());
}

Session::Session(std::shared_ptr<FileSystem> fs, UniqueFd read_fd, UniqueFd write_fd,
                 SessionOptions options)
    : impl_(std::make_unique<Impl>(std::move(fs), std::move(options))) {
  impl_->read_fd = std::move(read_fd);
  impl_->wire->owned_fd = std::move(write_fd);
  impl_->set_write_fd(impl_->wire->owned_fd.get());
}

Session::~Session() { impl_->shutdown(); }

Status Session::run() { return impl_->run(); }

void Session::stop() {
  impl_->stopping = true;
  impl_->wire->wake();
}

size_t Session::fid_count() const { return impl_->fid_count.load(); }

size_t Session::pending_count() const {
  std::lock_guard lock(impl_->wire->mu);
  return impl_->wire->pending.size();
}

}  // namespace pinata::p9
