#include "control/backup_rescan.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "common/ids.h"
#include "control/backup_store.h"
#include "crypto/sha256.h"
#include "db/backup_stores.h"
#include "db/backups.h"
#include "db/projects.h"
#include "repo/layout.h"

namespace kindling::control {
namespace {

using nlohmann::json;

db::Timestamp FromUnixMs(std::uint64_t ms) {
  return db::Timestamp(std::chrono::microseconds(static_cast<std::int64_t>(ms) * 1000));
}

// The row metadata of a backup recorded from its manifest (the keys the
// worker writes, plus "imported").
json ManifestMetadata(const repo::Manifest& m) {
  return json{{"image_sha256", crypto::DigestHex(m.image_digest)},
              {"stored_bytes", m.stats.bytes_uploaded},
              {"referenced_bytes", m.stats.bytes_referenced},
              {"chunks_uploaded", m.stats.chunks_uploaded},
              {"chunks_data", m.stats.chunks_data},
              {"chunk_size", m.chunk_size},
              {"imported", true}};
}

db::ImportedBackup ImportOf(const repo::Manifest& m, const std::string& storage_url) {
  return db::ImportedBackup{
      .id = m.backup_id,
      .volume_id = m.volume_id,
      .kind = db::BackupKind::kManual,
      .storage_url = storage_url,
      .storage_key = repo::ManifestKey(m.volume_id, m.backup_id),
      .size_bytes = static_cast<std::int64_t>(m.image_size),
      .metadata_json = ManifestMetadata(m).dump(),
      .created_at = FromUnixMs(m.created_unix_ms),
      .duration = std::chrono::milliseconds(static_cast<std::int64_t>(m.stats.duration_ms))};
}

RescannedBackup Rescanned(const repo::Manifest& m, const std::string& storage_url,
                          const db::Volume& volume, bool recovered) {
  return RescannedBackup{.backup_id = m.backup_id,
                         .volume_id = m.volume_id,
                         .project_id = volume.project_id,
                         .volume_deleted = volume.deleted_at.has_value(),
                         .storage_url = storage_url,
                         .storage_key = repo::ManifestKey(m.volume_id, m.backup_id),
                         .size_bytes = static_cast<std::int64_t>(m.image_size),
                         .image_sha256 = crypto::DigestHex(m.image_digest),
                         .created_at = FromUnixMs(m.created_unix_ms),
                         .recovered = recovered};
}

json ImportedDetails(const RescannedBackup& b) {
  return json{{"backup_id", b.backup_id},     {"project_id", b.project_id},
              {"storage_url", b.storage_url}, {"storage_key", b.storage_key},
              {"size_bytes", b.size_bytes},   {"image_sha256", b.image_sha256},
              {"recovered", b.recovered},     {"by", "rescan"}};
}

// What happened to one manifest the database lacked.
struct Outcome {
  std::optional<RescannedBackup> imported;
  std::optional<RescanOrphan> orphan;
  bool raced = false;  // another rescan recorded it meanwhile
};

class Scanner {
 public:
  Scanner(db::Database& db, const Actor& actor, RescanReport& report)
      : db_(db), actor_(actor), report_(report) {}

  // Lists one store and records what the database lacks. Database failures
  // are returned; the store's own failures go to report_.unreadable.
  Status Scan(const OpenedBackupStore& store) {
    auto listed = store.store->List(repo::kVolumesPrefix);
    if (!listed) {
      Problem(store.url, "",
              "list " + std::string(repo::kVolumesPrefix) + ": " + listed.error().message());
      return OkStatus();
    }
    report_.stores.push_back(store.url);
    std::vector<repo::ManifestName> names;
    std::vector<std::string> ids;
    for (const storage::ObjectInfo& object : *listed) {
      auto name = repo::ParseManifestKey(object.key);
      if (!name) continue;
      ids.push_back(name->backup_id);
      names.push_back(std::move(*name));
    }
    report_.manifests += names.size();
    KINDLING_ASSIGN_OR_RETURN(
        auto statuses, db_.Transact([&](db::Tx& tx) { return db::FindBackupStatuses(tx, ids); }));
    for (const repo::ManifestName& name : names) {
      auto status = statuses.find(name.backup_id);
      if (status != statuses.end() && status->second != db::BackupStatus::kFailed) {
        if (status->second == db::BackupStatus::kPending ||
            status->second == db::BackupStatus::kRunning) {
          report_.in_flight.push_back(name.backup_id);
        } else {
          ++report_.known;
        }
        continue;
      }
      const std::string key = repo::ManifestKey(name.volume_id, name.backup_id);
      auto manifest = store.repository->LoadManifest(name.volume_id, name.backup_id);
      if (!manifest) {
        Problem(store.url, key, manifest.error().message());
        continue;
      }
      KINDLING_ASSIGN_OR_RETURN(Outcome outcome, status != statuses.end()
                                                     ? Recover(*manifest, store.url)
                                                     : Import(*manifest, store.url));
      if (outcome.raced) ++report_.known;
      if (outcome.imported) report_.imported.push_back(std::move(*outcome.imported));
      if (outcome.orphan) report_.orphaned.push_back(std::move(*outcome.orphan));
    }
    return OkStatus();
  }

