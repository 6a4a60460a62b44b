#include "db/migrations.h"

#include <array>
#include <set>

#include "db/internal.h"

namespace kindling::db {
namespace {

// Version 1: the reference system's tables for the volume backup feature and
// what it needs around it. Table and column names follow the reference so its
// operators' SQL keeps working; lease_owner, lease_expires_at, attempts and
// progress on operations are this project's additions.
constexpr std::string_view kInitialSchema = R"sql(
CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL CHECK (email <> ''),
  name text NOT NULL DEFAULT '',
  is_platform_admin boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique regardless of case.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE organizations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (name <> ''),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organization_memberships (
  organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT organization_memberships_pkey PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX organization_memberships_user_id_idx ON organization_memberships (user_id);

CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL DEFAULT '',
  key_prefix text NOT NULL,
  -- SHA-256 of the secret; the secret itself is never stored.
  key_hash bytea NOT NULL CHECK (octet_length(key_hash) = 32),
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz,
  CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);

CREATE TABLE projects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name <> ''),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT projects_organization_id_name_key UNIQUE (organization_id, name)
);

CREATE TABLE servers (
  id uuid PRIMARY KEY,
  hostname text NOT NULL,
  internal_ip text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'draining', 'drained', 'dead')),
  last_heartbeat_at timestamptz,
  enabled_components text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- The leader's dead-server sweep.
CREATE INDEX servers_status_heartbeat_idx ON servers (status, last_heartbeat_at);

CREATE TABLE server_component_statuses (
  server_id uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
  component text NOT NULL,
  status text NOT NULL CHECK (status IN ('healthy', 'degraded')),
  observed_at timestamptz NOT NULL DEFAULT now(),
  last_success_at timestamptz,
  last_error_at timestamptz,
  last_error_message text,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (server_id, component)
);

CREATE TABLE project_volumes (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id),
  server_id uuid REFERENCES servers (id),
  attached_vm_id uuid,
  mount_path text NOT NULL DEFAULT '/data' CHECK (mount_path LIKE '/%'),
  size_gb integer NOT NULL DEFAULT 5 CHECK (size_gb > 0),
  filesystem text NOT NULL DEFAULT 'ext4' CHECK (filesystem IN ('ext4')),
  status text NOT NULL DEFAULT 'detached'
    CHECK (status IN ('detached', 'available', 'attached', 'unavailable', 'backing_up',
                      'restoring', 'repairing', 'deleting')),
  health text NOT NULL DEFAULT 'unknown'
    CHECK (health IN ('unknown', 'healthy', 'degraded', 'missing', 'corrupt')),
  backup_schedule text NOT NULL DEFAULT 'manual'
    CHECK (backup_schedule IN ('off', 'manual', 'daily', 'weekly')),
  backup_retention_count integer NOT NULL DEFAULT 7 CHECK (backup_retention_count >= 1),
  pre_delete_backup_enabled boolean NOT NULL DEFAULT false,
  last_error text,
  deleted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- One volume per project; deleted ones stay as history.
CREATE UNIQUE INDEX project_volumes_one_live_per_project
  ON project_volumes (project_id) WHERE deleted_at IS NULL;
CREATE INDEX project_volumes_server_id_idx
  ON project_volumes (server_id) WHERE deleted_at IS NULL;

