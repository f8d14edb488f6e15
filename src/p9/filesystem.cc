#include "p9/filesystem.h"

#include <sys/stat.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace pinata::p9 {

Error posix_error(int err, std::string what) {
  ErrorKind kind = ErrorKind::kIo;
  switch (err) {
    case ENOENT: kind = ErrorKind::kNotFound; break;
    case EEXIST: kind = ErrorKind::kAlreadyExists; break;
    case EINVAL: kind = ErrorKind::kInvalidInput; break;
    case EOPNOTSUPP: kind = ErrorKind::kUnsupported; break;
    default: break;
  }
  return Error(kind, what + ": " + std::strerror(err), err);
}

int to_errno(const Error& error) {
  if (error.code() > 0) return error.code();
  switch (error.kind()) {
    case ErrorKind::kNotFound: return ENOENT;
    case ErrorKind::kAlreadyExists: return EEXIST;
    case ErrorKind::kInvalidInput: return EINVAL;
    case ErrorKind::kUnsupported: return EOPNOTSUPP;
    case ErrorKind::kTimeout: return ETIMEDOUT;
    case ErrorKind::kIo:
    case ErrorKind::kCorrupt:
    case ErrorKind::kInternal: return EIO;
  }
  return EIO;
}

Timespec now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{static_cast<uint64_t>(ts.tv_sec), static_cast<uint64_t>(ts.tv_nsec)};
}

uint64_t allocate_qid_path() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

// ---- Responder::detached -----------------------------------------------------------------

namespace {

class DetachedState : public Responder::State {
 public:
  DetachedState(uint32_t count, std::function<void(Result<std::string>)> done)
      : count_(count), done_(std::move(done)) {}
  ~DetachedState() override {
    if (!finished_) done_(tl::unexpected<Error>(posix_error(EIO, "read dropped unanswered")));
  }

  uint32_t count() const override { return count_; }

  bool complete(Result<std::string_view> result) override {
    std::function<void()> hook;  // destroyed after the lock is released
    {
      std::lock_guard lock(mu_);
      if (finished_) return false;
      finished_ = true;
      hook = std::move(hook_);
    }
    if (result) {
      done_(std::string(result->substr(0, count_)));
    } else {
      done_(tl::unexpected<Error>(result.error()));
    }
    return true;
  }

  void on_cancel(std::function<void()> hook) override {
    {
      std::lock_guard lock(mu_);
      if (!finished_) {
        hook_ = std::move(hook);
        return;
      }
      if (!cancelled_) return;
    }
    hook();
  }

  bool finished() const override {
    std::lock_guard lock(mu_);
    return finished_;
  }

  void cancel() {
    std::function<void()> hook;
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      finished_ = cancelled_ = true;
      hook = std::move(hook_);
    }
    if (hook) hook();
  }

 private:
  const uint32_t count_;
  std::function<void(Result<std::string>)> done_;
  mutable std::mutex mu_;
  bool finished_ = false;
  bool cancelled_ = false;
  std::function<void()> hook_;
};

}  // namespace

Responder::Detached Responder::detached(uint32_t count,
                                        std::function<void(Result<std::string>)> done) {
  auto state = std::make_shared<DetachedState>(count, std::move(done));
  std::weak_ptr<DetachedState> weak = state;
  return Detached{Responder(state), [weak] {
                    if (auto s = weak.lock()) s->cancel();
                  }};
}

// ---- defaults ------------------------------------------------------------------------------

Result<uint32_t> OpenFile::write(uint64_t, std::string_view) {
  return fail_posix(EBADF, "file is not writable");
}

Status Node::setattr(const SetAttr& attr) {
  constexpr uint32_t kTimes = P9_SETATTR_ATIME | P9_SETATTR_MTIME | P9_SETATTR_CTIME |
                              P9_SETATTR_ATIME_SET | P9_SETATTR_MTIME_SET;
  if ((attr.valid & ~kTimes) != 0) return fail_posix(EPERM, "setattr");
  return {};
}

Result<std::unique_ptr<OpenFile>> Node::open(uint32_t) { return fail_posix(EOPNOTSUPP, "open"); }

Result<std::string> Node::readlink() { return fail_posix(EINVAL, "readlink of a non-symlink"); }

Result<std::shared_ptr<Node>> Node::lookup(std::string_view) {
  return fail_posix(ENOTDIR, "lookup");
}

Result<std::vector<DirEntry>> Node::readdir() { return fail_posix(ENOTDIR, "readdir"); }

Result<std::shared_ptr<Node>> Node::mkdir(std::string_view, uint32_t, uint32_t) {
  return fail_posix(is_directory() ? EOPNOTSUPP : ENOTDIR, "mkdir");
}

Result<std::shared_ptr<Node>> Node::create(std::string_view, uint32_t, uint32_t, uint32_t) {
  return fail_posix(is_directory() ? EOPNOTSUPP : ENOTDIR, "create");
}

Status Node::unlink(std::string_view, UnlinkKind) {
  return fail_posix(is_directory() ? EOPNOTSUPP : ENOTDIR, "unlink");
}

Status Node::rename(std::string_view, const std::shared_ptr<Node>&, std::string_view) {
  return fail_posix(is_directory() ? EOPNOTSUPP : ENOTDIR, "rename");
}

Result<StatFs> FileSystem::statfs() {
  StatFs st;
  st.type = 0x01021997;  // V9FS_MAGIC
  st.bsize = 4096;
  st.namelen = kMaxNameLength;
  return st;
}

}  // namespace pinata::p9
