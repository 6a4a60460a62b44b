// The kernel command line of the canary guest: the parameters guest/init
// reads (kindling.*) and the boot settings that keep the guest quick under
// an emulated CPU. The host side (drills, benchmarks, later the worker)
// builds it here so that it matches guest/init in one place.
#pragma once

#include <cstdint>
#include <string>

namespace kindling::canary {

enum class GuestMode : std::uint8_t {
  kServe,   // the HTTP server until power-down
  kVerify,  // check the records, print the result on the console, power off
};

struct GuestBoot {
  GuestMode mode = GuestMode::kServe;
  std::string mount = "/data";  // where /dev/vda is mounted
  std::uint16_t port = 8080;    // the canary's HTTP port in the guest
  // The guest ignores the ACPI power button (tests of the host's stop
  // timeout).
  bool ignore_powerdown = false;
};

// E.g. "quiet cryptomgr.notests pci=off 8250.nr_uarts=1 kindling.mount=/data
// kindling.mode=serve kindling.port=8080". REQUIRES: mount has no spaces.
std::string GuestKernelCmdline(const GuestBoot& boot);

}  // namespace kindling::canary
