// Value types shared by the table families: timestamps and the enumerations
// the schema constrains with CHECK (names are the strings stored in the
// columns, as in the reference system).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kindling::db {

// A point in time as PostgreSQL's timestamptz stores it (microseconds, UTC).
// Times written by db/ functions come from the database's clock (now()), so
// hosts with skewed clocks still agree on heartbeats and leases.
using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;

// "2024-05-01 12:34:56.123456+00", the form PostgreSQL reads and prints.
std::string FormatTimestamp(Timestamp t);
// Parses PostgreSQL's ISO output ("YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM[:SS]]").
std::optional<Timestamp> ParseTimestamp(std::string_view text);

enum class ServerStatus : std::uint8_t { kActive, kDraining, kDrained, kDead };
enum class ComponentHealth : std::uint8_t { kHealthy, kDegraded };
enum class OrgRole : std::uint8_t { kOwner, kAdmin, kMember };
enum class VolumeStatus : std::uint8_t {
  kDetached,
  kAvailable,
  kAttached,
  kUnavailable,
  kBackingUp,
  kRestoring,
  kRepairing,
  kDeleting,
};
enum class VolumeHealth : std::uint8_t { kUnknown, kHealthy, kDegraded, kMissing, kCorrupt };
enum class BackupSchedule : std::uint8_t { kOff, kManual, kDaily, kWeekly, kCron };
// kGrow: the image and its ext4 filesystem grown to request_metadata.size_gb.
enum class OperationKind : std::uint8_t {
  kBackup,
  kRestore,
  kMove,
  kRepair,
  kAdopt,
  kVerify,
  kGrow
};
enum class OperationStatus : std::uint8_t { kPending, kRunning, kSucceeded, kFailed };
enum class BackupKind : std::uint8_t { kManual, kScheduled, kPreDelete };
enum class BackupStatus : std::uint8_t { kPending, kRunning, kSucceeded, kFailed, kDamaged };
// What the last verify of a backup found (backups.h).
enum class VerifyState : std::uint8_t { kOk, kDamaged };
// Why an image was taken off a worker into quarantine (quarantine.h).
enum class QuarantineReason : std::uint8_t { kReplaced, kDeleted, kConflict, kUnknownVolume };
enum class QuarantineStatus : std::uint8_t { kHeld, kAdopted, kPurged };
// Workloads (workloads.h). What the operator asked a deployment to be:
enum class DesiredState : std::uint8_t { kRunning, kStopped };
// What a deployment or one of its instances is (a deployment mirrors its
// newest instance).
enum class WorkloadStatus : std::uint8_t {
  kPending,
  kStarting,
  kRunning,
  kStopping,
  kStopped,
  kFailed,
};
enum class VmPurpose : std::uint8_t { kWorkload, kVerify };
enum class VmStatus : std::uint8_t { kBooting, kRunning, kStopping, kStopped, kCrashed };
// How a VM ended: a clean power-down, killed after the stop timeout, died
// on its own, or lost with its worker.
enum class VmExit : std::uint8_t { kPowerdown, kKilled, kCrashed, kLost };

// The column strings of each enumeration, in declaration order.
template <typename E>
struct EnumNames;
template <>
struct EnumNames<ServerStatus> {
  static constexpr std::array<std::string_view, 4> kNames = {"active", "draining", "drained",
                                                             "dead"};
};
template <>
struct EnumNames<ComponentHealth> {
  static constexpr std::array<std::string_view, 2> kNames = {"healthy", "degraded"};
};
template <>
struct EnumNames<OrgRole> {
  static constexpr std::array<std::string_view, 3> kNames = {"owner", "admin", "member"};
};
template <>
struct EnumNames<VolumeStatus> {
  static constexpr std::array<std::string_view, 8> kNames = {
      "detached",   "available", "attached",  "unavailable",
      "backing_up", "restoring", "repairing", "deleting"};
};
template <>
struct EnumNames<VolumeHealth> {
  static constexpr std::array<std::string_view, 5> kNames = {"unknown", "healthy", "degraded",
                                                             "missing", "corrupt"};
};
template <>
struct EnumNames<BackupSchedule> {
  static constexpr std::array<std::string_view, 5> kNames = {"off", "manual", "daily", "weekly",
                                                             "cron"};
};
template <>
struct EnumNames<OperationKind> {
  static constexpr std::array<std::string_view, 7> kNames = {"backup", "restore", "move", "repair",
                                                             "adopt",  "verify",  "grow"};
};
template <>
struct EnumNames<OperationStatus> {
  static constexpr std::array<std::string_view, 4> kNames = {"pending", "running", "succeeded",
                                                             "failed"};
};
template <>
struct EnumNames<BackupKind> {
  static constexpr std::array<std::string_view, 3> kNames = {"manual", "scheduled", "pre_delete"};
};
template <>
struct EnumNames<BackupStatus> {
  static constexpr std::array<std::string_view, 5> kNames = {"pending", "running", "succeeded",
                                                             "failed", "damaged"};
};
template <>
struct EnumNames<VerifyState> {
  static constexpr std::array<std::string_view, 2> kNames = {"ok", "damaged"};
};
template <>
struct EnumNames<QuarantineReason> {
  static constexpr std::array<std::string_view, 4> kNames = {"replaced", "deleted", "conflict",
                                                             "unknown_volume"};
};
template <>
struct EnumNames<QuarantineStatus> {
  static constexpr std::array<std::string_view, 3> kNames = {"held", "adopted", "purged"};
};

template <>
struct EnumNames<DesiredState> {
  static constexpr std::array<std::string_view, 2> kNames = {"running", "stopped"};
};
template <>
struct EnumNames<WorkloadStatus> {
  static constexpr std::array<std::string_view, 6> kNames = {"pending",  "starting", "running",
                                                             "stopping", "stopped",  "failed"};
};
template <>
struct EnumNames<VmPurpose> {
  static constexpr std::array<std::string_view, 2> kNames = {"workload", "verify"};
};
template <>
struct EnumNames<VmStatus> {
  static constexpr std::array<std::string_view, 5> kNames = {"booting", "running", "stopping",
                                                             "stopped", "crashed"};
};
template <>
struct EnumNames<VmExit> {
  static constexpr std::array<std::string_view, 4> kNames = {"powerdown", "killed", "crashed",
                                                             "lost"};
};

template <typename E>
constexpr std::string_view Name(E value) {
  return EnumNames<E>::kNames[static_cast<std::size_t>(value)];
}

template <typename E>
constexpr std::optional<E> ParseEnum(std::string_view name) {
  const auto& names = EnumNames<E>::kNames;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<E>(i);
  }
  return std::nullopt;
}

// Statuses a volume holds while an operation works on it; a volume in one of
// them is "busy" and takes no new operation.
constexpr bool IsTransitional(VolumeStatus status) {
  return status == VolumeStatus::kBackingUp || status == VolumeStatus::kRestoring ||
         status == VolumeStatus::kRepairing || status == VolumeStatus::kDeleting;
}

// A VM that holds its volume: booting, running or stopping.
constexpr bool IsLive(VmStatus status) {
  return status == VmStatus::kBooting || status == VmStatus::kRunning ||
         status == VmStatus::kStopping;
}
// An instance a worker still has to act on or watch.
constexpr bool IsLive(WorkloadStatus status) {
  return status != WorkloadStatus::kStopped && status != WorkloadStatus::kFailed;
}

constexpr bool IsFinished(OperationStatus status) {
  return status == OperationStatus::kSucceeded || status == OperationStatus::kFailed;
}

}  // namespace kindling::db
