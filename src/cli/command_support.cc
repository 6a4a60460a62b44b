// Helpers every command shares (declared in commands.h).
#include <unistd.h>

#include "cli/cancel.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"

namespace kindling::cli {

std::unique_ptr<ProgressReporter> MakeStderrProgress(const CommonFlags& common) {
  const ProgressMode mode = ParseProgressMode(common.progress).value_or(ProgressMode::kAuto);
  const auto style = ProgressReporter::StyleFor(mode, common.quiet, ::isatty(STDERR_FILENO) == 1);
  return std::make_unique<ProgressReporter>(style, stderr);
}

int FailCommand(const Error& error) {
  if (CancelRequested() && error.kind() != ErrorKind::kCancelled) {
    return ReportError(Error(ErrorKind::kCancelled, "cancelled (" + error.message() + ")"));
  }
  return ReportError(error);
}

std::uint64_t MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - start)
                                        .count());
}

Status ValidateCompressionLevel(int level) {
  // The engine's range (BackupOptions::zstd_level).
  if (level < 1 || level > 19)
    return InvalidArgument("--compression-level must be between 1 and 19, got " +
                           std::to_string(level));
  return OkStatus();
}

}  // namespace kindling::cli
