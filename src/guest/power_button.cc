#include "guest/power_button.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "base/io.h"
#include "base/log.h"
#include "guest/cmdline.h"
#include "guest/shutdown.h"

namespace pinata::guest {
namespace {

std::vector<UniqueFd> open_power_buttons() {
  std::vector<UniqueFd> fds;
  DIR* dir = ::opendir("/sys/class/input");
  if (!dir) return fds;
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (!name.starts_with("event")) continue;
    auto dev_name = read_file("/sys/class/input/" + name + "/device/name", 256);
    if (!dev_name || strip_whitespace(*dev_name) != "Power Button") continue;
    UniqueFd fd(::open(("/dev/input/" + name).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      log::warn("power button: open /dev/input/%s: %s", name.c_str(), strerror(errno));
      continue;
    }
    log::info("power button: watching /dev/input/%s", name.c_str());
    fds.push_back(std::move(fd));
  }
  ::closedir(dir);
  return fds;
}

void watch(std::vector<UniqueFd> fds) {
  std::vector<struct pollfd> pfds;
  for (const UniqueFd& fd : fds) pfds.push_back({fd.get(), POLLIN, 0});
  for (;;) {
    int rc = ::poll(pfds.data(), pfds.size(), -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (auto& p : pfds) {
      if (!(p.revents & POLLIN)) continue;
      struct input_event ev[16];
      ssize_t n = ::read(p.fd, ev, sizeof ev);
      if (n <= 0) {
        p.fd = -1;  // device gone
        continue;
      }
      for (size_t i = 0; i < static_cast<size_t>(n) / sizeof ev[0]; i++) {
        if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1) {
          log::info("power button pressed");
          request_shutdown("ACPI power button");
        }
      }
    }
  }
}

}  // namespace

void start_power_button_watch() {
  std::thread([]() {
    // The button driver may register its input device a little after boot.
    for (int attempt = 0; attempt < 10; attempt++) {
      auto fds = open_power_buttons();
      if (!fds.empty()) return watch(std::move(fds));
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    log::warn(
        "power button: no \"Power Button\" input device (button/evdev drivers missing?); "
        "ACPI power-off requests will be ignored");
  }).detach();
}

}  // namespace pinata::guest
