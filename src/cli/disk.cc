// pinata disk info | compact: the data disk (Docker.qcow2) seen through our qcow2 library.
//
// info works whether the VM runs or not (read-only open; while QEMU writes it the figures are
// a snapshot). compact needs the VM stopped: the image must have no other writer.
#include <cinttypes>
#include <unistd.h>

#include <cstdio>

#include "base/io.h"
#include "blk/control.h"
#include "cli/client.h"
#include "disk/disk.h"

namespace pinata::cli {
namespace {

std::string human(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

void print_info(const std::string& path, const disk::DiskInfo& i, bool json) {
  if (json) {
    std::printf(
        "{\"path\": \"%s\", \"format\": \"%s\", \"virtual_size\": %" PRIu64 ", \"file_size\": %" PRIu64
        ", \"allocated\": %" PRIu64 ", \"used\": %" PRIu64 ", \"reclaimable\": %" PRIu64
        ", \"cluster_size\": %u}\n",
        path.c_str(), disk::image_format_name(i.format), i.virtual_size, i.file_size,
        i.allocated_bytes, i.used_bytes, i.reclaimable_bytes, i.cluster_size);
    return;
  }
  std::printf("image:        %s (%s", path.c_str(), disk::image_format_name(i.format));
  if (i.version) std::printf(" v%u, %s clusters", i.version, human(i.cluster_size).c_str());
  std::printf(")\n");
  std::printf("virtual size: %s\n", human(i.virtual_size).c_str());
  std::printf("file size:    %s\n", human(i.file_size).c_str());
  std::printf("allocated:    %s (what the host file system holds)\n",
              human(i.allocated_bytes).c_str());
  std::printf("used:         %s (clusters in use)\n", human(i.used_bytes).c_str());
  std::printf("reclaimable:  %s (what `pinata disk compact` would give back)\n",
              human(i.reclaimable_bytes).c_str());
}

// `pinata disk compact` while the VM runs: pinata-blk has the image open, so it does the work
// (src/blk/control.h) while the guest keeps running.
int compact_online(const Paths& paths) {
  auto fd = unix_connect(paths.blk_control);
  if (!fd) {
    std::fprintf(stderr,
                 "pinata: the VM is running and pinata-blk does not answer on %s (%s); "
                 "run `pinata stop` first, then `pinata disk compact`\n",
                 paths.blk_control.c_str(), fd.error().message().c_str());
    return kExitFailure;
  }
  constexpr std::string_view kRequest = "compact\n";
  if (auto st = write_all(fd->get(), kRequest); !st) {
    std::fprintf(stderr, "pinata: asking pinata-blk to compact: %s\n", st.error().message().c_str());
    return kExitFailure;
  }
  std::string reply;
  char buf[256];
  ssize_t n;
  while (reply.size() < 4096 && (n = ::read(fd->get(), buf, sizeof buf)) > 0) reply.append(buf, static_cast<size_t>(n));
  auto outcome = blk::parse_control_reply(reply);
  if (!outcome) {
    std::fprintf(stderr, "pinata: compacting %s: %s\n", paths.disk.c_str(),
                 reply.empty() ? "pinata-blk closed the connection without an answer"
                               : outcome.error().message().c_str());
    return kExitFailure;
  }
  std::printf("compacted %s while running: file %s -> %s\n", paths.disk.c_str(),
              human(outcome->file_before).c_str(), human(outcome->file_after).c_str());
  return kExitOk;
}

}  // namespace

int cmd_disk(const Paths& paths, const std::vector<std::string>& args) {
  if (args.empty()) return usage_error("disk needs a subcommand: info [--json] | compact");
  const std::string& sub = args[0];
  bool json = false;
  for (size_t i = 1; i < args.size(); i++) {
    if (sub == "info" && args[i] == "--json") {
      json = true;
    } else {
      return usage_error("disk " + sub + ": unknown option '" + args[i] + "'");
    }
  }
  if (sub != "info" && sub != "compact") {
    return usage_error("disk: unknown subcommand '" + sub + "' (info, compact)");
  }
  if (::access(paths.disk.c_str(), F_OK) != 0) {
    std::fprintf(stderr, "pinata: no data disk at %s yet (it is made by the first start)\n",
                 paths.disk.c_str());
    return kExitFailure;
  }
  bool running = probe_daemon(paths).running;
  if (sub == "compact" && running) return compact_online(paths);
  disk::OpenOptions options;
  options.access = sub == "info" ? disk::Access::kReadOnly : disk::Access::kReadWrite;
  options.backing = disk::Backing::kRefuse;
  auto opened = disk::open_disk(paths.disk, options);
  if (!opened) {
    std::fprintf(stderr, "pinata: %s\n", opened.error().message().c_str());
    return kExitFailure;
  }
  disk::Disk& d = **opened;
  if (sub == "compact") {
    auto before = d.info();
    if (auto st = d.compact(); !st) {
      std::fprintf(stderr, "pinata: compacting %s: %s\n", paths.disk.c_str(),
                   st.error().message().c_str());
      return kExitFailure;
    }
    if (auto st = d.close(); !st) {
      std::fprintf(stderr, "pinata: %s\n", st.error().message().c_str());
      return kExitFailure;
    }
    auto after = d.info();
    if (before && after) {
      std::printf("compacted %s: file %s -> %s\n", paths.disk.c_str(),
                  human(before->file_size).c_str(), human(after->file_size).c_str());
    }
    return kExitOk;
  }
  auto info = d.info();
  if (!info) {
    std::fprintf(stderr, "pinata: %s\n", info.error().message().c_str());
    return kExitFailure;
  }
  print_info(paths.disk, *info, json);
  if (running && !json) std::printf("(the VM is running: a snapshot of an image in use)\n");
  return kExitOk;
}

}  // namespace pinata::cli
