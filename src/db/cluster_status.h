// The PostgreSQL cluster itself rather than kindling's tables: server
// settings (read, and persisted with ALTER SYSTEM), WAL archiving status,
// recovery state, client sessions, replication slots and row counts of the
// main tables. What the control-plane backup commands (pgbackup/) check
// before and after they back up or restore the database. No schema of its
// own; most calls need a superuser (dev's and the test kit's `postgres`).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

// pg_stat_archiver, with the server's clock at the time it was read.
struct ArchiverStatus {
  std::int64_t archived_count = 0;
  std::optional<std::string> last_archived_wal{};
  std::optional<Timestamp> last_archived_time{};
  std::int64_t failed_count = 0;  // since the statistics were reset
  std::optional<std::string> last_failed_wal{};
  std::optional<Timestamp> last_failed_time{};
  Timestamp now{};

  // The last archiving attempt failed: a failure newer than the last success.
  bool failing() const;
};
[[nodiscard]] Result<ArchiverStatus> GetArchiverStatus(Tx& tx);

// current_setting(name), e.g. "wal_level". kNotFound for an unknown setting.
[[nodiscard]] Result<std::string> ShowSetting(Tx& tx, std::string_view name);

// pg_is_in_recovery(): true while the server replays WAL (a restore that has
// not been promoted yet, or a standby).
[[nodiscard]] Result<bool> InRecovery(Tx& tx);

// pg_switch_wal(): closes the current WAL file so it can be archived; the
// name of the last complete WAL file afterwards (the one just closed, or the
// previous one when nothing was written since the last switch). Fails during
// recovery.
[[nodiscard]] Result<std::string> SwitchWal(Tx& tx);

// True when nothing up to WAL file `wal` (a name SwitchWal returns) waits to
// be archived: pg_wal/archive_status holds no `.ready` file for `wal`, an
// earlier segment, a backup label or a timeline history file sorting before
// it. Read from the directory rather than from pg_stat_archiver, whose
// last_archived_wal may name a backup label archived after the segment.
// True as well when archiving is off. kInvalidArgument for another name.
[[nodiscard]] Result<bool> WalArchivedThrough(Tx& tx, std::string_view wal);

// A session of another backend (pg_stat_activity).
struct ClientSession {
  int pid = 0;
  std::string application_name{};
  std::string client{};  // client_addr, or "local" for unix sockets
  std::optional<Timestamp> backend_start{};
};
// Sessions other than this one whose application_name is in `names`.
[[nodiscard]] Result<std::vector<ClientSession>> ListSessions(
    Tx& tx, const std::vector<std::string>& names);

// Replication slots whose name starts with `prefix`.
[[nodiscard]] Result<std::vector<std::string>> ListReplicationSlots(Tx& tx,
                                                                    std::string_view prefix);
// pg_drop_replication_slot. kNotFound when there is no such slot.
[[nodiscard]] Status DropReplicationSlot(Tx& tx, const std::string& name);

// Row counts of the control plane's main tables (users, organizations,
// projects, servers, volumes, operations, backups, audit events), in that
// order; tables the schema does not have yet are left out.
[[nodiscard]] Result<std::vector<std::pair<std::string, std::int64_t>>> CountMainTableRows(Tx& tx);

// ALTER SYSTEM SET name = 'value' for each setting (an empty value RESETs
// it), then pg_reload_conf(). The values persist in postgresql.auto.conf,
// inside the data directory, so a restored data directory keeps them.
// Settings that only a restart applies (wal_level, archive_mode) show their
// new value once the server restarted. Runs outside a transaction (ALTER
// SYSTEM cannot run in one). REQUIRES: a superuser connection.
[[nodiscard]] Status AlterSystem(Database& db,
                                 std::span<const std::pair<std::string, std::string>> settings);

}  // namespace kindling::db
