#include "guest/system_config.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/io.h"
#include "guest/cmdline.h"

namespace pinata::guest {

Status apply_hostname(const std::string& hostname) {
  if (::sethostname(hostname.c_str(), hostname.size()) != 0) return fail_errno("sethostname");
  TRY(write_file_atomic("/etc/hostname", hostname + "\n"));
  TRY(write_file_atomic("/etc/hosts", hosts_file(hostname)));
  return {};
}

Status set_sysctl(const std::string& key, const std::string& value) {
  std::string path = "/proc/sys/" + key;
  for (size_t i = 10; i < path.size(); i++) {
    if (path[i] == '.') path[i] = '/';
  }
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return fail_errno("sysctl " + key);
  auto st = write_all(fd.get(), value);
  if (!st) return fail(st.error().context("sysctl " + key));
  return {};
}

}  // namespace pinata::guest