CREATE TABLE project_volume_operations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_volume_id uuid NOT NULL REFERENCES project_volumes (id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('backup', 'restore', 'move', 'repair')),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
  server_id uuid REFERENCES servers (id),
  request_metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  result_metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  error text,
  started_at timestamptz,
  completed_at timestamptz,
  failed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  lease_owner uuid,
  lease_expires_at timestamptz,
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  progress jsonb NOT NULL DEFAULT '{}'::jsonb,
  CHECK (status <> 'running' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
-- A volume never has two operations in flight.
CREATE UNIQUE INDEX project_volume_operations_one_active_per_volume
  ON project_volume_operations (project_volume_id) WHERE status IN ('pending', 'running');
-- Claiming: a worker's pending operations, oldest first.
CREATE INDEX project_volume_operations_pending_idx
  ON project_volume_operations (server_id, created_at) WHERE status = 'pending';
-- The recovery sweep: running operations by lease expiry.
CREATE INDEX project_volume_operations_lease_idx
  ON project_volume_operations (lease_expires_at) WHERE status = 'running';
CREATE INDEX project_volume_operations_status_server_idx
  ON project_volume_operations (status, server_id);
CREATE INDEX project_volume_operations_volume_idx
  ON project_volume_operations (project_volume_id, created_at DESC);

CREATE TABLE project_volume_backups (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_volume_id uuid NOT NULL REFERENCES project_volumes (id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('manual', 'scheduled', 'pre_delete')),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
  storage_url text,
  storage_key text,
  size_bytes bigint CHECK (size_bytes >= 0),
  error text,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  started_at timestamptz,
  completed_at timestamptz,
  failed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX project_volume_backups_volume_idx
  ON project_volume_backups (project_volume_id, created_at DESC);

CREATE TABLE cluster_settings (
  key text PRIMARY KEY,
  value text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Values are AES-256-GCM sealed with the master key: nonce || ciphertext || tag.
CREATE TABLE cluster_secrets (
  key text PRIMARY KEY,
  ciphertext bytea NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cluster_audit_events (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- No foreign key: the trail outlives deleted users.
  user_id uuid,
  action text NOT NULL CHECK (action <> ''),
  resource_type text NOT NULL,
  resource_id text,
  details jsonb NOT NULL DEFAULT '{}'::jsonb,
  request_ip text,
  user_agent text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cluster_audit_events_created_at_idx ON cluster_audit_events (created_at DESC);
CREATE INDEX cluster_audit_events_action_idx ON cluster_audit_events (action, created_at DESC);
CREATE INDEX cluster_audit_events_resource_idx
  ON cluster_audit_events (resource_type, resource_id, created_at DESC);
)sql";

// Version 2: data safety. Backups a damaged chunk makes unrestorable are
// `damaged` (with the damaged chunks and their image offsets) until a backup
// stores those chunks again; every store the cluster has written backups to
// is remembered (secrets sealed like cluster_secrets) so each backup is read
// from its own store; images the control plane takes off a worker are kept in
// quarantine, listed here, until they are adopted or purged; operations can
// adopt a quarantined image and verify a backup.
constexpr std::string_view kDataSafetySchema = R"sql(
ALTER TABLE project_volume_backups DROP CONSTRAINT project_volume_backups_status_check;
ALTER TABLE project_volume_backups ADD CONSTRAINT project_volume_backups_status_check
  CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'damaged'));
-- {"chunks": [{"chunk_id", "problem", "offsets": [...]}], "detected_at"} while damaged.
ALTER TABLE project_volume_backups ADD COLUMN damage jsonb;
CREATE INDEX project_volume_backups_storage_idx
  ON project_volume_backups (storage_url, status);

ALTER TABLE project_volume_operations DROP CONSTRAINT project_volume_operations_kind_check;
ALTER TABLE project_volume_operations ADD CONSTRAINT project_volume_operations_kind_check
  CHECK (kind IN ('backup', 'restore', 'move', 'repair', 'adopt', 'verify'));

CREATE TABLE volume_backup_stores (
  storage_url text PRIMARY KEY,
  s3_bucket text NOT NULL DEFAULT '',
  s3_region text NOT NULL DEFAULT '',
  s3_endpoint text NOT NULL DEFAULT '',
  s3_prefix text NOT NULL DEFAULT '',
  local_directory text NOT NULL DEFAULT '',
  -- AES-256-GCM sealed with the master key, as cluster_secrets.
  s3_access_key_id bytea,
  s3_secret_access_key bytea,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE volume_image_quarantine (
  id uuid PRIMARY KEY,
  -- No foreign keys: a database restored from an older snapshot may not know
  -- the server or the volume, and the entry must still be listed.
  server_id uuid NOT NULL,
  project_volume_id uuid NOT NULL,
  reason text NOT NULL CHECK (reason IN ('replaced', 'deleted', 'conflict', 'unknown_volume')),
  detail text NOT NULL DEFAULT '',
  path text NOT NULL,
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  allocated_bytes bigint NOT NULL DEFAULT 0 CHECK (allocated_bytes >= 0),
  image_mtime timestamptz,
  image_sha256 text,
  digest_chunk_size integer,
  status text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'adopted', 'purged')),
  quarantined_at timestamptz NOT NULL DEFAULT now(),
  -- NULL: kept until an operator adopts or purges it.
  purge_after timestamptz,
  resolved_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX volume_image_quarantine_volume_idx
  ON volume_image_quarantine (project_volume_id, quarantined_at DESC);
CREATE INDEX volume_image_quarantine_server_idx ON volume_image_quarantine (server_id, status);
)sql";

// Version 3: backups found in the stores that the database lacks (after a
// restore of the control-plane database from an older snapshot). A backup
// whose volume is known gets its project_volume_backups row back; one whose
// volume the database does not know is recorded here, as found, until a
// platform admin assigns it to a project. Ids are text: a store may hold
// backups made by the engine's CLI under any volume or backup id.
constexpr std::string_view kBackupRescanSchema = R"sql(
CREATE TABLE orphan_volume_backups (
  backup_id text PRIMARY KEY,
  volume_id text NOT NULL,
  storage_url text NOT NULL,
  storage_key text NOT NULL,
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  image_sha256 text NOT NULL,
  chunk_size integer NOT NULL DEFAULT 0,
  backup_created_at timestamptz NOT NULL,
  found_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  -- Set once a platform admin gave the backup to a project.
  assigned_project_id uuid REFERENCES projects (id) ON DELETE SET NULL,
  assigned_at timestamptz
);
CREATE INDEX orphan_volume_backups_volume_idx ON orphan_volume_backups (volume_id);
)sql";

