// Boot and stop times of the canary guest on the runtime detected here
// (bench/run.sh's microVM section).
//
//   vm_bench --guest DIR [--runs N] [--work DIR] [--pause-backups N]
//
// Each run starts the canary (serve mode) on a fresh 64 MiB ext4 volume,
// times Start -> the first 200 from /healthz (boot-to-ready) and the clean
// stop (ACPI power button -> the VMM exits), and checks the stop was clean.
// Prints one JSON object: {"runtime", "notes", "runs": [{"ready_ms",
// "stop_ms", "outcome"}, ...], "pause": {...}}. Exits 1 when a run fails.
//
// --pause-backups N (the work directory on a filesystem that clones files:
// XFS with reflink, btrfs): backs up the volume of a running canary N times
// while a client keeps writing records to it. Each backup pauses the VM
// (QMP stop), clones the image, resumes it (cont) and backs up the clone
// with changed blocks; "pause" holds each pause's length (from the pause
// request to the resume's answer), its p50 and max, and each backup's read
// path and bytes read. Then the last backup is restored to a new image, a
// canary boots on it and must find every record it holds intact
// (GET /records/verify).
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/subprocess.h"
#include "crypto/aead.h"
#include "engine/backup.h"
#include "engine/repository.h"
#include "engine/restore.h"
#include "runtime/canary/guest_cmdline.h"
#include "runtime/canary/verify_report.h"
#include "runtime/detect.h"
#include "runtime/vmm.h"
#include "storage/local_store.h"

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

bool MakeVolume(const std::filesystem::path& image) {
  std::FILE* f = std::fopen(image.c_str(), "w");
  if (f == nullptr) return false;
  std::fclose(f);
  std::filesystem::resize_file(image, 64 << 20);
  auto mkfs = SystemCommandRunner().Run(
      {.args = {"/usr/sbin/mkfs.ext4", "-q", "-F", "-E", "nodiscard", image.string()}});
  return mkfs && mkfs->exit_status == 0;
}

vmm::VmSpec CanarySpec(const std::filesystem::path& guest, const std::filesystem::path& work,
                       const std::string& name, const std::filesystem::path& image) {
  return vmm::VmSpec{.name = name,
                     .kernel = guest / "vmlinux",
                     .initramfs = guest / "initramfs.cpio.gz",
                     .cmdline = kindling::canary::GuestKernelCmdline({}),
                     .volume_image = image,
                     .console_log = work / (name + ".console.log"),
                     .runtime_dir = work / name};
}

