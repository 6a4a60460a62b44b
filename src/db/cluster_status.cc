#include "db/cluster_status.h"

#include <cctype>

#include "db/internal.h"

namespace kindling::db {
namespace {

using internal::OptText;
using internal::OptTime;
using internal::Text;
using internal::Time;

// The main tables, in the order reports list them.
constexpr std::string_view kMainTables[] = {
    "users",
    "organizations",
    "projects",
    "servers",
    "project_volumes",
    "project_volume_operations",
    "project_volume_backups",
    "cluster_audit_events",
};

bool IsWalFileName(std::string_view name) {
  if (name.size() != 24) return false;
  for (const char c : name)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

bool ArchiverStatus::failing() const {
  if (!last_failed_time) return false;
  return !last_archived_time || *last_failed_time > *last_archived_time;
}

Result<bool> WalArchivedThrough(Tx& tx, std::string_view wal) {
  if (!IsWalFileName(wal))
    return InvalidArgument("'" + std::string(wal) + "' is not the name of a WAL file");
  return internal::Run(
      tx, "read pg_wal/archive_status", [&](pqxx::transaction_base& w) -> Result<bool> {
        // Names are TTTTTTTTLLLLLLLLSSSSSSSS in hex (timeline, log, segment),
        // upper case: later files sort later, and a history file
        // (TTTTTTTT.history) before every segment of its timeline. A backup
        // label (<segment>.<offset>.backup) sorts with its segment.
        const pqxx::row row = internal::Exec1(w,
                                              "SELECT count(*) FROM pg_ls_archive_statusdir() "
                                              "WHERE name LIKE '%.ready' AND left(name, 24) <= $1",
                                              std::string(wal));
        return row[0].as<std::int64_t>() == 0;
      });
}

Result<ArchiverStatus> GetArchiverStatus(Tx& tx) {
  return internal::Run(tx, "read pg_stat_archiver",
                       [&](pqxx::transaction_base& w) -> Result<ArchiverStatus> {
                         const pqxx::row row = w.exec1(
                             "SELECT archived_count, last_archived_wal, last_archived_time, "
                             "failed_count, last_failed_wal, last_failed_time, now() "
                             "FROM pg_stat_archiver");
                         ArchiverStatus status;
                         status.archived_count = row[0].as<std::int64_t>();
                         status.last_archived_wal = OptText(row[1]);
                         status.last_archived_time = OptTime(row[2]);
                         status.failed_count = row[3].as<std::int64_t>();
                         status.last_failed_wal = OptText(row[4]);
                         status.last_failed_time = OptTime(row[5]);
                         status.now = Time(row[6]);
                         return status;
                       });
}

Result<std::string> ShowSetting(Tx& tx, std::string_view name) {
  const std::string setting(name);
  return internal::Run(
      tx, "show " + setting, [&](pqxx::transaction_base& w) -> Result<std::string> {
        const pqxx::row row = internal::Exec1(w, "SELECT current_setting($1, true)", setting);
        if (row[0].is_null()) return NotFound("PostgreSQL has no setting " + setting);
        return Text(row[0]);
      });
}

Result<bool> InRecovery(Tx& tx) {
  return internal::Run(tx, "pg_is_in_recovery", [&](pqxx::transaction_base& w) -> Result<bool> {
    return w.exec1("SELECT pg_is_in_recovery()")[0].as<bool>();
  });
}

Result<std::string> SwitchWal(Tx& tx) {
  return internal::Run(tx, "pg_switch_wal", [&](pqxx::transaction_base& w) -> Result<std::string> {
    // At a file boundary (nothing written since the last switch)
    // pg_walfile_name names the file before it: the last complete one.
    return Text(w.exec1("SELECT pg_walfile_name(pg_switch_wal())")[0]);
  });
}

Result<std::vector<ClientSession>> ListSessions(Tx& tx, const std::vector<std::string>& names) {
  return internal::Run(
      tx, "list sessions", [&](pqxx::transaction_base& w) -> Result<std::vector<ClientSession>> {
        std::vector<ClientSession> sessions;
        const pqxx::result rows = internal::Exec(
            w,
            "SELECT pid, application_name, coalesce(host(client_addr), 'local'), backend_start "
            "FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND application_name = ANY($1::text[]) "
            "ORDER BY backend_start, pid",
            internal::PgTextArray(names));
        for (const auto& row : rows)
          sessions.push_back(
              ClientSession{row[0].as<int>(), Text(row[1]), Text(row[2]), OptTime(row[3])});
        return sessions;
      });
}

Result<std::vector<std::string>> ListReplicationSlots(Tx& tx, std::string_view prefix) {
  const std::string like(prefix);
  return internal::Run(tx, "list replication slots",
                       [&](pqxx::transaction_base& w) -> Result<std::vector<std::string>> {
                         std::vector<std::string> slots;
                         const pqxx::result rows =
                             internal::Exec(w,
                                            "SELECT slot_name FROM pg_replication_slots "
                                            "WHERE starts_with(slot_name, $1) ORDER BY slot_name",
                                            like);
                         for (const auto& row : rows) slots.push_back(Text(row[0]));
                         return slots;
                       });
}

Status DropReplicationSlot(Tx& tx, const std::string& name) {
  return internal::Run(
      tx, "drop replication slot " + name, [&](pqxx::transaction_base& w) -> Status {
        const pqxx::result found =
            internal::Exec(w, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", name);
        if (found.empty()) return NotFound("no replication slot " + name);
        internal::Exec(w, "SELECT pg_drop_replication_slot($1)", name);
        return OkStatus();
      });
}

Result<std::vector<std::pair<std::string, std::int64_t>>> CountMainTableRows(Tx& tx) {
  return internal::Run(
      tx, "count rows",
      [&](pqxx::transaction_base& w) -> Result<std::vector<std::pair<std::string, std::int64_t>>> {
        std::vector<std::pair<std::string, std::int64_t>> counts;
        for (const std::string_view table : kMainTables) {
          const std::string name(table);
          if (internal::Exec1(w, "SELECT to_regclass($1) IS NOT NULL", name)[0].as<bool>()) {
            const auto count =
                w.exec1("SELECT count(*) FROM " + w.quote_name(name))[0].as<std::int64_t>();
            counts.emplace_back(name, count);
          }
        }
        return counts;
      });
}

Status AlterSystem(Database& db, std::span<const std::pair<std::string, std::string>> settings) {
  KINDLING_ASSIGN_OR_RETURN(PooledConnection connection, db.Acquire());
  try {
    pqxx::nontransaction work(*connection.state().conn);
    for (const auto& [name, value] : settings) {
      if (value.empty())
        work.exec("ALTER SYSTEM RESET " + work.quote_name(name));
      else
        work.exec("ALTER SYSTEM SET " + work.quote_name(name) + " = " + work.quote(value));
    }
    work.exec("SELECT pg_reload_conf()");
    return OkStatus();
  } catch (...) {
    bool retryable = false;
    bool broken = false;
    Error error = internal::MapCurrentException("alter system", &retryable, &broken);
    if (broken) connection.Discard();
    return std::unexpected(std::move(error));
  }
}

}  // namespace kindling::db