// Version 4: the last check of the control-plane backups (pgBackRest), one
// row per stanza, written by the process that schedules them (on the
// database host) so that every API process can answer GET
// /api/platform/health and /metrics. A table of its own rather than a
// cluster_settings key: settings announce every change on kindling_config,
// which makes every worker reopen its backup store.
constexpr std::string_view kControlPlaneBackupStatusSchema = R"sql(
CREATE TABLE control_plane_backup_status (
  stanza text PRIMARY KEY,
  ok boolean NOT NULL,
  report jsonb NOT NULL,
  checked_at timestamptz NOT NULL DEFAULT now(),
  -- Who checked: a `kindling serve` server id (NULL for `kindling dev`).
  server_id text,
  hostname text NOT NULL
);
)sql";

// Version 5: workloads. A deployment is what an operator asked to run for a
// project's service (a guest image, its resources, running or stopped); a
// new deploy supersedes the current one. Each start of it on a worker is a
// deployment instance, which runs in a VM; VMs also boot to check a volume
// (purpose 'verify'). The partial unique index is the rule "a volume is
// attached to one VM at most"; project_volumes.attached_vm_id names that VM
// while it runs.
constexpr std::string_view kWorkloadsSchema = R"sql(
CREATE TABLE deployments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  service text NOT NULL DEFAULT 'web'
    CHECK (service ~ '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$'),
  image text NOT NULL CHECK (image ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  desired_state text NOT NULL DEFAULT 'running' CHECK (desired_state IN ('running', 'stopped')),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'starting', 'running', 'stopping', 'stopped', 'failed')),
  memory_mib integer NOT NULL DEFAULT 128 CHECK (memory_mib BETWEEN 128 AND 65536),
  vcpus integer NOT NULL DEFAULT 1 CHECK (vcpus BETWEEN 1 AND 32),
  boot_timeout_seconds integer NOT NULL DEFAULT 60 CHECK (boot_timeout_seconds BETWEEN 5 AND 3600),
  stop_timeout_seconds integer NOT NULL DEFAULT 20 CHECK (stop_timeout_seconds BETWEEN 1 AND 600),
  error text,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  superseded_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployments_project_idx ON deployments (project_id, created_at DESC);
