// Retention policies: which backups of one volume to keep, as restic's
// `forget` and Proxmox Backup Server's prune decide, and why.
//
// Rules, each a count (0: the rule is off):
//   keep_last     the n newest backups;
//   keep_hourly   the newest backup of each of the n newest hours that have one;
//   keep_daily    the same per calendar day, keep_weekly per ISO 8601 week
//                 (Monday first), keep_monthly per month, keep_yearly per year.
// Periods are in UTC. Backups are taken newest first; a rule keeps a backup
// when it still has count left and the backup falls in another period than
// the last one the rule kept, so each rule keeps the newest backup of its
// periods. A backup is kept when any rule keeps it (its reasons name every
// rule that did); the others are dropped. Protected backups (pinned by an
// operator, taken before a deletion) are always kept and are left out of the
// rules: they neither fill a period nor use up a count, as in PBS.
// A policy with every count 0 keeps everything (nothing would be kept
// otherwise, which is never what an operator means).
//
// Pure: no I/O, no clock. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kindling::engine {

struct RetentionPolicy {
  int keep_last = 0;
  int keep_hourly = 0;
  int keep_daily = 0;
  int keep_weekly = 0;
  int keep_monthly = 0;
  int keep_yearly = 0;

  bool empty() const {
    return keep_last == 0 && keep_hourly == 0 && keep_daily == 0 && keep_weekly == 0 &&
           keep_monthly == 0 && keep_yearly == 0;
  }
};

struct RetentionItem {
  std::string id{};
  std::int64_t created_unix_ms = 0;
  // Non-empty: kept whatever the policy, for this reason ("pinned",
  // "pre_delete").
  std::string protected_reason{};
};

struct RetentionDecision {
  std::string id{};
  std::int64_t created_unix_ms = 0;
  bool keep = false;
  // Why it is kept: "last", "hourly", "daily", "weekly", "monthly", "yearly",
  // a protected reason, or "no policy"; empty when dropped.
  std::vector<std::string> reasons{};
};

// One decision per item, newest first (ties by id, descending). kept and
// dropped counts follow from `keep`.
std::vector<RetentionDecision> ApplyRetention(std::vector<RetentionItem> items,
                                              const RetentionPolicy& policy);

}  // namespace kindling::engine
