// Scheduled verification of the cluster's backups: the leader queues verify
// operations (reconcile/operation_runner.h: the worker fetches and
// authenticates every chunk, records what it found on the backup row as
// verified_at/verify_state, and damaged chunks in the store, whence the
// damage sync marks every backup that uses them and the next backup of the
// volume heals them).
//
// Rounds. A round starts when `every` has passed since the newest one
// started (by `now`), or there is none. Its `backup.verify_round.started`
// audit event (user_id NULL) records it: the event's id is the round's id,
// its created_at (the database's clock) the round's start, which
// verified_at is compared with, details.scheduled_unix_ms the starting
// leader's `now`, details.planned how many backups the round verifies
// (every verifiable backup, db/backup_verification.h, or `sample_percent`
// of them rounded up). Everything else is read from the database at each
// pass too, so a restarted or new leader continues the round rather than
// starting another.
//
// Each pass queues verify operations (VolumeService::QueueVerify, as the
// on-demand route does, with request_metadata.verify_round = the round's id
// and the audit event volume.verify.queue) for verifiable backups not
// verified since the round started, least recently verified first (never
// verified ones first, then the oldest): so a sample rotates, and over
// successive rounds every backup is verified. Limits: the round's operations
// in all stay within details.planned; at most `max_active` verify operations
// (whoever queued them) are pending or running cluster-wide; a volume takes
// one operation at a time (a busy volume's backup waits for a later pass);
// and a backup whose verify operation of this round failed (an
// infrastructure error: a verify that finds damage succeeds) is not queued
// again in that round.
//
// Thread-safety: a free function. The round's start is serialized across
// processes (an advisory lock); the rest assumes one caller at a time (the
// leader): two concurrent passes may exceed max_active by their overlap.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "control/volume_service.h"
#include "db/database.h"
#include "db/operations.h"

namespace kindling::control {

inline constexpr char kVerifyRoundStarted[] = "backup.verify_round.started";

// "all" -> 100; "N%" (1 <= N <= 100) -> N. kInvalidArgument otherwise.
[[nodiscard]] Result<int> ParseVerifySample(std::string_view text);
// The reverse: "all" or "N%".
std::string VerifySampleName(int percent);

struct BackupVerifySchedule {
  std::chrono::seconds every{7 * 24 * 3600};  // 0: no rounds (off)
  int sample_percent = 100;                   // 1..100 (100: every backup)
  int max_active = 2;                         // verify operations in flight, cluster-wide
  // Wall clock compared with the audit trail's timestamps (tests inject one).
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
};

struct VerifyPass {
  std::string round_id{};
  db::Timestamp round_started_at{};
  bool round_started = false;  // this pass started the round
  std::int64_t planned = 0;
  std::int64_t queued_before = 0;  // the round's operations before this pass
  std::vector<db::Operation> queued{};
  // Candidates QueueVerify refused this pass: "backup <id>: <why>".
  std::vector<std::string> refused{};

  // Every operation the round plans is queued (some may still run).
  bool complete() const {
    return queued_before + static_cast<std::int64_t>(queued.size()) >= planned;
  }
};

// One pass: starts a round when due, then queues what the limits allow.
// nullopt when `every` is 0. The database's errors otherwise (a refused
// candidate is not an error: it is listed in `refused`).
[[nodiscard]] Result<std::optional<VerifyPass>> QueueScheduledVerifications(
    db::Database& db, VolumeService& volumes, const BackupVerifySchedule& schedule);

}  // namespace kindling::control
