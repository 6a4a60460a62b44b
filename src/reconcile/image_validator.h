// ImageValidator: checks a restored volume image from inside a guest before
// it replaces the volume's image (restore and move with `validate`). It
// boots the verify mode of the guest image the project runs (its current
// deployment's image, the canary when it has none) on the image, waits for
// the guest to power off, and reads the report it printed on its console
// (canary::FindVerifyReport). The image is attached like a workload's
// volume (read-write, locked: a VM still holding it is refused).
//
// Validation passes when the guest reported and no record is damaged. The
// caller stores the report as the operation's result.validation.
//
// Files: <state_dir>/vms/verify-<run id>/ (console.log, the VMM's socket
// and log); removed when the validation passed, kept for the operator
// otherwise.
//
// Thread-safety: thread-safe (each call boots its own VM).
#pragma once

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "db/database.h"
#include "db/volumes.h"
#include "reconcile/workload_reconciler.h"
#include "runtime/vmm.h"

namespace kindling::reconcile {

struct ImageValidation {
  std::string image{};  // the guest image whose verify mode ran
  std::uint64_t records = 0;
  std::uint64_t intact = 0;
  std::vector<std::uint64_t> damaged{};
  std::chrono::milliseconds took{0};
  // A report was printed and names no damaged record.
  bool passed() const { return damaged.empty() && records == intact; }
  // {"records","intact","damaged","image","took_ms"}
  nlohmann::json ToJson() const;
};

struct ImageValidatorOptions {
  std::filesystem::path state_dir{};  // REQUIRED: vms/ lives here
  GuestImageCatalogue images{};
  // Boot, check and power-off together.
  std::chrono::milliseconds timeout{120'000};
  std::uint32_t memory_mib = 128;
};

class ImageValidator {
 public:
  // REQUIRES: `db` and `vmm` outlive the validator.
  ImageValidator(db::Database& db, vmm::Vmm& vmm, ImageValidatorOptions options);

  // Boots the verify mode on `image` (the staged copy of `volume`'s image).
  // Errors: kFailedPrecondition when the project's image has no verify mode
  // or is not on this worker, kTransient when the guest did not power off
  // within the timeout (killed) or printed no report
  // (the console's tail in the message), kIo when the VM cannot start.
  [[nodiscard]] Result<ImageValidation> Validate(const std::filesystem::path& image,
                                                 const db::Volume& volume);

 private:
  db::Database& db_;
  vmm::Vmm& vmm_;
  const ImageValidatorOptions options_;
};

}  // namespace kindling::reconcile