  void Problem(const std::string& url, const std::string& key, const std::string& error) {
    report_.unreadable.push_back(RescanProblem{url, key, error});
  }

 private:
  // A manifest without a row: imported under its volume, or an orphan.
  Result<Outcome> Import(const repo::Manifest& m, const std::string& url) {
    return db_.Transact([&](db::Tx& tx) -> Result<Outcome> {
      Outcome outcome;
      if (IsUuid(m.volume_id) && IsUuid(m.backup_id)) {
        auto volume = db::GetVolume(tx, m.volume_id);
        if (!volume && !volume.error().is_not_found()) return std::unexpected(volume.error());
        if (volume) {
          KINDLING_ASSIGN_OR_RETURN(bool inserted, db::ImportBackup(tx, ImportOf(m, url)));
          if (!inserted) {
            outcome.raced = true;
            return outcome;
          }
          RescannedBackup b = Rescanned(m, url, *volume, /*recovered=*/false);
          KINDLING_RETURN_IF_ERROR(Audit(tx, actor_, "volume.backup.imported", "project_volume",
                                         b.volume_id, ImportedDetails(b).dump()));
          outcome.imported = std::move(b);
          return outcome;
        }
      }
      KINDLING_ASSIGN_OR_RETURN(
          db::RecordedOrphan recorded,
          db::RecordOrphanBackup(
              tx, db::OrphanBackup{.backup_id = m.backup_id,
                                   .volume_id = m.volume_id,
                                   .storage_url = url,
                                   .storage_key = repo::ManifestKey(m.volume_id, m.backup_id),
                                   .size_bytes = static_cast<std::int64_t>(m.image_size),
                                   .image_sha256 = crypto::DigestHex(m.image_digest),
                                   .chunk_size = static_cast<int>(m.chunk_size),
                                   .backup_created_at = FromUnixMs(m.created_unix_ms)}));
      // An assigned orphan has its row; only a race gets here with one.
      if (recorded.orphan.assigned_at) {
        outcome.raced = true;
        return outcome;
      }
      if (recorded.inserted) {
        KINDLING_RETURN_IF_ERROR(Audit(tx, actor_, "backup.orphan.found", "orphan_volume_backup",
                                       m.backup_id,
                                       json{{"volume_id", m.volume_id},
                                            {"storage_url", url},
                                            {"size_bytes", m.image_size},
                                            {"image_sha256", recorded.orphan.image_sha256}}
                                           .dump()));
      }
      outcome.orphan = RescanOrphan{std::move(recorded.orphan), recorded.inserted};
      return outcome;
    });
  }

  // A failed row whose manifest exists: the backup is there after all.
  Result<Outcome> Recover(const repo::Manifest& m, const std::string& url) {
    return db_.Transact([&](db::Tx& tx) -> Result<Outcome> {
      Outcome outcome;
      KINDLING_ASSIGN_OR_RETURN(db::Backup row, db::GetBackup(tx, m.backup_id));
      if (row.status != db::BackupStatus::kFailed || row.project_volume_id != m.volume_id) {
        // Recorded meanwhile, or a row of another volume that the manifest
        // does not describe: leave it.
        outcome.raced = true;
        return outcome;
      }
      KINDLING_ASSIGN_OR_RETURN(db::Volume volume, db::GetVolume(tx, m.volume_id));
      const db::ImportedBackup from = ImportOf(m, url);
      KINDLING_RETURN_IF_ERROR(
          db::RecoverFailedBackup(tx, m.backup_id,
                                  db::BackupSuccess{.storage_url = from.storage_url,
                                                    .storage_key = from.storage_key,
                                                    .size_bytes = from.size_bytes,
                                                    .metadata_json = from.metadata_json},
                                  from.created_at));
      RescannedBackup b = Rescanned(m, url, volume, /*recovered=*/true);
      KINDLING_RETURN_IF_ERROR(Audit(tx, actor_, "volume.backup.imported", "project_volume",
                                     b.volume_id, ImportedDetails(b).dump()));
      outcome.imported = std::move(b);
      return outcome;
    });
  }

