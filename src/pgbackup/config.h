// The pgBackRest configuration kindling writes for the control plane's
// PostgreSQL: one stanza ("kindling"), one repository (a local directory or
// an S3 bucket), encrypted with a passphrase derived from the cluster master
// key, zstd-compressed, with asynchronous WAL archiving whose queue is
// bounded and whose timeouts are short, so an unreachable repository never
// holds PostgreSQL up: WAL piles up in the spool (at worst it is dropped
// past archive-push-queue-max, which only costs point-in-time recovery
// until the next backup) instead of blocking archive_command for minutes.
//
// PostgreSQL's side (wal_level, archive_mode, archive_command,
// archive_timeout) is set with ALTER SYSTEM, so it lives in the data
// directory and a restored cluster keeps it; pgBackRest's own file is outside
// the data directory and is not in any backup: `configure` renders it again
// from the master key and the repository flags.
//
// Everything here is pure: rendering and parsing, no I/O. The repository's
// secrets (the passphrase, an S3 secret key) are held as SharedSecrets (the
// configuration is copied to the components that use it), the rendered text
// as a Secret; ParseConfig leaves no copy of them behind (its
// caller wipes the text it read).
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/secret.h"
#include "crypto/aead.h"

namespace kindling::pgbackup {

inline constexpr char kStanza[] = "kindling";
inline constexpr char kDefaultBinary[] = "/usr/bin/pgbackrest";

// A repository in an S3-compatible bucket. pgBackRest needs HTTPS, and a
// certificate for a DNS name (not an IP address) unless verify_tls is off.
struct S3Repository {
  std::string bucket;
  std::string endpoint;  // host, host:port or https://host[:port]
  std::string region;
  std::string key;                 // access key id
  SharedSecret key_secret;         // from the environment or a file, never a flag
  std::string uri_style = "host";  // host or path
  bool verify_tls = true;
  std::filesystem::path ca_file;  // empty: the system's
};

struct Repository {
  // A local repository directory, or the path inside the bucket for S3
  // (the prefix, "/" for the whole bucket).
  std::filesystem::path path;
  std::optional<S3Repository> s3;
  int retention_full = 2;  // full backups kept (with what depends on them)
};

// Everything the rendered file and archive_command name.
struct ClusterConfig {
  std::filesystem::path config_file;  // where the file is written (absolute)
  std::filesystem::path binary = kDefaultBinary;
  std::string stanza = kStanza;
  // The PostgreSQL cluster (pg1-*).
  std::filesystem::path data_dir;
  std::filesystem::path socket_dir;
  int port = 5432;
  // pgBackRest's working directories: the async archive queue, logs, locks.
  // Separate per cluster, so clusters on one machine never share locks.
  std::filesystem::path spool_dir;
  std::filesystem::path log_dir;
  std::filesystem::path lock_dir;
  Repository repository;
  SharedSecret cipher_passphrase;  // RepositoryPassphrase(master key)
  int process_max = 2;
  std::string archive_push_queue_max = "4GiB";
  // How long archive-push waits for the async archiver, and check/backup
  // for WAL to reach the repository.
  std::chrono::seconds archive_timeout{30};
  std::chrono::seconds io_timeout{15};   // one network/storage operation
  std::chrono::seconds db_timeout{600};  // one query (pg_backup_start's checkpoint)
  // PostgreSQL's archive_timeout: a WAL file is closed (and archived) at
  // least this often while anything is written; bounds the recovery point.
  std::chrono::seconds wal_switch_interval{60};
};

// Hex of HKDF(master key, "control-plane backup repository"): the
// repository's encryption passphrase. Lose the master key and the
// repository cannot be read.
Secret RepositoryPassphrase(const crypto::Key& master_key);

// kInvalidArgument when a path is relative or holds characters that the
// file format or archive_command's shell cannot carry (only
// [A-Za-z0-9/._+:@,=-] are allowed in paths), when a value has a line
// break, or when the repository is missing.
[[nodiscard]] Status Validate(const ClusterConfig& config);

// The configuration file's text (a Secret: it holds the passphrase and an S3
// repository's secret key). REQUIRES: Validate(config) is ok.
Secret RenderConfig(const ClusterConfig& config);

// The parts of a rendered file the other commands need: pg1-*, the binary's
// working directories and the repository (with an S3 repository's keys, so
// that configure can write the file again without them); never the
// passphrase, which comes from the master key. kInvalidArgument when the
// stanza or pg1-path is missing.
[[nodiscard]] Result<ClusterConfig> ParseConfig(std::string_view text,
                                                const std::filesystem::path& config_file);

// `<binary> --config=<file> --stanza=<stanza> archive-push %p`.
std::string ArchiveCommand(const ClusterConfig& config);

// The PostgreSQL settings to persist with ALTER SYSTEM: wal_level=logical,
// and with `archiving`, archive_mode=on, archive_command and archive_timeout.
std::vector<std::pair<std::string, std::string>> ServerSettings(const ClusterConfig& config,
                                                                bool archiving = true);

// "s3://bucket/prefix (endpoint)" or the directory, for reports.
std::string DescribeRepository(const Repository& repository);

// A recovery target from an RFC 3339 time ("2025-01-31T12:00:00Z",
// "2025-01-31T13:00:00.250+01:00"): `text` is the UTC form pgBackRest and
// PostgreSQL read ("2025-01-31 12:00:00.250+00"), to the millisecond
// (finer digits are dropped, i.e. the target moves at most 1 ms earlier);
// `rfc3339` the same instant in RFC 3339, UTC ("2025-01-31T12:00:00.250Z"),
// for people and the audit trail.
struct RecoveryTarget {
  std::string text;
  std::chrono::sys_time<std::chrono::milliseconds> time;
  std::string rfc3339;
};
[[nodiscard]] Result<RecoveryTarget> ParseRecoveryTarget(std::string_view rfc3339);

}  // namespace kindling::pgbackup
