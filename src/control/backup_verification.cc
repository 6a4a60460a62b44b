#include "control/backup_verification.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "db/audit.h"
#include "db/backup_verification.h"

namespace kindling::control {
namespace {

using nlohmann::json;

struct Round {
  std::string id{};
  db::Timestamp started_at{};  // the database's clock
  // BackupVerifySchedule::now when it started: what `every` is counted from.
  std::chrono::system_clock::time_point scheduled_at{};
  std::int64_t planned = 0;
  bool started_now = false;
};

std::int64_t UnixMs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Result<std::optional<db::AuditEvent>> NewestRound(db::Tx& tx) {
  KINDLING_ASSIGN_OR_RETURN(
      std::vector<db::AuditEvent> events,
      db::ListAuditEvents(tx, db::AuditFilter{.action = kVerifyRoundStarted, .limit = 1}));
  if (events.empty()) return std::nullopt;
  return std::move(events.front());
}

Result<Round> RoundOf(const db::AuditEvent& event, bool started_now) {
  const json details = json::parse(event.details_json, nullptr, false);
  auto integer = [&](const char* key) {
    return details.is_object() && details.contains(key) && details[key].is_number_integer();
  };
  if (!integer("planned") || !integer("scheduled_unix_ms")) {
    return InternalError("audit event " + event.id + " (" + kVerifyRoundStarted +
                         ") has no planned count or schedule time");
  }
  return Round{.id = event.id,
               .started_at = event.created_at,
               .scheduled_at = std::chrono::system_clock::time_point(
                   std::chrono::milliseconds(details["scheduled_unix_ms"].get<std::int64_t>())),
               .planned = details["planned"].get<std::int64_t>(),
               .started_now = started_now};
}

// The current round, started now when the newest one is `every` old (or
// there is none). Serialized across processes, so two leaders at a
// hand-over start one round, not two.
Result<Round> CurrentRound(db::Database& db, const BackupVerifySchedule& schedule) {
  return db.Transact([&](db::Tx& tx) -> Result<Round> {
    KINDLING_RETURN_IF_ERROR(db::LockVerifyRounds(tx));
    KINDLING_ASSIGN_OR_RETURN(std::optional<db::AuditEvent> last, NewestRound(tx));
    const auto now = schedule.now();
    if (last) {
      KINDLING_ASSIGN_OR_RETURN(Round round, RoundOf(*last, false));
      if (now - round.scheduled_at < schedule.every) return round;
    }
    KINDLING_ASSIGN_OR_RETURN(std::int64_t verifiable, db::CountVerifiableBackups(tx));
    const int percent = std::clamp(schedule.sample_percent, 1, 100);
    // Rounded up: a sample of a few backups still verifies one.
    const std::int64_t planned = (verifiable * percent + 99) / 100;
    const json details = {{"planned", planned},
                          {"verifiable", verifiable},
                          {"sample", VerifySampleName(percent)},
                          {"every_seconds", schedule.every.count()},
                          {"scheduled_unix_ms", UnixMs(now)}};
    KINDLING_ASSIGN_OR_RETURN(
        std::string id,
        db::InsertAuditEvent(tx, db::AuditEventInput{.action = kVerifyRoundStarted,
                                                     .resource_type = "backup_verification",
                                                     .details_json = details.dump()}));
    KINDLING_ASSIGN_OR_RETURN(std::optional<db::AuditEvent> started, NewestRound(tx));
    if (!started || started->id != id) return InternalError("the new verification round is lost");
    return RoundOf(*started, true);
  });
}

}  // namespace

Result<int> ParseVerifySample(std::string_view text) {
  if (text == "all") return 100;
  int percent = 0;
  if (text.size() >= 2 && text.back() == '%') {
    const std::string_view digits = text.substr(0, text.size() - 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), percent);
    if (ec == std::errc() && end == digits.data() + digits.size() && percent >= 1 &&
        percent <= 100) {
      return percent;
    }
  }
  return InvalidArgument(
      "the verification sample must be `all` or a percentage from 1% to 100%, "
      "got \"" +
      std::string(text) + "\"");
}

std::string VerifySampleName(int percent) {
  return percent >= 100 ? "all" : std::to_string(percent) + "%";
}

Result<std::optional<VerifyPass>> QueueScheduledVerifications(
    db::Database& db, VolumeService& volumes, const BackupVerifySchedule& schedule) {
  if (schedule.every.count() <= 0) return std::nullopt;
  KINDLING_ASSIGN_OR_RETURN(Round round, CurrentRound(db, schedule));
  VerifyPass pass{.round_id = round.id,
                  .round_started_at = round.started_at,
                  .round_started = round.started_now,
                  .planned = round.planned};
  KINDLING_ASSIGN_OR_RETURN(
      db::VerifyOperationCounts counts,
      db.Transact([&](db::Tx& tx) { return db::CountVerifyOperations(tx, round.id); },
                  db::kAutocommitRead));
  pass.queued_before = counts.in_round;
  const std::int64_t room =
      std::min<std::int64_t>(round.planned - counts.in_round, schedule.max_active - counts.active);
  if (room <= 0) return pass;
  KINDLING_ASSIGN_OR_RETURN(std::vector<db::VerifyCandidate> candidates,
                            db.Transact(
                                [&](db::Tx& tx) {
                                  return db::ListVerifyCandidates(tx, round.started_at, round.id,
                                                                  static_cast<int>(room));
                                },
                                db::kAutocommitRead));
  for (const db::VerifyCandidate& candidate : candidates) {
    auto queued = volumes.QueueVerify(Actor{}, candidate.project_id, candidate.backup_id, round.id);
    if (queued) {
      pass.queued.push_back(std::move(*queued));
      continue;
    }
    // The database failing is the pass's error; a refusal (the volume
    // became busy, no eligible worker) waits for a later pass.
    if (queued.error().http_status >= 500) {
      const ControlError& e = queued.error();
      return MakeError(e.http_status == 503 ? ErrorKind::kTransient : ErrorKind::kInternal,
                       "queue the verify of backup " + candidate.backup_id + ": " +
                           (e.internal.empty() ? e.message : e.internal));
    }
    pass.refused.push_back("backup " + candidate.backup_id + ": " + queued.error().message);
  }
  return pass;
}

}  // namespace kindling::control
