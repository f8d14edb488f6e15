// Fuzzes the 9P2000.L codec and server (src/p9/). The input is a stream of 9P messages.
//
// 1. Codec: each frame of the stream (cut by its size field) and the whole input are decoded
//    as a T-message and as an R-message; whatever decodes re-encodes to exactly the same bytes
//    and decodes again to the same value; Rreaddir data decodes as dirents without crashing.
// 2. Server: Tversion + Tattach(fid 0) followed by the input are fed through a socketpair to a
//    Session serving a memfs tree (directories, files, a read-only file, a callback file, a
//    stream file whose reads block); replies go to /dev/null. run() must return at EOF,
//    cancelling blocked reads and clunking every fid, without crashing or leaking.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "base/log.h"
#include "p9/codec.h"
#include "p9/memfs.h"
#include "p9/server.h"

using namespace pinata;
using namespace pinata::p9;

namespace {

constexpr size_t kMaxInput = 64 * 1024;
constexpr uint32_t kLimit = 1 << 20;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "p9_codec_fuzzer: %s\n", what);
  std::abort();
}

void check_frame(std::span<const uint8_t> frame) {
  if (auto t = decode_tmessage(frame, kLimit)) {
    auto bytes = encode_tmessage(t->tag, t->message);
    if (!std::equal(bytes.begin(), bytes.end(), frame.begin(), frame.end())) {
      die("T-message does not re-encode to its bytes");
    }
    auto again = decode_tmessage(bytes, kLimit);
    if (!again || !(*again == *t)) die("re-encoded T-message decodes differently");
  }
  if (auto r = decode_rmessage(frame, kLimit)) {
    auto bytes = encode_rmessage(r->tag, r->message);
    if (!std::equal(bytes.begin(), bytes.end(), frame.begin(), frame.end())) {
      die("R-message does not re-encode to its bytes");
    }
    if (auto* rd = std::get_if<Rreaddir>(&r->message)) {
      if (auto dirents = decode_dirents(rd->data)) {
        std::string out;
        for (const auto& d : *dirents) append_dirent(out, d);
        if (out != rd->data) die("dirents do not re-encode to their bytes");
      }
    }
  }
}

std::shared_ptr<MemFs> make_tree() {
  auto root = MemDir::create();
  (void)root->add("file", MemFile::create("contents of a file\n"));
  (void)root->add("ro", MemFile::create("read only\n", Access::kReadOnly));
  auto dir = *root->add_dir("dir");
  (void)dir->add("a", MemFile::create("a"));
  (void)dir->add_dir("sub");
  (void)root->add("rodir", MemDir::create(Access::kReadOnly));
  (void)root->add(
      "cb", CallbackFile::create([]() -> Result<std::string> { return std::string("OK 1\n"); },
                                 [](std::string_view d) -> Status {
                                   if (d.starts_with("fail")) return fail_posix(EINVAL, "fail");
                                   return {};
                                 }));
  auto live = StreamFile::create(StreamFile::Start::kLatest);
  live->post("0123456789abcdef\n");
  (void)root->add("live", live);
  return std::make_shared<MemFs>(root);
}

void run_session(const uint8_t* data, size_t size) {
  std::vector<uint8_t> stream = encode_tmessage(kNoTag, Tversion{65536, "9P2000.L"});
  auto attach = encode_tmessage(1, Tattach{0, kNoFid, "fuzz", "", kNoUname});
  stream.insert(stream.end(), attach.begin(), attach.end());
  stream.insert(stream.end(), data, data + size);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
  int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (devnull < 0) {
    ::close(sv[0]);
    ::close(sv[1]);
    return;
  }
  // Everything is written before the session runs (one thread): never block on a full socket.
  ::fcntl(sv[1], F_SETFL, O_NONBLOCK);
  size_t done = 0;
  while (done < stream.size()) {
    ssize_t n = ::write(sv[1], stream.data() + done, stream.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::shutdown(sv[1], SHUT_WR);

  {
    Session session(make_tree(), UniqueFd(sv[0]), UniqueFd(devnull));
    (void)session.run();
    if (session.fid_count() != 0 || session.pending_count() != 0) {
      die("session left fids or pending reads after run()");
    }
  }
  ::close(sv[1]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool initialized = [] {
    log::init("p9_fuzz", log::Level::kError);
    ::signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)initialized;
  if (size > kMaxInput) return 0;

  std::span<const uint8_t> all(data, size);
  check_frame(all);
  size_t pos = 0;
  while (size - pos >= kHeaderSize) {
    const uint8_t* p = data + pos;
    uint32_t n = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
    if (n < kHeaderSize || n > size - pos) {
      check_frame(all.subspan(pos));
      break;
    }
    check_frame(all.subspan(pos, n));
    pos += n;
  }

  run_session(data, size);
  return 0;
}
