// A minimal QMP (QEMU Machine Protocol) client: enough to ask for an ACPI power-down.
#pragma once

#include <string>

#include "base/result.h"

namespace pinata {

// Connects to the QMP socket, negotiates capabilities and runs one command (e.g.
// "system_powerdown"). Succeeds when QEMU answers {"return": ...}.
Status qmp_execute(const std::string& socket_path, const std::string& command);

}  // namespace pinata