CREATE UNIQUE INDEX deployments_one_current_per_service
  ON deployments (project_id, service) WHERE superseded_at IS NULL;

CREATE TABLE vms (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  server_id uuid NOT NULL REFERENCES servers (id),
  purpose text NOT NULL CHECK (purpose IN ('workload', 'verify')),
  project_volume_id uuid REFERENCES project_volumes (id) ON DELETE SET NULL,
  runtime text NOT NULL,
  status text NOT NULL DEFAULT 'booting'
    CHECK (status IN ('booting', 'running', 'stopping', 'stopped', 'crashed')),
  exit_reason text CHECK (exit_reason IN ('powerdown', 'killed', 'crashed', 'lost')),
  memory_mib integer NOT NULL,
  vcpus integer NOT NULL,
  error text,
  started_at timestamptz NOT NULL DEFAULT now(),
  ready_at timestamptz,
  stopped_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX vms_one_live_per_volume ON vms (project_volume_id)
  WHERE status IN ('booting', 'running', 'stopping');
CREATE INDEX vms_server_live_idx ON vms (server_id)
  WHERE status IN ('booting', 'running', 'stopping');

CREATE TABLE deployment_instances (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  deployment_id uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  server_id uuid NOT NULL REFERENCES servers (id),
  vm_id uuid REFERENCES vms (id) ON DELETE SET NULL,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'starting', 'running', 'stopping', 'stopped', 'failed')),
  -- host:port the edge routes to while the instance runs.
  address text,
  error text,
  started_at timestamptz,
  ready_at timestamptz,
  stopped_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployment_instances_deployment_idx
  ON deployment_instances (deployment_id, created_at DESC);
CREATE INDEX deployment_instances_server_live_idx ON deployment_instances (server_id)
  WHERE status IN ('pending', 'starting', 'running', 'stopping');
)sql";

// Retention rules beside the reference's backup_retention_count (which is
// keep_last): the newest backup of each of the N newest hours, days, ISO
// weeks, months and years that have one (engine/retention.h). 0: off.
constexpr std::string_view kRetentionPolicySchema = R"sql(
ALTER TABLE project_volumes
  ADD COLUMN backup_keep_hourly integer NOT NULL DEFAULT 0
    CHECK (backup_keep_hourly BETWEEN 0 AND 100000),
  ADD COLUMN backup_keep_daily integer NOT NULL DEFAULT 0
    CHECK (backup_keep_daily BETWEEN 0 AND 100000),
  ADD COLUMN backup_keep_weekly integer NOT NULL DEFAULT 0
    CHECK (backup_keep_weekly BETWEEN 0 AND 100000),
  ADD COLUMN backup_keep_monthly integer NOT NULL DEFAULT 0
    CHECK (backup_keep_monthly BETWEEN 0 AND 100000),
  ADD COLUMN backup_keep_yearly integer NOT NULL DEFAULT 0
    CHECK (backup_keep_yearly BETWEEN 0 AND 100000);
)sql";

