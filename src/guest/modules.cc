#include "guest/modules.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <span>
#include <thread>
#include <utility>

#include "base/fd.h"
#include "base/io.h"
#include "base/log.h"
#include "guest/boot_clock.h"
#include "guest/modinfo.h"

namespace pinata::guest {
namespace {

using Clock = std::chrono::steady_clock;
constexpr unsigned kModuleInitCompressedFile = 4;  // MODULE_INIT_COMPRESSED_FILE
constexpr long kSlowModuleMs = 100;                // slower loads are named in the log

std::mutex g_bg_mutex;
std::condition_variable g_bg_cv;
bool g_bg_running = false;
bool g_soon_loaded = true;  // the `soon` group of the background loads is in

struct ModuleFile {
  std::string path;
  UniqueFd fd;
};

void load_one(const ModuleFile& m, ModuleLoadSummary& summary) {
  if (!m.fd) {
    summary.failed++;
    return;  // open failure already logged
  }
  unsigned flags = 0;
  if (m.path.ends_with(".xz") || m.path.ends_with(".zst") || m.path.ends_with(".gz")) {
    flags |= kModuleInitCompressedFile;
  }
  auto t0 = Clock::now();
  long rc = ::syscall(SYS_finit_module, m.fd.get(), "", flags);
  int err = errno;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  if (ms >= kSlowModuleMs)
    log::info("module %s took %lld ms", m.path.c_str(), static_cast<long long>(ms));
  if (rc == 0) {
    summary.loaded++;
  } else if (err == EEXIST) {
    summary.already++;
  } else if (err == ENODEV) {  // hardware-specific (e.g. crc32c-intel without SSE4.2)
    log::info("module %s: no matching hardware, skipped", m.path.c_str());
    summary.not_applicable++;
  } else {
    log::error("loading module %s: %s", m.path.c_str(), strerror(err));
    summary.failed++;
  }
}

std::vector<std::string> read_list(const std::string& list_path) {
  std::vector<std::string> paths;
  auto text = read_file(list_path);
  if (!text) {
    log::error("reading module list: %s", text.error().message().c_str());
    return paths;
  }
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    std::string line = text->substr(pos, end - pos);
    pos = end + 1;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    paths.push_back(line);
  }
  return paths;
}

// The module's metadata, read through a mapping (only the headers and .modinfo are touched).
ModInfo read_modinfo(const ModuleFile& m, bool* known) {
  *known = false;
  ModInfo info{module_name_from_path(m.path), {}};
  struct stat st;
  if (!m.fd || !m.path.ends_with(".ko") || ::fstat(m.fd.get(), &st) != 0 || st.st_size == 0) {
    return info;  // compressed or unreadable: its dependencies are unknown
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, m.fd.get(), 0);
  if (map == MAP_FAILED) return info;
  auto parsed = parse_modinfo(std::span<const uint8_t>(static_cast<const uint8_t*>(map), size));
  ::munmap(map, size);
  if (!parsed) {
    log::warn("module %s: %s", m.path.c_str(), parsed.error().message().c_str());
    return info;
  }
  if (parsed->name.empty()) parsed->name = info.name;
  *known = true;
  return *parsed;
}

}  // namespace

ModuleLoadSummary load_modules(const std::string& list_path, const std::vector<std::string>& first,
                               const std::vector<std::string>& soon) {
  auto start = Clock::now();
  std::vector<ModuleFile> files;
  for (std::string& path : read_list(list_path)) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) log::error("module %s: %s", path.c_str(), strerror(errno));
    files.push_back(ModuleFile{std::move(path), std::move(fd)});
  }

  std::vector<bool> now(files.size(), true);
  std::vector<bool> early(files.size(), false);
  if (!first.empty()) {
    std::vector<ModInfo> infos;
    std::vector<bool> known;
    for (const ModuleFile& m : files) {
      bool k;
      infos.push_back(read_modinfo(m, &k));
      known.push_back(k);
    }
    now = first_group(infos, known, first);
    if (!soon.empty()) early = first_group(infos, known, soon);
  }

  ModuleLoadSummary summary;
  std::vector<ModuleFile> later;
  size_t early_count = 0;
  for (size_t i = 0; i < files.size(); i++) {
    if (now[i]) load_one(files[i], summary);
  }
  // The background order: the `soon` group (with its dependencies, in list order), then the rest.
  for (size_t i = 0; i < files.size(); i++) {
    if (!now[i] && early[i]) {
      later.push_back(std::move(files[i]));
      early_count++;
    }
  }
  for (size_t i = 0; i < files.size(); i++) {
    if (!now[i] && !early[i]) later.push_back(std::move(files[i]));
  }
  summary.deferred = static_cast<int>(later.size());
  summary.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  if (!later.empty()) {
    {
      std::lock_guard lock(g_bg_mutex);
      g_bg_running = true;
      g_soon_loaded = early_count == 0;
    }
    std::thread([later = std::move(later), early_count]() {
      auto t0 = Clock::now();
      ModuleLoadSummary bg;
      for (size_t i = 0; i < later.size(); i++) {
        load_one(later[i], bg);
        if (i + 1 == early_count) {
          std::lock_guard lock(g_bg_mutex);
          g_soon_loaded = true;
          g_bg_cv.notify_all();
        }
      }
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
      step(
          "background modules: %d loaded, %d already present, %d without hardware, %d failed in "
          "%lld ms",
          bg.loaded, bg.already, bg.not_applicable, bg.failed, static_cast<long long>(ms));
      std::lock_guard lock(g_bg_mutex);
      g_bg_running = false;
      g_bg_cv.notify_all();
    }).detach();
  }
  return summary;
}

bool wait_for_soon_modules(std::chrono::milliseconds timeout) {
  std::unique_lock lock(g_bg_mutex);
  return g_bg_cv.wait_for(lock, timeout, [] { return !g_bg_running || g_soon_loaded; });
}

void wait_for_background_modules() {
  std::unique_lock lock(g_bg_mutex);
  g_bg_cv.wait(lock, [] { return !g_bg_running; });
}

}  // namespace pinata::guest
