#include "runtime/canary/guest_cmdline.h"

namespace kindling::canary {

std::string GuestKernelCmdline(const GuestBoot& boot) {
  // quiet: every console byte is an emulated UART write. cryptomgr.notests
  // skips the crypto self-tests (~1 s under TCG). pci=off and one UART: the
  // microvm machine has no PCI bus and one serial port.
  std::string cmdline = "quiet cryptomgr.notests pci=off 8250.nr_uarts=1";
  cmdline += " kindling.mount=" + boot.mount;
  cmdline += boot.mode == GuestMode::kVerify ? " kindling.mode=verify" : " kindling.mode=serve";
  cmdline += " kindling.port=" + std::to_string(boot.port);
  if (boot.ignore_powerdown) cmdline += " kindling.powerdown=ignore";
  return cmdline;
}

}  // namespace kindling::canary
