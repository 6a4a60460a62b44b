// `pgbackrest info --output=json`, parsed. Note that pgBackRest exits 0 even
// for a stanza that does not exist or a repository it cannot read: the state
// is in status.code (StanzaInfo::status_code), never in the exit code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kindling::pgbackup {

// status.code values of pgBackRest 2.45.
enum StanzaStatus : int {
  kStanzaOk = 0,
  kStanzaMissing = 1,  // "missing stanza path"
  kNoValidBackups = 2,
  kStanzaDataMissing = 3,
  kReposDiffer = 4,
  kDatabaseMismatch = 5,
  kRequestedBackupMissing = 6,
  kOtherError = 99,  // e.g. the repository cannot be read
};

struct BackupSet {
  std::string label;            // e.g. 20250131-120000F
  std::string type;             // full, diff or incr
  std::int64_t start_time = 0;  // Unix seconds
  std::int64_t stop_time = 0;
  std::uint64_t size = 0;        // database size
  std::uint64_t delta = 0;       // bytes this backup copied
  std::uint64_t repo_size = 0;   // in the repository (compressed)
  std::uint64_t repo_delta = 0;  // added to the repository by this backup
  std::string wal_start;         // first and last WAL files it needs
  std::string wal_stop;
  bool error = false;  // pgBackRest found page checksum errors
};

struct StanzaInfo {
  std::string name;
  int status_code = kOtherError;
  std::string status_message;
  // The repository's own message when it differs (e.g. "[PathOpenError]
  // unable to list file info for path ...: Permission denied").
  std::string repo_message;
  bool backup_running = false;
  std::vector<BackupSet> backups;  // oldest first
  // Oldest and newest WAL file in the archive of the current database.
  std::optional<std::string> wal_min;
  std::optional<std::string> wal_max;

  bool ok() const { return status_code == kStanzaOk; }
  // The newest backup; nullptr when there is none.
  const BackupSet* Latest() const { return backups.empty() ? nullptr : &backups.back(); }
  // The newest backup that stopped at or before `unix_seconds`.
  const BackupSet* NewestStoppedBy(std::int64_t unix_seconds) const;
  // "no valid backups" / the repository's error, for messages.
  std::string Problem() const;
};

// Parses the JSON array `info --output=json` prints and picks `stanza`.
// kInternal when the text is not pgBackRest's JSON; a stanza the array does
// not list is a StanzaInfo with kStanzaMissing.
[[nodiscard]] Result<StanzaInfo> ParseInfo(std::string_view json, std::string_view stanza);

}  // namespace kindling::pgbackup
