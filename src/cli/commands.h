// One function per command. Each validates its flags, calls the engine,
// prints its result (human text, or one JSON line with --json) and returns
// the exit code; errors are reported through ReportError.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "cli/flags.h"
#include "cli/progress_reporter.h"
#include "common/result.h"

namespace kindling::cli {

int RunStoreInit(const StoreInitFlags& flags, const CommonFlags& common);
int RunStoreGc(const StoreGcFlags& flags, const CommonFlags& common);
int RunBackupCreate(const BackupCreateFlags& flags, const CommonFlags& common);
int RunBackupList(const BackupListFlags& flags, const CommonFlags& common);
int RunBackupRestore(const BackupRestoreFlags& flags, const CommonFlags& common);
int RunBackupVerify(const BackupVerifyFlags& flags, const CommonFlags& common);
int RunBackupForget(const BackupForgetFlags& flags, const CommonFlags& common);
int RunBackupDelete(const BackupDeleteFlags& flags, const CommonFlags& common);
int RunImageDigest(const ImageDigestFlags& flags, const CommonFlags& common);
int RunDemo(const DemoFlags& flags, const CommonFlags& common);
int RunVersion(const CommonFlags& common);

// Shared by the commands.

// The progress display the flags ask for, on stderr.
std::unique_ptr<ProgressReporter> MakeStderrProgress(const CommonFlags& common);

// ReportError, except that after SIGINT/SIGTERM any failure counts as the
// cancellation it most likely is (exit 130).
int FailCommand(const Error& error);

// Milliseconds since `start` on the steady clock.
std::uint64_t MillisecondsSince(std::chrono::steady_clock::time_point start);

// zstd levels the engine accepts.
[[nodiscard]] Status ValidateCompressionLevel(int level);

}  // namespace kindling::cli