// Backup schedules beyond the reference's daily/weekly: 'cron' with a
// 5-field expression, and for every schedule a time window (local start
// 'HH:MM' and duration) in a time zone (control/backup_schedule.h).
// backup_next_at is the next slot, set when the schedule changes and moved
// on by the leader in the transaction that queues (or gives up) that slot:
// what makes a slot run exactly once whichever processes schedule.
constexpr std::string_view kBackupSchedulesSchema = R"sql(
ALTER TABLE project_volumes DROP CONSTRAINT project_volumes_backup_schedule_check;
ALTER TABLE project_volumes
  ADD CONSTRAINT project_volumes_backup_schedule_check
    CHECK (backup_schedule IN ('off', 'manual', 'daily', 'weekly', 'cron')),
  ADD COLUMN backup_cron text CHECK (length(backup_cron) BETWEEN 1 AND 200),
  ADD COLUMN backup_window_start text
    CHECK (backup_window_start ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
  ADD COLUMN backup_window_minutes integer
    CHECK (backup_window_minutes BETWEEN 1 AND 10080),
  ADD COLUMN backup_time_zone text NOT NULL DEFAULT 'UTC'
    CHECK (length(backup_time_zone) BETWEEN 1 AND 64),
  ADD COLUMN backup_next_at timestamptz,
  ADD CONSTRAINT project_volumes_backup_cron_kind_check
    CHECK ((backup_schedule = 'cron') = (backup_cron IS NOT NULL));
)sql";

// Backups an operator pinned are kept whatever the retention policy
// (control/retention.h). verified_at/verify_state: when a verify operation
// last finished on the backup and what it found ('ok', or 'damaged': a chunk
// missing or corrupt, an image digest mismatch); NULL until one did. The
// index finds the verify operations of a scheduled verification round
// (control/backup_verification.h) without reading every operation.
constexpr std::string_view kPinnedVerifiedBackupsSchema = R"sql(
ALTER TABLE project_volume_backups
  ADD COLUMN pinned boolean NOT NULL DEFAULT false,
  ADD COLUMN verified_at timestamptz,
  ADD COLUMN verify_state text CHECK (verify_state IN ('ok', 'damaged')),
  ADD CONSTRAINT project_volume_backups_verified_check
    CHECK ((verified_at IS NULL) = (verify_state IS NULL));
CREATE INDEX project_volume_operations_verify_round_idx
  ON project_volume_operations ((request_metadata->>'verify_round'))
  WHERE kind = 'verify';
)sql";

// Every change to the rows the API serves from its read cache (api/
// read_cache.h) sends a notification on kindling_changes, whoever makes it:
// kindling, another host, or an operator's SQL. The payload is the table.
constexpr std::string_view kChangeNotificationsSchema = R"sql(
CREATE FUNCTION kindling_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('kindling_changes', TG_TABLE_NAME);
  RETURN NULL;
END;
$$;
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['projects', 'project_volumes', 'project_volume_operations',
                           'project_volume_backups', 'servers', 'server_component_statuses']
  LOOP
    EXECUTE format('CREATE TRIGGER kindling_notify_change AFTER INSERT OR UPDATE OR DELETE '
                   'ON %I FOR EACH ROW EXECUTE FUNCTION kindling_notify_change()', t);
    EXECUTE format('CREATE TRIGGER kindling_notify_truncate AFTER TRUNCATE '
                   'ON %I FOR EACH STATEMENT EXECUTE FUNCTION kindling_notify_change()', t);
  END LOOP;
END;
$$;
)sql";

// The notification trigger also lists, in a setting local to the
// transaction, the tables the transaction changed (",name,name,"), so that
// the API can tell its own writes of each table from the others
// (db::ReportChangedTables).
constexpr std::string_view kChangedTablesSchema = R"sql(
CREATE OR REPLACE FUNCTION kindling_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changed text := coalesce(current_setting('kindling.changed_tables', true), '');
BEGIN
  PERFORM pg_notify('kindling_changes', TG_TABLE_NAME);
  IF strpos(changed, ',' || TG_TABLE_NAME || ',') = 0 THEN
    IF changed = '' THEN
      changed := ',';
    END IF;
    PERFORM set_config('kindling.changed_tables', changed || TG_TABLE_NAME || ',', true);
  END IF;
  RETURN NULL;
