// Schema migrations: versioned, idempotent, run by every process at start.
//
// Each migration runs in its own transaction holding a transaction-scoped
// advisory lock (kMigrationLockKey), so processes starting at the same time
// apply each migration exactly once and the others wait, then skip it.
// Applied versions are recorded in schema_migrations(version, name,
// applied_at). Migrations are append-only: an applied migration's SQL never
// changes; a schema change is a new migration.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "common/result.h"
#include "db/database.h"

namespace kindling::db {

// pg_advisory_xact_lock key serializing migrations ("kindlinm" in ASCII).
inline constexpr std::int64_t kMigrationLockKey = 0x6b696e646c696e6d;

struct Migration {
  int version{};
  std::string_view name{};
  std::string_view sql{};
};

// Every migration, in version order.
std::span<const Migration> AllMigrations();

struct MigrationReport {
  int applied = 0;         // migrations this call applied
  int schema_version = 0;  // highest version recorded afterwards
};

// Applies the migrations the database lacks. A database with versions this
// binary does not know (a newer binary migrated it) is left alone: migrations
// only add, so an older binary keeps working.
[[nodiscard]] Result<MigrationReport> RunMigrations(Database& db);

// Highest applied version; 0 for an empty database.
[[nodiscard]] Result<int> SchemaVersion(Database& db);

}  // namespace kindling::db
