// pinata-blk: the vhost-user-blk backend over a raw or qcow2 image (docs/protocols/virtio-blk.md).
//
//   pinata-blk --socket PATH --image FILE [--format raw|qcow2] [--read-only] [--queues N]
//              [--serial ID] [--compact-idle SECONDS] [--control PATH] [--verbose]
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/signalfd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "base/event_loop.h"
#include "base/log.h"
#include "blk/control.h"
#include "blk/device.h"
#include "disk/disk.h"
#include "disk/qcow2_disk.h"
#include "vhost/backend.h"

using namespace pinata;

namespace {

constexpr uint32_t kMaxQueues = 64;

constexpr const char* kUsage =
    "usage: pinata-blk --socket PATH --image FILE [--format raw|qcow2] [--read-only]\n"
    "                  [--queues N] [--serial ID] [--compact-idle SECONDS] [--control PATH]\n"
    "                  [--verbose]\n"
    "  --socket PATH   vhost-user socket to listen on (the hypervisor connects)\n"
    "  --image FILE    disk image (raw or qcow2)\n"
    "  --format F      raw or qcow2 (default: probed from the file's first bytes)\n"
    "  --read-only     open the image read-only and offer a read-only disk\n"
    "  --queues N      request queues offered, 1-64 (default 2; the hypervisor may use fewer)\n"
    "  --serial ID     GET_ID answer, 1-20 printable ASCII characters\n"
    "                  (default: pinata- and a hash of the image's real path)\n"
    "  --compact-idle S  qcow2: after discards, compact the image online once the disk has\n"
    "                  been idle S seconds and >= 64 MiB and >= 10% of the file would be given\n"
    "                  back (default 10; 0 turns online compaction off)\n"
    "  --control PATH  unix socket for `compact` requests (pinata disk compact while running)\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "pinata-blk: %s\n%s", message.c_str(), kUsage);
  return 2;
}

bool parse_u32(std::string_view s, uint32_t min, uint32_t max, uint32_t& out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v < min || v > max) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

bool valid_serial(std::string_view s) {
  if (s.empty() || s.size() > blk::kIdBytes) return false;
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return path;
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path, image, control_path;
  std::optional<disk::ImageFormat> format;
  bool read_only = false, verbose = false;
  uint32_t queues = 2;
  uint32_t compact_idle = 10;
  std::string serial;
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--verbose" || arg == "-v") {
      verbose = true;
    } else if (arg == "--read-only") {
      read_only = true;
    } else if (arg == "--socket" || arg == "--image" || arg == "--format" || arg == "--queues" ||
               arg == "--serial" || arg == "--compact-idle" || arg == "--control") {
      if (i + 1 >= argc) return usage_error(std::string(arg) + " needs a value");
      std::string_view v = argv[++i];
      if (arg == "--socket") {
        socket_path = v;
      } else if (arg == "--image") {
        image = v;
      } else if (arg == "--format") {
        if (v == "raw") {
          format = disk::ImageFormat::kRaw;
        } else if (v == "qcow2") {
          format = disk::ImageFormat::kQcow2;
        } else {
          return usage_error("--format '" + std::string(v) + "': expected raw or qcow2");
        }
      } else if (arg == "--control") {
        control_path = v;
      } else if (arg == "--compact-idle") {
        if (!parse_u32(v, 0, 86400, compact_idle)) {
          return usage_error("--compact-idle '" + std::string(v) + "': expected seconds from 0 to 86400");
        }
      } else if (arg == "--queues") {
        if (!parse_u32(v, 1, kMaxQueues, queues)) {
          return usage_error("--queues '" + std::string(v) + "': expected a number from 1 to 64");
        }
      } else {
        if (!valid_serial(v)) {
          return usage_error("--serial '" + std::string(v) +
                             "': expected 1-20 printable ASCII characters");
        }
        serial = v;
      }
    } else {
      return usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (socket_path.empty()) return usage_error("--socket is required");
  if (image.empty()) return usage_error("--image is required");

  log::init("pinata-blk", verbose ? log::Level::kDebug : log::Level::kInfo);
  ::signal(SIGPIPE, SIG_IGN);

  // One backend per image: a second pinata-blk on the same file is refused (advisory flock on
  // a separate descriptor; shared for read-only use).
  UniqueFd lock_fd(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
  if (lock_fd && ::flock(lock_fd.get(), (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    log::error("%s is locked by another process (another pinata-blk serving it?): %s",
               image.c_str(), std::strerror(errno));
    return 1;
  }

  disk::OpenOptions open_options;
  open_options.access = read_only ? disk::Access::kReadOnly : disk::Access::kReadWrite;
  open_options.format = format;
  auto opened = disk::open_disk(image, open_options);
  if (!opened) {
    log::error("cannot open image %s: %s", image.c_str(), opened.error().message().c_str());
    return 1;
  }
  std::unique_ptr<disk::Disk> disk = std::move(*opened);

  blk::DeviceOptions options;
  options.num_queues = queues;
  options.read_only = read_only;
  options.serial = serial.empty() ? blk::make_serial(real_path(image)) : serial;
  if (auto* q = dynamic_cast<disk::Qcow2Disk*>(disk.get())) {
    options.discard_granularity = uint32_t{1} << q->header().cluster_bits;
  }

  auto loop = EventLoop::create();
  if (!loop) {
    log::error("%s", loop.error().message().c_str());
    return 1;
  }
  // SIGINT/SIGTERM stop the loop; the image is then flushed and closed (qcow2: marked clean).
  auto sigfd = stop_on_termination_signals(**loop);
  if (!sigfd) log::warn("%s", sigfd.error().message().c_str());

  int rc = 0;
  {
    std::unique_ptr<blk::Compactor> compactor;
    std::string no_compactor;
    if (read_only) {
      no_compactor = "the image is open read-only";
    } else if (disk->format() != disk::ImageFormat::kQcow2) {
      no_compactor = "a raw image has nothing to compact (discards punch holes directly)";
    } else {
      blk::CompactPolicy policy;
      policy.automatic = compact_idle > 0;
      policy.idle = std::chrono::seconds(compact_idle);
      compactor = std::make_unique<blk::Compactor>(*disk, policy);
    }
    std::unique_ptr<blk::ControlServer> control;
    if (!control_path.empty()) {
      auto server = blk::ControlServer::listen(**loop, control_path, compactor.get(), no_compactor);
      if (!server) {
        log::error("control socket %s: %s", control_path.c_str(), server.error().message().c_str());
        return 1;
      }
      control = std::move(*server);
    }
    blk::Device device(*disk, options, compactor.get());
    vhost::VhostUserBackend backend(**loop, device, "pinata-blk");
    if (auto s = backend.listen(socket_path); !s) {
      log::error("%s", s.error().message().c_str());
      return 1;
    }
    log::info("%s image %s: %llu sectors, %s, %u queue(s), serial %s, discard granularity %u",
              disk::image_format_name(disk->format()), image.c_str(),
              static_cast<unsigned long long>(device.limits().capacity_sectors),
              device.limits().read_only ? "read-only" : "read-write", queues,
              options.serial.c_str(), options.discard_granularity);
    if (auto s = (*loop)->run(); !s) {
      log::error("%s", s.error().message().c_str());
      rc = 1;
    }
    backend.disconnect();  // stops the queues and flushes through Device::reset()
  }
  if (auto s = disk->close(); !s) {
    log::error("closing %s: %s", image.c_str(), s.error().message().c_str());
    return 1;
  }
  log::info("image %s closed", image.c_str());
  return rc;
}
