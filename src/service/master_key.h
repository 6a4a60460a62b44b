// The cluster master key outside `kindling serve`: its check value, and the
// operator's copies of it (`kindling admin master-key export` / `import`).
//
// The master key seals cluster_secrets and the backup stores' data keys:
// whoever has it (and the bucket) can read every backup and every cluster
// secret, and without it a restored database's secrets and every store's keys
// are unreadable. So it is backed up apart from the database, and put back
// before the control plane starts on a restored database.
//
// Both functions take the database when one is reachable (nullptr
// otherwise): export refuses a key that is not the cluster's and records
// cluster_settings.master_key_exported_at (when) and
// master_key_exported_check (which key: its check value, no key material);
// import refuses a key that is not the cluster's. `kindling admin
// control-plane check` warns while no export is recorded
// (MasterKeyExportWarning). Both audit (cluster.master_key.export / .import). Key files
// are written atomically, mode 0600, as 64 hex characters and a newline
// (crypto/key_file.h).
//
// Thread-safety: free functions.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "common/result.h"
#include "crypto/aead.h"
#include "db/database.h"

namespace kindling::service {

// cluster_settings key: when the master key was last exported (RFC 3339, UTC).
inline constexpr char kMasterKeyExportedAtSetting[] = "master_key_exported_at";
// cluster_settings key: the check value (MasterKeyCheckValue) of the key
// that export wrote, so a later check can tell it is still the cluster's.
inline constexpr char kMasterKeyExportedCheckSetting[] = "master_key_exported_check";

// The check value recorded in cluster_settings.master_key_check: a keyed
// digest of a fixed label, which reveals nothing about the key.
std::string MasterKeyCheckValue(const crypto::Key& key);

// The cluster's recorded check value; nullopt when none is recorded yet.
[[nodiscard]] Result<std::optional<std::string>> RecordedMasterKeyCheck(db::Database& db);

// The last export recorded in cluster_settings.
struct MasterKeyExportRecord {
  std::string exported_at;  // RFC 3339, UTC
  std::string check;        // the exported key's check value; empty when not recorded
};

[[nodiscard]] Result<std::optional<MasterKeyExportRecord>> RecordedMasterKeyExport(
    db::Database& db);

// What `check` says about the operator's copy of the key: nullopt when an
// export of the cluster's current key is recorded, else a warning (no export
// recorded, or the one recorded is of another key than master_key_check's).
[[nodiscard]] Result<std::optional<std::string>> MasterKeyExportWarning(db::Database& db);

struct MasterKeyCopy {
  // Whether the key was compared with the cluster's check value (false: no
  // database, or the cluster recorded none yet).
  bool checked_against_cluster = false;
  // Nothing was written: the destination already held this key.
  bool unchanged = false;
  // import --force: where the key it replaced was kept.
  std::optional<std::filesystem::path> replaced_key_kept_at;
};

// Copies the key file `key_file` to `out`. kNotFound when there is no key
// file; kWrongKey when `db` records another key's check value; kAlreadyExists
// when `out` holds something else (a file that is not this key) and not
// `force`. Records master_key_exported_at and master_key_exported_check when
// `db` is given.
[[nodiscard]] Result<MasterKeyCopy> ExportMasterKey(const std::filesystem::path& key_file,
                                                    const std::filesystem::path& out, bool force,
                                                    db::Database* db);

// Installs the key in `from` as `key_file` (creating its directory).
// kInvalidArgument when `from` is not a key file; kWrongKey when `db` records
// another key's check value (even with `force`); kAlreadyExists when
// `key_file` holds a different key and not `force` (with `force` the old
// file is kept beside it as <key_file>.replaced-<unix seconds>).
[[nodiscard]] Result<MasterKeyCopy> ImportMasterKey(const std::filesystem::path& from,
                                                    const std::filesystem::path& key_file,
                                                    bool force, db::Database* db);

}  // namespace kindling::service
