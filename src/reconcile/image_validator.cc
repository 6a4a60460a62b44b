#include "reconcile/image_validator.h"

#include <spdlog/spdlog.h>

#include "common/ids.h"
#include "db/workloads.h"
#include "runtime/canary/verify_report.h"

namespace kindling::reconcile {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

}  // namespace

nlohmann::json ImageValidation::ToJson() const {
  return {{"records", records},
          {"intact", intact},
          {"damaged", damaged},
          {"image", image},
          {"took_ms", took.count()}};
}

ImageValidator::ImageValidator(db::Database& db, vmm::Vmm& vmm, ImageValidatorOptions options)
    : db_(db), vmm_(vmm), options_(std::move(options)) {}

Result<ImageValidation> ImageValidator::Validate(const std::filesystem::path& image,
                                                 const db::Volume& volume) {
  // The project's own image when it runs one, else the canary.
  KINDLING_ASSIGN_OR_RETURN(std::optional<db::Deployment> current, db_.Transact([&](db::Tx& tx) {
    return db::FindCurrentDeployment(tx, volume.project_id);
  }));
  const std::string name = current ? current->image : std::string(kCanaryImage);
  const auto found = options_.images.find(name);
  if (found == options_.images.end())
    return FailedPrecondition("cannot validate: this worker has no guest image '" + name + "'");
  const GuestImage& guest = found->second;
  if (guest.verify_cmdline.empty())
    return FailedPrecondition("cannot validate: guest image '" + name + "' has no verify mode");

  // Short: the VMM's control socket lives here (unix socket paths are short).
  const std::string run_id = "verify-" + NewUuidV4().substr(0, 8);
  const std::filesystem::path dir = options_.state_dir / "vms" / run_id;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return IoError("create " + dir.string() + ": " + ec.message());
  const vmm::VmSpec spec{.name = "kindling-" + run_id,
                         .kernel = guest.kernel,
                         .initramfs = guest.initramfs,
                         .cmdline = GuestCmdline(guest, true, volume.mount_path),
                         .memory_mib = options_.memory_mib,
                         .vcpus = 1,
                         .volume_image = image,
                         .host_port = 0,
                         .guest_port = guest.guest_port,
                         .console_log = dir / "console.log",
                         .runtime_dir = dir};
  const auto start = Clock::now();
  KINDLING_ASSIGN_OR_RETURN(std::unique_ptr<vmm::VmInstance> vm, vmm_.Start(spec));
  const std::optional<vmm::VmExit> exit = vm->WaitExit(options_.timeout);
  if (!exit) {
    vm->Kill();
    return TransientError("the verify boot of '" + name + "' did not power off within " +
                          std::to_string(options_.timeout.count() / 1000) +
                          " s (killed); console in " + spec.console_log.string() + ":\n" +
                          vmm::FileTail(spec.console_log, 1000));
  }
  const std::string console = vmm::FileTail(spec.console_log, 1 << 20);
  auto report = canary::FindVerifyReport(console);
  if (!report)
    return FailedPrecondition("the verify boot of '" + name + "' printed no report (" +
                              vmm::DescribeExit(*exit) + "); console in " +
                              spec.console_log.string() + ":\n" +
                              vmm::FileTail(spec.console_log, 1000));
  ImageValidation validation{
      .image = name,
      .records = report->records,
      .intact = report->intact,
      .damaged = report->damaged,
      .took = std::chrono::duration_cast<milliseconds>(Clock::now() - start)};
  if (validation.passed()) {
    std::filesystem::remove_all(dir, ec);
  } else {
    spdlog::warn("worker: validation of volume {}: {} of {} records intact; console kept in {}",
                 volume.id, validation.intact, validation.records, spec.console_log.string());
  }
  return validation;
}

}  // namespace kindling::reconcile
