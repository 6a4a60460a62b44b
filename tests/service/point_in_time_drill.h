// The point-in-time drill of control-plane disaster recovery, run once per
// kind of pgBackRest repository (control_plane_drill_test.cc: a local
// directory; control_plane_s3_drill_test.cc: an S3 bucket over HTTPS): the
// runbook's section 1 against the built `kindling dev`, from the rows and
// volume backups written before a time T to `kindling admin validate`
// passing on the restored cluster.
//
// What makes a point-in-time restore to T reliable, and what the drill
// therefore arranges: a backup that finished at least a second before T
// (restore picks the newest such backup itself), commits on both sides of T
// (recovery stops at the first commit after T, and ends with an error when
// the archive holds none), and that WAL in the repository: the commands
// archive the current WAL file before they restore (and `kindling dev` when
// it stops), so only T itself must be taken a little after the backup.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "drill_util.h"

namespace kindling::service {

// The pgBackRest repository a drill runs against.
struct DrillRepository {
  // What `check --json` reports as "repository" ("" = not compared).
  std::string description{};
  // NAME=value for every control-plane command (the S3 secret).
  std::vector<std::string> env{};
  // Text no command may print ("" = none).
  std::string secret{};
  // Whether the repository's WAL archive holds timeline `n`'s history file.
  std::function<bool(int n)> holds_timeline{};
};

// The first file under `root` whose name starts with `prefix`, or an empty
// path (a bucket of the S3 test server is a directory tree too).
std::filesystem::path FindFileStartingWith(const std::filesystem::path& root,
                                           const std::string& prefix);

class ControlPlaneDrillTest : public DevDrillTest {
 protected:
  // A backup of the project's volume, queued; its operation.
  nlohmann::json QueueBackup(const std::string& project);
  // The volume's image on whichever worker holds it (empty when none).
  std::filesystem::path ImageOf(const std::string& volume_id) const;
  // Writes `label` and pseudo-random bytes after it (`bytes` in all, which
  // do not compress: 64 MiB take a backup a moment) at `offset` of the
  // image, a region ext4 leaves unused in a fresh 1 GiB volume.
  static void WritePattern(const std::filesystem::path& image, const std::string& label,
                           std::uint64_t offset, std::size_t bytes);
  static std::string BytesAt(const std::filesystem::path& image, std::uint64_t offset,
                             std::size_t bytes);
  // `kindling image digest`: what a backup's image_sha256 is computed as.
  static std::string ImageDigest(const std::filesystem::path& image, std::int64_t chunk_size);
  // Audit events of `action`, newest first.
  nlohmann::json AuditEvents(const std::string& action);

  // The whole drill on dev_, which runs (started with kBackupsByHand) with
  // `repository` configured and the volume store the test chose: projects,
  // a volume and its backups before T, a full control-plane backup, a
  // volume backup in flight at T and one after T; a restore into a copy
  // next to the running cluster (the cluster untouched, the copy's timeline
  // never in the repository); dev stopped, restored in place to T, started
  // again: the rows before T only, wal_level=logical, the in-flight backup
  // resolved from its manifest, the after-T backup imported by the rescan
  // and restored bit for bit, the audit events of the restore, check and
  // validate passing; then stops dev_.
  void RunPointInTimeDrill(const DrillRepository& repository);

 private:
  CliResult RepositoryCommand(const DrillRepository& repository, const std::string& command,
                              std::vector<std::string> args);
};

}  // namespace kindling::service
