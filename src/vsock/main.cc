// pinata-vsock: the vhost-user-vsock backend with hyperkit's socket-directory semantics.
//
//   pinata-vsock --socket PATH --dir DIR [--cid 3] [--forward PORT]... [--forwards "P1;P2"]
//                [--buf-alloc BYTES] [--verbose]
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "base/event_loop.h"
#include "base/io.h"
#include "base/log.h"
#include "vhost/backend.h"
#include "vsock/device.h"
#include "vsock/muxer.h"

using namespace pinata;

namespace {

constexpr const char* kUsage =
    "usage: pinata-vsock --socket PATH --dir DIR [--cid N] [--forward PORT]...\n"
    "                    [--forwards 'PORT;PORT...'] [--buf-alloc BYTES] [--verbose]\n"
    "  --socket PATH     vhost-user socket to listen on (the hypervisor connects)\n"
    "  --dir DIR         vsock socket directory (connect, 00000002.*, 00000003.*)\n"
    "  --cid N           guest CID (default 3)\n"
    "  --forward PORT    listen on DIR/00000003.<port in hex> for guest port PORT (repeatable)\n"
    "  --forwards LIST   several forwards separated by ';' or ','\n"
    "  --buf-alloc BYTES receive buffer advertised per connection (default 262144)\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "pinata-vsock: %s\n%s", message.c_str(), kUsage);
  return 2;
}

bool parse_u64(std::string_view s, uint64_t max, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    if (v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) return false;
  out = v;
  return true;
}

bool add_forwards(std::string_view list, std::vector<uint32_t>& out) {
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find_first_of(";,", start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view item = list.substr(start, end - start);
    if (!item.empty()) {
      uint64_t port;
      if (!parse_u64(item, 0xfffffffeu, port)) return false;
      out.push_back(static_cast<uint32_t>(port));
    }
    start = end + 1;
  }
  return true;
}

void raise_fd_limit() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path;
  vsock::MuxerConfig config;
  bool verbose = false;
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    auto value = [&](std::string_view name) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)name;
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--verbose" || arg == "-v") {
      verbose = true;
    } else if (arg == "--socket" || arg == "--dir" || arg == "--cid" || arg == "--forward" ||
               arg == "--forwards" || arg == "--buf-alloc") {
      const char* v = value(arg);
      if (!v) return usage_error(std::string(arg) + " needs a value");
      uint64_t n;
      if (arg == "--socket") {
        socket_path = v;
      } else if (arg == "--dir") {
        config.dir = v;
      } else if (arg == "--cid") {
        if (!parse_u64(v, 0xffffffffu, n) || n < 3) {
          return usage_error(std::string("--cid '") + v + "': expected a decimal CID >= 3");
        }
        config.guest_cid = n;
      } else if (arg == "--forward" || arg == "--forwards") {
        if (!add_forwards(v, config.forwards)) {
          return usage_error(std::string(arg) + " '" + v +
                             "': expected decimal ports (0-4294967294) separated by ';'");
        }
      } else {
        if (!parse_u64(v, 64u << 20, n) || n < 4096) {
          return usage_error(std::string("--buf-alloc '") + v +
                             "': expected a byte count between 4096 and 67108864");
        }
        config.buf_alloc = static_cast<uint32_t>(n);
      }
    } else {
      return usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (socket_path.empty()) return usage_error("--socket is required");
  if (config.dir.empty()) return usage_error("--dir is required");

  log::init("pinata-vsock", verbose ? log::Level::kDebug : log::Level::kInfo);
  // Writes to a unix peer that went away must fail with EPIPE, not kill the process.
  ::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  if (auto s = make_dirs(config.dir, 0700); !s) {
    log::error("%s", s.error().message().c_str());
    return 1;
  }
  auto loop = EventLoop::create();
  if (!loop) {
    log::error("%s", loop.error().message().c_str());
    return 1;
  }
  // SIGINT/SIGTERM stop the loop so the sockets are unlinked on the way out.
  auto sigfd = stop_on_termination_signals(**loop);
  if (!sigfd) log::warn("%s", sigfd.error().message().c_str());

  vsock::Muxer muxer(**loop, config);
  if (auto s = muxer.start(); !s) {
    log::error("%s", s.error().message().c_str());
    return 1;
  }
  vsock::Device device(muxer);
  vhost::VhostUserBackend backend(**loop, device, "pinata-vsock");
  if (auto s = backend.listen(socket_path); !s) {
    log::error("%s", s.error().message().c_str());
    return 1;
  }
  log::info("guest CID %llu, %zu forwards, buf_alloc %u",
            static_cast<unsigned long long>(config.guest_cid), config.forwards.size(),
            config.buf_alloc);
  if (auto s = (*loop)->run(); !s) {
    log::error("%s", s.error().message().c_str());
    return 1;
  }
  return 0;
}
