// Boot and stop times of the canary guest on the runtime detected here
// (bench/run.sh's microVM section).
//
//   vm_bench --guest DIR [--runs N] [--work DIR]
//
// Each run starts the canary (serve mode) on a fresh 64 MiB ext4 volume,
// times Start -> the first 200 from /healthz (boot-to-ready) and the clean
// stop (ACPI power button -> the VMM exits), and checks the stop was clean.
// Prints one JSON object: {"runtime", "notes", "runs": [{"ready_ms",
// "stop_ms", "outcome"}, ...]}. Exits 1 when a run fails.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/canary/guest_cmdline.h"
#include "common/subprocess.h"
#include "runtime/detect.h"
#include "runtime/vmm.h"

namespace {

using kindling::SystemCommandRunner;
using nlohmann::ordered_json;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;
namespace vmm = kindling::vmm;

int Fail(const std::string& message) {
  std::fprintf(stderr, "vm_bench: %s\n", message.c_str());
  return 1;
}

long long MillisSince(SteadyClock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path guest;
  std::filesystem::path work;
  int runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--guest") {
      guest = argv[i + 1];
    } else if (flag == "--work") {
      work = argv[i + 1];
    } else if (flag == "--runs") {
      runs = std::atoi(argv[i + 1]);
    } else {
      return Fail("unknown flag " + flag);
    }
  }
  if (guest.empty() || runs < 1) return Fail("usage: vm_bench --guest DIR [--runs N] [--work DIR]");
  const auto kernel = guest / "vmlinux";
  const auto initramfs = guest / "initramfs.cpio.gz";
  if (!std::filesystem::exists(kernel) || !std::filesystem::exists(initramfs))
    return Fail("no guest in " + guest.string() + " (build the guest_image target)");
  bool remove_work = false;
  if (work.empty()) {
    std::string pattern = "/tmp/kindling-vm-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return Fail("mkdtemp failed");
    work = pattern;
    remove_work = true;
  }
  std::filesystem::create_directories(work);

  auto detection = vmm::DetectRuntime(
      SystemCommandRunner(),
      {.skip_cloud_hypervisor = true, .probe_kernel = kernel, .scratch_dir = work});
  if (!detection) return Fail(detection.error().message());
  auto made = vmm::NewVmm(*detection, /*die_with_parent_thread=*/true);
  if (!made) return Fail(made.error().message());
  vmm::Vmm& runtime = **made;

  ordered_json out = {{"runtime", vmm::RuntimeName(detection->runtime)},
                      {"notes", detection->notes},
                      {"runs", ordered_json::array()}};
  int status = 0;
  for (int run = 1; run <= runs && status == 0; ++run) {
    const auto image = work / ("volume-" + std::to_string(run) + ".img");
    {
      std::FILE* f = std::fopen(image.c_str(), "w");
      if (f == nullptr) return Fail("cannot create " + image.string());
      std::fclose(f);
      std::filesystem::resize_file(image, 64 << 20);
    }
    auto mkfs = SystemCommandRunner().Run(
        {.args = {"/usr/sbin/mkfs.ext4", "-q", "-F", "-E", "nodiscard", image.string()}});
    if (!mkfs || mkfs->exit_status != 0) return Fail("mkfs.ext4 failed");
    const std::string name = "bench-" + std::to_string(run);
    const vmm::VmSpec spec{.name = name,
                           .kernel = kernel,
                           .initramfs = initramfs,
                           .cmdline = kindling::canary::GuestKernelCmdline({}),
                           .volume_image = image,
                           .console_log = work / (name + ".console.log"),
                           .runtime_dir = work / name};
    const auto start = SteadyClock::now();
    auto vm = runtime.Start(spec);
    if (!vm) return Fail(vm.error().message());
    if (auto ready = (*vm)->WaitReady(std::chrono::seconds(120)); !ready)
      return Fail(ready.error().message());
    const long long ready_ms = MillisSince(start);
    auto stopped = (*vm)->Stop(std::chrono::seconds(30));
    if (!stopped) return Fail(stopped.error().message());
    const bool clean = stopped->outcome == vmm::StopOutcome::kPoweredOff && stopped->exit.clean();
    out["runs"].push_back({{"ready_ms", ready_ms},
                           {"stop_ms", stopped->elapsed.count()},
                           {"outcome", vmm::StopOutcomeName(stopped->outcome)},
                           {"exit", vmm::DescribeExit(stopped->exit)}});
    if (!clean) status = 1;
    std::filesystem::remove(image);
  }
  std::printf("%s\n", out.dump().c_str());
  if (remove_work) {
    std::error_code ec;
    std::filesystem::remove_all(work, ec);
  }
  return status;
}
