// The queries behind scheduled backup verification
// (control/backup_verification.h): which backups a round may verify, in
// which order, and how many verify operations are in flight.
//
// A backup is verifiable when it succeeded or is damaged, names its store,
// and its project has a live volume (verify operations hang on the project's
// live volume, whichever of the project's volumes the backup is of). A
// round's operations carry request_metadata.verify_round = the round's id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

// pg_advisory_xact_lock key serializing the start of verification rounds
// ("kindlinv" in ASCII).
inline constexpr std::int64_t kVerifyRoundLockKey = 0x6b696e646c696e76;

// Takes kVerifyRoundLockKey until `tx` ends.
[[nodiscard]] Status LockVerifyRounds(Tx& tx);

[[nodiscard]] Result<std::int64_t> CountVerifiableBackups(Tx& tx);

struct VerifyOperationCounts {
  std::int64_t active = 0;    // pending or running verify operations, cluster-wide
  std::int64_t in_round = 0;  // verify operations of the round, in any status
};
[[nodiscard]] Result<VerifyOperationCounts> CountVerifyOperations(Tx& tx,
                                                                  const std::string& round_id);

struct VerifyCandidate {
  std::string backup_id{};
  std::string project_id{};
  // The project's live volume (the operation's), maybe not the backup's.
  std::string volume_id{};
  std::optional<Timestamp> verified_at{};
};

// Verifiable backups not verified at or after `since` and without a verify
// operation of round `round_id` (in any status: one that failed is not
// retried within the round), whose project's live volume is idle (no
// pending or running operation, no transitional status): at most one per
// volume, least recently verified first (never verified before all), then
// oldest; at most `limit`.
[[nodiscard]] Result<std::vector<VerifyCandidate>> ListVerifyCandidates(Tx& tx, Timestamp since,
                                                                        const std::string& round_id,
                                                                        int limit);

}  // namespace kindling::db
