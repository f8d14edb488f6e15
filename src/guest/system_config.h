// Host name and sysctls of the guest.
#pragma once

#include <string>

#include "base/result.h"

namespace pinata::guest {

// sethostname + /etc/hostname + /etc/hosts.
Status apply_hostname(const std::string& hostname);

// Writes `value` to /proc/sys/<key with '.' as '/'>.
Status set_sysctl(const std::string& key, const std::string& value);

}  // namespace pinata::guest