END;
$$;
)sql";

// Grow operations: PUT .../volume {"size_gb"} above the current size grows
// the image and its filesystem on the worker (kind 'grow').
constexpr std::string_view kGrowOperationsSchema = R"sql(
ALTER TABLE project_volume_operations DROP CONSTRAINT project_volume_operations_kind_check;
ALTER TABLE project_volume_operations ADD CONSTRAINT project_volume_operations_kind_check
  CHECK (kind IN ('backup', 'restore', 'move', 'repair', 'adopt', 'verify', 'grow'));
)sql";

constexpr std::array<Migration, 11> kMigrations = {{
    {1, "initial schema", kInitialSchema},
    {2, "data safety", kDataSafetySchema},
    {3, "backup rescan", kBackupRescanSchema},
    {4, "control-plane backup status", kControlPlaneBackupStatusSchema},
    {5, "workloads", kWorkloadsSchema},
    {6, "retention policies", kRetentionPolicySchema},
    {7, "backup schedules", kBackupSchedulesSchema},
    {8, "pinned and verified backups", kPinnedVerifiedBackupsSchema},
    {9, "change notifications", kChangeNotificationsSchema},
    {10, "changed tables per transaction", kChangedTablesSchema},
    {11, "grow operations", kGrowOperationsSchema},
}};

constexpr std::string_view kCreateMigrationsTable = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
))sql";

// Versions recorded so far (empty when schema_migrations does not exist).
Result<std::set<int>> AppliedVersions(Database& db) {
  return db.Transact(
      [](Tx& tx) -> Result<std::set<int>> {
        return internal::Run(
            tx, "read schema_migrations", [](pqxx::transaction_base& w) -> Result<std::set<int>> {
              std::set<int> versions;
              const pqxx::row exists =
                  w.exec1("SELECT to_regclass('schema_migrations') IS NOT NULL");
              if (!exists[0].as<bool>()) return versions;
              for (const auto& row : w.exec("SELECT version FROM schema_migrations"))
                versions.insert(row[0].as<int>());
              return versions;
            });
      },
      TxOptions{.read_only = true});
}

// Applies `m` unless another process did; true when this call applied it.
Result<bool> Apply(Database& db, const Migration& m) {
  return db.Transact([&m](Tx& tx) -> Result<bool> {
    const std::string context =
        "migration " + std::to_string(m.version) + " (" + std::string(m.name) + ")";
    return internal::Run(tx, context, [&m](pqxx::transaction_base& w) -> Result<bool> {
      internal::Exec(w, "SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
      w.exec(std::string(kCreateMigrationsTable));
      if (!internal::Exec(w, "SELECT 1 FROM schema_migrations WHERE version = $1", m.version)
               .empty())
        return false;
      w.exec(std::string(m.sql));
      internal::Exec(w, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version,
                     std::string(m.name));
      return true;
    });
  });
}

}  // namespace

std::span<const Migration> AllMigrations() { return kMigrations; }

Result<MigrationReport> RunMigrations(Database& db) {
  MigrationReport report;
  // Up-to-date databases (every start after the first) take no lock.
  KINDLING_ASSIGN_OR_RETURN(std::set<int> applied, AppliedVersions(db));
  for (const Migration& m : kMigrations) {
    if (applied.contains(m.version)) continue;
    KINDLING_ASSIGN_OR_RETURN(bool did, Apply(db, m));
    if (did) ++report.applied;
  }
  KINDLING_ASSIGN_OR_RETURN(report.schema_version, SchemaVersion(db));
  return report;
}

Result<int> SchemaVersion(Database& db) {
  KINDLING_ASSIGN_OR_RETURN(std::set<int> applied, AppliedVersions(db));
  return applied.empty() ? 0 : *applied.rbegin();
}

}  // namespace kindling::db
