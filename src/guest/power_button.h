// The ACPI power button (QEMU monitor "system_powerdown") as an evdev input device.
#pragma once

namespace pinata::guest {

// Watches every input device named "Power Button" on a detached thread; KEY_POWER pressed
// requests a shutdown. Logs a note if there is none (needs the button and evdev drivers).
void start_power_button_watch();

}  // namespace pinata::guest