// See --pause-backups above. Returns the "pause" object, or an error.
kindling::Result<ordered_json> PauseBackups(vmm::Vmm& runtime, const std::filesystem::path& guest,
                                            const std::filesystem::path& work, int backups) {
  namespace engine = kindling::engine;
  using kindling::Status;
  const auto image = work / "pause-volume.img";
  if (!MakeVolume(image)) return kindling::IoError("cannot make " + image.string());
  auto vm = runtime.Start(CanarySpec(guest, work, "pause", image));
  if (!vm) return std::unexpected(vm.error());
  KINDLING_RETURN_IF_ERROR((*vm)->WaitReady(std::chrono::seconds(120)));

  auto local = kindling::storage::LocalStore::Open(work / "pause-store");
  if (!local) return std::unexpected(local.error());
  KINDLING_ASSIGN_OR_RETURN(engine::Repository repository,
                            engine::Repository::Init(**local, kindling::crypto::RandomKey()));

  // A client writing records all along: the workload keeps running.
  std::atomic<bool> stop{false};
  std::atomic<long long> written{0};
  const std::uint16_t port = (*vm)->host_port();
  std::thread writer([&] {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(2);
    client.set_read_timeout(5);
    for (long long n = 0; !stop.load(); ++n) {
      auto res = client.Post("/records", "record " + std::to_string(n), "text/plain");
      if (res && res->status == 201) written.fetch_add(1);
    }
  });

  ordered_json runs = ordered_json::array();
  std::vector<long long> pauses;
  std::string last_backup;
  Status failed = kindling::OkStatus();
  for (int i = 0; i < backups && failed; ++i) {
    long long pause_ms = -1;
    engine::BackupReport report;
    engine::BackupOptions options;
    options.volume_id = "pause";
    options.image = image;
    options.snapshot = engine::Use::kOn;
    options.changed_blocks = engine::Use::kAuto;
    options.report = &report;
    options.around_snapshot = [&](const std::function<Status()>& take) -> Status {
      const auto start = SteadyClock::now();
      KINDLING_RETURN_IF_ERROR((*vm)->Pause());
      Status taken = take();
      Status resumed = (*vm)->Resume();
      pause_ms = MillisSince(start);
      if (!taken) return taken;
      return resumed;
    };
    auto manifest = engine::CreateBackup(repository, options);
    if (!manifest) {
      failed = std::unexpected(manifest.error());
      break;
    }
    last_backup = manifest->backup_id;
    pauses.push_back(pause_ms);
    runs.push_back({{"pause_ms", pause_ms},
                    {"snapshot_ms", report.snapshot_ms},
                    {"duration_ms", manifest->stats.duration_ms},
                    {"read_path", report.read_path},
                    {"bytes_read", report.bytes_read}});
    std::this_thread::sleep_for(milliseconds(200));  // the workload writes between backups
  }
  stop = true;
  writer.join();
  IgnoreError((*vm)->Stop(std::chrono::seconds(30)), "the backups are taken");
  if (!failed) return std::unexpected(failed.error());

  // The last backup, restored and booted: its records must all be intact.
  const auto restored = work / "pause-restored.img";
  KINDLING_ASSIGN_OR_RETURN(const kindling::repo::Manifest manifest,
                            repository.LoadManifest("pause", last_backup));
  engine::RestoreOptions restore;
  restore.destination = restored;
  KINDLING_RETURN_IF_ERROR(engine::RestoreBackup(repository, manifest, restore));
  auto check = runtime.Start(CanarySpec(guest, work, "pause-restored", restored));
  if (!check) return std::unexpected(check.error());
  KINDLING_RETURN_IF_ERROR((*check)->WaitReady(std::chrono::seconds(120)));
  httplib::Client client("127.0.0.1", (*check)->host_port());
  client.set_read_timeout(30);
  auto verify = client.Get("/records/verify");
  IgnoreError((*check)->Stop(std::chrono::seconds(30)), "verified");
  if (!verify || verify->status != 200)
    return kindling::IoError("GET /records/verify on the restored volume failed");
  KINDLING_ASSIGN_OR_RETURN(const kindling::canary::VerifyReport found,
                            kindling::canary::ParseVerifyReportJson(verify->body));
  if (!found.damaged.empty() || found.records == 0)
    return kindling::Corruption("the restored volume's records: " + verify->body);

  std::vector<long long> sorted = pauses;
  std::sort(sorted.begin(), sorted.end());
  return ordered_json{{"backups", backups},
                      {"records_written", written.load()},
                      {"restored_records", found.records},
                      {"restored_intact", found.intact},
                      {"pause_p50_ms", sorted[(sorted.size() - 1) / 2]},
                      {"pause_max_ms", sorted.back()},
                      {"runs", std::move(runs)}};
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path guest;
  std::filesystem::path work;
  int runs = 3;
  int pause_backups = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--guest") {
      guest = argv[i + 1];
    } else if (flag == "--work") {
      work = argv[i + 1];
    } else if (flag == "--runs") {
      runs = std::atoi(argv[i + 1]);
    } else if (flag == "--pause-backups") {
      pause_backups = std::atoi(argv[i + 1]);
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
  if (status == 0 && pause_backups > 0) {
    auto pause = PauseBackups(runtime, guest, work, pause_backups);
    if (pause) {
      out["pause"] = std::move(*pause);
    } else {
      out["pause"] = {{"error", pause.error().message()}};
      status = 1;
    }
  }
  std::printf("%s\n", out.dump().c_str());
  if (remove_work) {
    std::error_code ec;
    std::filesystem::remove_all(work, ec);
  }
  return status;
}