  db::Database& db_;
  const Actor& actor_;
  RescanReport& report_;
};

}  // namespace

ControlResult<RescanReport> RescanBackupStores(db::Database& db, const crypto::Key& master_key,
                                               const Actor& actor) {
  RescanReport report;
  Scanner scanner(db, actor, report);
  auto fail = [](const Error& error) { return std::unexpected(FromError(error)); };

  // The current store first: opening it also records it in the history.
  std::string current_url;
  auto settings = db.Transact([&](db::Tx& tx) { return LoadBackupStoreSettings(tx, master_key); });
  if (!settings) {
    if (settings.error().kind() != ErrorKind::kWrongKey) return fail(settings.error());
    scanner.Problem("", "", "the current backup settings: " + settings.error().message());
  } else if (settings->MissingReason().empty()) {
    current_url = settings->Url();
    auto opened = OpenCurrentBackupStore(db, master_key);
    if (!opened) {
      scanner.Problem(current_url, "", opened.error().message());
    } else if (Status scanned = scanner.Scan(*opened); !scanned) {
      return fail(scanned.error());
    }
  }

  std::set<std::string> urls;
  auto known = db.Transact([&](db::Tx& tx) -> Result<std::set<std::string>> {
    std::set<std::string> out;
    KINDLING_ASSIGN_OR_RETURN(auto history, db::ListBackupStores(tx));
    for (const auto& record : history) out.insert(record.storage_url);
    KINDLING_ASSIGN_OR_RETURN(auto named, db::ListBackupStorageUrls(tx));
    out.insert(named.begin(), named.end());
    return out;
  });
  if (!known) return fail(known.error());
  for (const std::string& url : *known) {
    if (url == current_url) continue;
    auto opened = OpenBackupStoreAt(db, master_key, url);
    if (!opened) {
      scanner.Problem(url, "", opened.error().message());
      continue;
    }
    if (Status scanned = scanner.Scan(*opened); !scanned) return fail(scanned.error());
  }

  const bool changed =
      !report.imported.empty() ||
      std::ranges::any_of(report.orphaned, [](const RescanOrphan& o) { return o.first_found; });
  if (actor.user_id || changed) {
    const std::size_t new_orphans =
        std::ranges::count_if(report.orphaned, [](const RescanOrphan& o) { return o.first_found; });
    auto audited = db.Transact([&](db::Tx& tx) {
      return Audit(tx, actor, "backups.rescan", "cluster", std::nullopt,
                   json{{"stores", report.stores},
                        {"manifests", report.manifests},
                        {"known", report.known},
                        {"imported", report.imported.size()},
                        {"orphaned", report.orphaned.size()},
                        {"new_orphans", new_orphans},
                        {"unreadable", report.unreadable.size()}}
                       .dump());
    });
    if (!audited) return fail(audited.error());
  }
  return report;
}

ControlResult<std::vector<db::OrphanBackup>> ListOrphanBackups(db::Database& db,
                                                               bool include_assigned) {
  auto listed =
      db.Transact([&](db::Tx& tx) { return db::ListOrphanBackups(tx, include_assigned); });
  if (!listed) return std::unexpected(FromError(listed.error()));
  return std::move(*listed);
}

ControlResult<AssignedOrphan> AssignOrphanBackup(db::Database& db, const crypto::Key& master_key,
                                                 const Actor& actor, const std::string& backup_id,
                                                 const std::string& project_id) {
  if (!IsUuid(project_id)) return Refuse(400, kCodeValidation, "project_id must be a UUID");
  auto found = db.Transact([&](db::Tx& tx) { return db::GetOrphanBackup(tx, backup_id); });
  if (!found) {
    if (found.error().is_not_found())
      return Refuse(404, kCodeNotFound, "orphan backup " + backup_id + " not found");
    return std::unexpected(FromError(found.error()));
  }
  const db::OrphanBackup orphan = std::move(*found);
  if (orphan.assigned_project_id) {
    return Refuse(409, kCodeFailedPrecondition,
                  "orphan backup " + backup_id + " is already assigned to project " +
                      *orphan.assigned_project_id);
  }
  if (!IsUuid(orphan.volume_id) || !IsUuid(orphan.backup_id)) {
    // project_volumes and project_volume_backups have UUID ids; such a backup
    // was made with the engine's CLI, which restores it without the database.
    return Refuse(409, kCodeFailedPrecondition,
                  "backup " + orphan.backup_id + " of volume " + orphan.volume_id +
                      " was not made by the control plane (its ids are not UUIDs), so it cannot "
                      "become a project's backup; restore it to a file with the engine: "
                      "kindling backup restore --store " +
                      orphan.storage_url + " --key-file <the master key file> --volume-id " +
                      orphan.volume_id + " --backup " + orphan.backup_id + " --to PATH");
  }
  // Only a backup that still reads becomes a restorable row.
  auto store = OpenBackupStoreAt(db, master_key, orphan.storage_url);
  if (!store) {
    return Refuse(409, kCodeFailedPrecondition,
                  "cannot open the store of backup " + backup_id + ": " + store.error().message());
  }
  auto manifest = store->repository->LoadManifest(orphan.volume_id, orphan.backup_id);
  if (!manifest) {
    return Refuse(409, kCodeFailedPrecondition,
                  "cannot read backup " + backup_id + " in " + orphan.storage_url + ": " +
                      manifest.error().message());
  }
  return TransactChecked<AssignedOrphan>(
      db, [&](db::Tx& tx, std::optional<ControlError>& refusal) -> Result<AssignedOrphan> {
        AssignedOrphan out;
        auto project = db::GetProject(tx, project_id);
        if (!project) {
          if (!project.error().is_not_found()) return std::unexpected(project.error());
          refusal = ControlError{404, kCodeNotFound, "project " + project_id + " not found"};
          return Refused();
        }
        KINDLING_ASSIGN_OR_RETURN(out.orphan,
                                  db::GetOrphanBackup(tx, backup_id, /*for_update=*/true));
        if (out.orphan.assigned_project_id) {
          refusal = ControlError{409, kCodeFailedPrecondition,
                                 "orphan backup " + backup_id + " is already assigned"};
          return Refused();
        }
        auto volume = db::GetVolume(tx, orphan.volume_id, /*for_update=*/true);
        if (!volume && !volume.error().is_not_found()) return std::unexpected(volume.error());
        if (volume && volume->project_id != project_id) {
          refusal =
              ControlError{409, kCodeFailedPrecondition,
                           "volume " + orphan.volume_id + " belongs to project " +
                               volume->project_id + " now; rescan to import the backup there"};
          return Refused();
        }
        if (!volume) {
          const std::uint64_t gib = 1ull << 30;
          const int size_gb = static_cast<int>((manifest->image_size + gib - 1) / gib);
          KINDLING_ASSIGN_OR_RETURN(
              out.volume, db::CreatePlaceholderVolume(tx, orphan.volume_id, project_id, size_gb));
          out.volume_created = true;
        } else {
          out.volume = std::move(*volume);
        }
        KINDLING_RETURN_IF_ERROR(db::ImportBackup(tx, ImportOf(*manifest, orphan.storage_url)));
        KINDLING_ASSIGN_OR_RETURN(out.backup, db::GetBackup(tx, orphan.backup_id));
        KINDLING_ASSIGN_OR_RETURN(out.orphan, db::MarkOrphanAssigned(tx, backup_id, project_id));
        KINDLING_RETURN_IF_ERROR(Audit(tx, actor, "volume.backup.assigned", "project_volume",
                                       out.volume.id,
                                       json{{"backup_id", orphan.backup_id},
                                            {"project_id", project_id},
                                            {"storage_url", orphan.storage_url},
                                            {"image_sha256", orphan.image_sha256},
                                            {"volume_created", out.volume_created}}
                                           .dump()));
        return out;
      });
}

}  // namespace kindling::control
