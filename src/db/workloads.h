// Workloads: deployments, their instances, and the VMs they run in
// (migration 5).
//
// A deployment is what an operator asked to run for a project's service: a
// guest image with its resources, and a desired state (running or stopped).
// A new deployment of the same project and service supersedes the current
// one (superseded_at set, desired state stopped) in the same transaction.
// Each start of a deployment on a worker is an instance row, pinned to that
// worker; the worker boots a VM for it (a vms row), and while the VM runs
// the project's volume names it in attached_vm_id. VMs also boot to check a
// volume's data (purpose verify), with no instance.
//
// Rules the schema keeps: one current deployment per project and service;
// one live VM (booting, running, stopping) per volume, so a volume is never
// attached to two VMs (CreateVm answers kAlreadyExists naming the VM that
// holds it).
//
// Every change a worker or the edge must act on is announced with
// pg_notify('kindling_workloads', "<server_id>:<what>:<id>") when the
// transaction commits: workers wake for the instances of their server, the
// edge reloads its routes on any of them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"
#include "db/volumes.h"

namespace kindling::db {

inline constexpr char kWorkloadsChannel[] = "kindling_workloads";

struct Deployment {
  std::string id{};
  std::string project_id{};
  std::string service{};
  std::string image{};
  DesiredState desired_state = DesiredState::kRunning;
  WorkloadStatus status = WorkloadStatus::kPending;
  int memory_mib = 0;
  int vcpus = 0;
  int boot_timeout_seconds = 0;
  int stop_timeout_seconds = 0;
  std::optional<std::string> error{};
  std::optional<std::string> created_by{};
  std::optional<Timestamp> superseded_at{};
  Timestamp created_at{};
  Timestamp updated_at{};
};

// Defaults are the schema's.
struct NewDeployment {
  std::string project_id{};
  std::string service = "web";
  std::string image{};
  int memory_mib = 128;
  int vcpus = 1;
  int boot_timeout_seconds = 60;
  int stop_timeout_seconds = 20;
  std::optional<std::string> created_by{};
};

struct DeploymentCreated {
  Deployment deployment{};
  // The deployment it superseded, now stopped-desired (nullopt for a first
  // deployment).
  std::optional<Deployment> superseded{};
};

// Inserts the deployment (status pending, desired running) and supersedes
// the project's current deployment of that service. kInvalidArgument for
// values the schema rejects (service or image names, out-of-range
// resources) or an unknown project.
[[nodiscard]] Result<DeploymentCreated> CreateDeployment(Tx& tx, const NewDeployment& deployment);

// kNotFound when missing.
[[nodiscard]] Result<Deployment> GetDeployment(Tx& tx, const std::string& id,
                                               bool for_update = false);

// The project's current (not superseded) deployment of `service`.
[[nodiscard]] Result<std::optional<Deployment>> FindCurrentDeployment(
    Tx& tx, const std::string& project_id, const std::string& service = "web",
    bool for_update = false);

// The project's deployments, newest first.
[[nodiscard]] Result<std::vector<Deployment>> ListDeployments(Tx& tx,
                                                              const std::string& project_id);

// State workers and the control plane change; unset fields are kept.
struct DeploymentUpdate {
  std::optional<DesiredState> desired_state{};
  std::optional<WorkloadStatus> status{};
  NullableChange error{};
};
// kNotFound when missing. Announced to every server holding a live
// instance of it (and to the edge).
[[nodiscard]] Result<Deployment> UpdateDeployment(Tx& tx, const std::string& id,
                                                  const DeploymentUpdate& update);

struct Instance {
  std::string id{};
  std::string deployment_id{};
  std::string server_id{};
  std::optional<std::string> vm_id{};
  WorkloadStatus status = WorkloadStatus::kPending;
  std::optional<std::string> address{};  // host:port, while running
  std::optional<std::string> error{};
  std::optional<Timestamp> started_at{};
  std::optional<Timestamp> ready_at{};
  std::optional<Timestamp> stopped_at{};
  Timestamp created_at{};
  Timestamp updated_at{};
};

// A pending instance of the deployment on `server_id`. kInvalidArgument for
// an unknown deployment or server.
[[nodiscard]] Result<Instance> CreateInstance(Tx& tx, const std::string& deployment_id,
                                              const std::string& server_id);
// kNotFound when missing.
[[nodiscard]] Result<Instance> GetInstance(Tx& tx, const std::string& id, bool for_update = false);

struct InstanceFilter {
  std::optional<std::string> deployment_id{};
  std::optional<std::string> server_id{};
  bool live_only = false;  // pending, starting, running, stopping
};
// Oldest first.
[[nodiscard]] Result<std::vector<Instance>> ListInstances(Tx& tx, const InstanceFilter& filter);

struct InstanceUpdate {
  std::optional<WorkloadStatus> status{};
  NullableChange vm_id{};
  NullableChange address{};
  NullableChange error{};
};
// Sets started_at when it becomes starting, ready_at when running,
// stopped_at when stopped or failed. kNotFound when missing.
[[nodiscard]] Result<Instance> UpdateInstance(Tx& tx, const std::string& id,
                                              const InstanceUpdate& update);

struct Vm {
  std::string id{};
  std::string server_id{};
  VmPurpose purpose = VmPurpose::kWorkload;
  std::optional<std::string> project_volume_id{};
  std::string runtime{};
  VmStatus status = VmStatus::kBooting;
  std::optional<VmExit> exit_reason{};
  int memory_mib = 0;
  int vcpus = 0;
  std::optional<std::string> error{};
  Timestamp started_at{};
  std::optional<Timestamp> ready_at{};
  std::optional<Timestamp> stopped_at{};
  Timestamp created_at{};
  Timestamp updated_at{};
};

struct NewVm {
  std::string server_id{};
  VmPurpose purpose = VmPurpose::kWorkload;
  std::optional<std::string> project_volume_id{};
  std::string runtime{};
  int memory_mib = 128;
  int vcpus = 1;
};
// A booting VM. kAlreadyExists when the volume is attached to a live VM
// (the message names it).
[[nodiscard]] Result<Vm> CreateVm(Tx& tx, const NewVm& vm);
// kNotFound when missing.
[[nodiscard]] Result<Vm> GetVm(Tx& tx, const std::string& id, bool for_update = false);

struct VmFilter {
  std::optional<std::string> server_id{};
  std::optional<std::string> project_volume_id{};
  bool live_only = false;
  bool on_dead_servers = false;  // only VMs of servers whose status is dead
};
// Oldest first.
[[nodiscard]] Result<std::vector<Vm>> ListVms(Tx& tx, const VmFilter& filter);

struct VmUpdate {
  std::optional<VmStatus> status{};
  std::optional<VmExit> exit_reason{};
  NullableChange error{};
};
// Sets ready_at when it becomes running, stopped_at when stopped or
// crashed. kNotFound when missing.
[[nodiscard]] Result<Vm> UpdateVm(Tx& tx, const std::string& id, const VmUpdate& update);

// Lets go of the volume that VM `vm_id` held, with the volume row locked:
// attached_vm_id NULL, `status` when it is attached (a transitional status
// an operation set stays), last_error `last_error` when given. Nothing
// changes when another VM holds the volume now. Returns the row as it is
// afterwards. kNotFound for an unknown volume.
[[nodiscard]] Result<Volume> ReleaseVolume(Tx& tx, const std::string& volume_id,
                                           const std::string& vm_id, VolumeStatus status,
                                           const std::optional<std::string>& last_error);

// A VM whose worker lost it: the worker process was killed, or its server
// is dead.
struct LostVm {
  std::string vm_id{};
  std::string error{};  // the VM's error and its instance's
  // What ReleaseVolume does with the volume the VM held.
  VolumeStatus volume_status = VolumeStatus::kDetached;
  std::optional<std::string> volume_error{};
};
struct EndedVm {
  // False when the VM was no longer live (another writer ended it first):
  // nothing changed.
  bool ended = false;
  Vm vm{};
  // The instance it ran (starting, running or stopping), now failed.
  std::optional<Instance> instance{};
  // The volume afterwards, when the VM had one.
  std::optional<Volume> volume{};
};
// Records a lost VM, the volume row locked first, then the VM's: the VM
// crashed with exit_reason lost, its instance failed (no address), its
// volume released (ReleaseVolume). The deployment is the caller's business.
// Announced like UpdateInstance. kNotFound for an unknown VM.
[[nodiscard]] Result<EndedVm> EndLostVm(Tx& tx, const LostVm& lost);

// What the edge routes: a row per current deployment, with the instance
// to route to when one runs (a deployment that should run and has a
// running instance with an address), without one otherwise (the edge
// answers 503 for it rather than 404).
struct RouteRow {
  std::string project_id{};
  std::string project_name{};
  std::string service{};
  std::string deployment_id{};
  std::optional<std::string> instance_id{};
  std::optional<std::string> address{};
};
[[nodiscard]] Result<std::vector<RouteRow>> ListRoutes(Tx& tx);

// The reference's naming of a project for hostnames: lower case, every
// character outside [a-z0-9-] becomes '-', at most 40 characters.
std::string ProjectSlug(std::string_view project_name);
// "<service>-<project slug>.<base_domain>"; without a base domain,
// "<service>-<project slug>".
std::string ServiceHostname(std::string_view service, std::string_view project_name,
                            std::string_view base_domain);

}  // namespace kindling::db
