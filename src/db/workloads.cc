#include "db/workloads.h"

#include "db/internal.h"

namespace kindling::db {
namespace {

using internal::OptText;
using internal::OptTime;
using internal::Text;
using internal::Time;

constexpr char kDeploymentColumns[] =
    "id, project_id, service, image, desired_state, status, memory_mib, vcpus, "
    "boot_timeout_seconds, stop_timeout_seconds, error, created_by, superseded_at, created_at, "
    "updated_at";

Deployment DeploymentFromRow(const pqxx::row& r) {
  Deployment d;
  d.id = Text(r[0]);
  d.project_id = Text(r[1]);
  d.service = Text(r[2]);
  d.image = Text(r[3]);
  d.desired_state = internal::Enum<DesiredState>(r[4]);
  d.status = internal::Enum<WorkloadStatus>(r[5]);
  d.memory_mib = r[6].as<int>();
  d.vcpus = r[7].as<int>();
  d.boot_timeout_seconds = r[8].as<int>();
  d.stop_timeout_seconds = r[9].as<int>();
  d.error = OptText(r[10]);
  d.created_by = OptText(r[11]);
  d.superseded_at = OptTime(r[12]);
  d.created_at = Time(r[13]);
  d.updated_at = Time(r[14]);
  return d;
}

constexpr char kInstanceColumns[] =
    "id, deployment_id, server_id, vm_id, status, address, error, started_at, ready_at, "
    "stopped_at, created_at, updated_at";

Instance InstanceFromRow(const pqxx::row& r) {
  Instance i;
  i.id = Text(r[0]);
  i.deployment_id = Text(r[1]);
  i.server_id = Text(r[2]);
  i.vm_id = OptText(r[3]);
  i.status = internal::Enum<WorkloadStatus>(r[4]);
  i.address = OptText(r[5]);
  i.error = OptText(r[6]);
  i.started_at = OptTime(r[7]);
  i.ready_at = OptTime(r[8]);
  i.stopped_at = OptTime(r[9]);
  i.created_at = Time(r[10]);
  i.updated_at = Time(r[11]);
  return i;
}

constexpr char kVmColumns[] =
    "id, server_id, purpose, project_volume_id, runtime, status, exit_reason, memory_mib, vcpus, "
    "error, started_at, ready_at, stopped_at, created_at, updated_at";

Vm VmFromRow(const pqxx::row& r) {
  Vm v;
  v.id = Text(r[0]);
  v.server_id = Text(r[1]);
  v.purpose = internal::Enum<VmPurpose>(r[2]);
  v.project_volume_id = OptText(r[3]);
  v.runtime = Text(r[4]);
  v.status = internal::Enum<VmStatus>(r[5]);
  if (!r[6].is_null()) v.exit_reason = internal::Enum<VmExit>(r[6]);
  v.memory_mib = r[7].as<int>();
  v.vcpus = r[8].as<int>();
  v.error = OptText(r[9]);
  v.started_at = Time(r[10]);
  v.ready_at = OptTime(r[11]);
  v.stopped_at = OptTime(r[12]);
  v.created_at = Time(r[13]);
  v.updated_at = Time(r[14]);
  return v;
}

template <typename E>
std::optional<std::string> OptName(const std::optional<E>& value) {
  if (!value) return std::nullopt;
  return std::string(Name(*value));
}

std::string Sql(std::string_view head, std::string_view columns, std::string_view tail = "") {
  return std::string(head) + std::string(columns) + std::string(tail);
}

// "<server_id>:<what>:<id>" on kindling_workloads.
void Announce(pqxx::transaction_base& w, const std::string& server_id, std::string_view what,
              const std::string& id) {
  internal::Notify(w, kWorkloadsChannel, server_id + ":" + std::string(what) + ":" + id);
}

// Every server with a live instance of the deployment hears of a change to
// it; with none, the edge still must ("-" for no server).
void AnnounceDeployment(pqxx::transaction_base& w, const std::string& deployment_id) {
  const pqxx::result servers =
      internal::Exec(w,
                     "SELECT DISTINCT server_id FROM deployment_instances WHERE deployment_id = "
                     "$1::uuid AND status IN ('pending', 'starting', 'running', 'stopping')",
                     deployment_id);
  if (servers.empty()) Announce(w, "-", "deployment", deployment_id);
  for (const auto& row : servers) Announce(w, Text(row[0]), "deployment", deployment_id);
}

}  // namespace

Result<DeploymentCreated> CreateDeployment(Tx& tx, const NewDeployment& d) {
  return internal::Run(
      tx, "create deployment", [&](pqxx::transaction_base& w) -> Result<DeploymentCreated> {
        DeploymentCreated created;
        const pqxx::result current = internal::Exec(
            w,
            Sql("UPDATE deployments SET superseded_at = now(), desired_state = 'stopped', "
                "updated_at = now() WHERE project_id = $1::uuid AND service = $2 AND "
                "superseded_at IS NULL RETURNING ",
                kDeploymentColumns),
            d.project_id, d.service);
        if (!current.empty()) {
          created.superseded = DeploymentFromRow(current[0]);
          AnnounceDeployment(w, created.superseded->id);
        }
        created.deployment = DeploymentFromRow(internal::Exec1(
            w,
            Sql("INSERT INTO deployments (project_id, service, image, memory_mib, vcpus, "
                "boot_timeout_seconds, stop_timeout_seconds, created_by) VALUES ($1::uuid, $2, $3, "
                "$4, $5, $6, $7, $8::uuid) RETURNING ",
                kDeploymentColumns),
            d.project_id, d.service, d.image, d.memory_mib, d.vcpus, d.boot_timeout_seconds,
            d.stop_timeout_seconds, d.created_by));
        return created;
      });
}

Result<Deployment> GetDeployment(Tx& tx, const std::string& id, bool for_update) {
  return internal::Run(tx, "get deployment", [&](pqxx::transaction_base& w) -> Result<Deployment> {
    const pqxx::result rows =
        internal::Exec(w,
                       Sql("SELECT ", kDeploymentColumns,
                           for_update ? " FROM deployments WHERE id = $1::uuid FOR UPDATE"
                                      : " FROM deployments WHERE id = $1::uuid"),
                       id);
    if (rows.empty()) return NotFound("deployment " + id + " not found");
    return DeploymentFromRow(rows[0]);
  });
}

Result<std::optional<Deployment>> FindCurrentDeployment(Tx& tx, const std::string& project_id,
                                                        const std::string& service,
                                                        bool for_update) {
  return internal::Run(
      tx, "find deployment", [&](pqxx::transaction_base& w) -> Result<std::optional<Deployment>> {
        const pqxx::result rows = internal::Exec(
            w,
            Sql("SELECT ", kDeploymentColumns,
                std::string(" FROM deployments WHERE project_id = $1::uuid AND service = $2 AND "
                            "superseded_at IS NULL") +
                    (for_update ? " FOR UPDATE" : "")),
            project_id, service);
        if (rows.empty()) return std::optional<Deployment>();
        return std::optional<Deployment>(DeploymentFromRow(rows[0]));
      });
}

Result<std::vector<Deployment>> ListDeployments(Tx& tx, const std::string& project_id) {
  return internal::Run(
      tx, "list deployments", [&](pqxx::transaction_base& w) -> Result<std::vector<Deployment>> {
        std::vector<Deployment> out;
        for (const auto& row : internal::Exec(
                 w,
                 Sql("SELECT ", kDeploymentColumns,
                     " FROM deployments WHERE project_id = $1::uuid ORDER BY created_at DESC, id"),
                 project_id))
          out.push_back(DeploymentFromRow(row));
        return out;
      });
}

Result<Deployment> UpdateDeployment(Tx& tx, const std::string& id, const DeploymentUpdate& u) {
  return internal::Run(
      tx, "update deployment", [&](pqxx::transaction_base& w) -> Result<Deployment> {
        const pqxx::result rows = internal::Exec(
            w,
            Sql("UPDATE deployments SET desired_state = COALESCE($2, desired_state), "
                "status = COALESCE($3, status), "
                "error = CASE WHEN $4 THEN $5 ELSE error END, updated_at = now() "
                "WHERE id = $1::uuid RETURNING ",
                kDeploymentColumns),
            id, OptName(u.desired_state), OptName(u.status), u.error.has_value(),
            u.error.value_or(std::nullopt));
        if (rows.empty()) return NotFound("deployment " + id + " not found");
        AnnounceDeployment(w, id);
        return DeploymentFromRow(rows[0]);
      });
}

Result<Instance> CreateInstance(Tx& tx, const std::string& deployment_id,
                                const std::string& server_id) {
  return internal::Run(tx, "create instance", [&](pqxx::transaction_base& w) -> Result<Instance> {
    Instance instance = InstanceFromRow(internal::Exec1(
        w,
        Sql("INSERT INTO deployment_instances (deployment_id, server_id) VALUES ($1::uuid, "
            "$2::uuid) RETURNING ",
            kInstanceColumns),
        deployment_id, server_id));
    Announce(w, server_id, "instance", instance.id);
    return instance;
  });
}

Result<Instance> GetInstance(Tx& tx, const std::string& id, bool for_update) {
  return internal::Run(tx, "get instance", [&](pqxx::transaction_base& w) -> Result<Instance> {
    const pqxx::result rows =
        internal::Exec(w,
                       Sql("SELECT ", kInstanceColumns,
                           for_update ? " FROM deployment_instances WHERE id = $1::uuid FOR UPDATE"
                                      : " FROM deployment_instances WHERE id = $1::uuid"),
                       id);
    if (rows.empty()) return NotFound("instance " + id + " not found");
    return InstanceFromRow(rows[0]);
  });
}

Result<std::vector<Instance>> ListInstances(Tx& tx, const InstanceFilter& f) {
  return internal::Run(
      tx, "list instances", [&](pqxx::transaction_base& w) -> Result<std::vector<Instance>> {
        std::vector<Instance> out;
        for (const auto& row : internal::Exec(
                 w,
                 Sql("SELECT ", kInstanceColumns,
                     " FROM deployment_instances WHERE ($1::uuid IS NULL OR deployment_id = "
                     "$1::uuid) AND ($2::uuid IS NULL OR server_id = $2::uuid) AND (NOT $3 OR "
                     "status IN ('pending', 'starting', 'running', 'stopping')) "
                     "ORDER BY created_at, id"),
                 f.deployment_id, f.server_id, f.live_only))
          out.push_back(InstanceFromRow(row));
        return out;
      });
}

Result<Instance> UpdateInstance(Tx& tx, const std::string& id, const InstanceUpdate& u) {
  return internal::Run(tx, "update instance", [&](pqxx::transaction_base& w) -> Result<Instance> {
    const pqxx::result rows = internal::Exec(
        w,
        Sql("UPDATE deployment_instances SET status = COALESCE($2, status), "
            "vm_id = CASE WHEN $3 THEN $4::uuid ELSE vm_id END, "
            "address = CASE WHEN $5 THEN $6 ELSE address END, "
            "error = CASE WHEN $7 THEN $8 ELSE error END, "
            "started_at = CASE WHEN $2 = 'starting' THEN now() ELSE started_at END, "
            "ready_at = CASE WHEN $2 = 'running' THEN now() ELSE ready_at END, "
            "stopped_at = CASE WHEN $2 IN ('stopped', 'failed') THEN now() ELSE stopped_at END, "
            "updated_at = now() WHERE id = $1::uuid RETURNING ",
            kInstanceColumns),
        id, OptName(u.status), u.vm_id.has_value(), u.vm_id.value_or(std::nullopt),
        u.address.has_value(), u.address.value_or(std::nullopt), u.error.has_value(),
        u.error.value_or(std::nullopt));
    if (rows.empty()) return NotFound("instance " + id + " not found");
    Instance instance = InstanceFromRow(rows[0]);
    Announce(w, instance.server_id, "instance", instance.id);
    return instance;
  });
}

Result<Vm> CreateVm(Tx& tx, const NewVm& vm) {
  return internal::Run(tx, "create vm", [&](pqxx::transaction_base& w) -> Result<Vm> {
    if (vm.project_volume_id) {
      // The unique index is the guarantee; this names the holder.
      const pqxx::result holder = internal::Exec(
          w,
          "SELECT id, server_id, status FROM vms WHERE project_volume_id = $1::uuid AND status "
          "IN ('booting', 'running', 'stopping')",
          *vm.project_volume_id);
      if (!holder.empty())
        return MakeError(ErrorKind::kAlreadyExists, "volume " + *vm.project_volume_id +
                                                        " is attached to VM " + Text(holder[0][0]) +
                                                        " (" + Text(holder[0][2]) + ") on server " +
                                                        Text(holder[0][1]));
    }
    return VmFromRow(internal::Exec1(
        w,
        Sql("INSERT INTO vms (server_id, purpose, project_volume_id, runtime, memory_mib, vcpus) "
            "VALUES ($1::uuid, $2, $3::uuid, $4, $5, $6) RETURNING ",
            kVmColumns),
        vm.server_id, std::string(Name(vm.purpose)), vm.project_volume_id, vm.runtime,
        vm.memory_mib, vm.vcpus));
  });
}

Result<Vm> GetVm(Tx& tx, const std::string& id, bool for_update) {
  return internal::Run(tx, "get vm", [&](pqxx::transaction_base& w) -> Result<Vm> {
    const pqxx::result rows =
        internal::Exec(w,
                       Sql("SELECT ", kVmColumns,
                           for_update ? " FROM vms WHERE id = $1::uuid FOR UPDATE"
                                      : " FROM vms WHERE id = $1::uuid"),
                       id);
    if (rows.empty()) return NotFound("VM " + id + " not found");
    return VmFromRow(rows[0]);
  });
}

Result<std::vector<Vm>> ListVms(Tx& tx, const VmFilter& f) {
  return internal::Run(tx, "list vms", [&](pqxx::transaction_base& w) -> Result<std::vector<Vm>> {
    std::vector<Vm> out;
    for (const auto& row :
         internal::Exec(w,
                        Sql("SELECT ", kVmColumns,
                            " FROM vms WHERE ($1::uuid IS NULL OR server_id = $1::uuid) AND "
                            "($2::uuid IS NULL OR project_volume_id = $2::uuid) AND (NOT $3 OR "
                            "status IN ('booting', 'running', 'stopping')) AND (NOT $4 OR "
                            "server_id IN (SELECT id FROM servers WHERE status = 'dead')) "
                            "ORDER BY created_at, id"),
                        f.server_id, f.project_volume_id, f.live_only, f.on_dead_servers))
      out.push_back(VmFromRow(row));
    return out;
  });
}

Result<Vm> UpdateVm(Tx& tx, const std::string& id, const VmUpdate& u) {
  return internal::Run(tx, "update vm", [&](pqxx::transaction_base& w) -> Result<Vm> {
    const pqxx::result rows = internal::Exec(
        w,
        Sql("UPDATE vms SET status = COALESCE($2, status), "
            "exit_reason = COALESCE($3, exit_reason), "
            "error = CASE WHEN $4 THEN $5 ELSE error END, "
            "ready_at = CASE WHEN $2 = 'running' THEN now() ELSE ready_at END, "
            "stopped_at = CASE WHEN $2 IN ('stopped', 'crashed') THEN now() ELSE stopped_at END, "
            "updated_at = now() WHERE id = $1::uuid RETURNING ",
            kVmColumns),
        id, OptName(u.status), OptName(u.exit_reason), u.error.has_value(),
        u.error.value_or(std::nullopt));
    if (rows.empty()) return NotFound("VM " + id + " not found");
    return VmFromRow(rows[0]);
  });
}

Result<Volume> ReleaseVolume(Tx& tx, const std::string& volume_id, const std::string& vm_id,
                             VolumeStatus status, const std::optional<std::string>& last_error) {
  KINDLING_ASSIGN_OR_RETURN(Volume volume, GetVolume(tx, volume_id, true));
  if (volume.attached_vm_id && *volume.attached_vm_id != vm_id) return volume;
  VolumeStateUpdate update;
  if (volume.attached_vm_id) update.attached_vm_id = SetNull();
  if (volume.status == VolumeStatus::kAttached) update.status = status;
  if (last_error) update.last_error = SetTo(*last_error);
  if (!update.attached_vm_id && !update.status && !update.last_error) return volume;
  return UpdateVolumeState(tx, volume_id, update);
}

Result<EndedVm> EndLostVm(Tx& tx, const LostVm& lost) {
  EndedVm out;
  // The volume's row before the VM's, as every writer of both locks them.
  KINDLING_ASSIGN_OR_RETURN(const Vm seen, GetVm(tx, lost.vm_id));
  if (seen.project_volume_id)
    KINDLING_RETURN_IF_ERROR(GetVolume(tx, *seen.project_volume_id, true));
  KINDLING_ASSIGN_OR_RETURN(out.vm, GetVm(tx, lost.vm_id, true));
  if (!IsLive(out.vm.status)) return out;
  KINDLING_ASSIGN_OR_RETURN(
      std::optional<std::string> instance_id,
      internal::Run(tx, "find instance of vm",
                    [&](pqxx::transaction_base& w) -> Result<std::optional<std::string>> {
                      const pqxx::result rows = internal::Exec(
                          w,
                          "SELECT id FROM deployment_instances WHERE vm_id = $1::uuid AND status "
                          "IN ('starting', 'running', 'stopping') ORDER BY created_at, id "
                          "FOR UPDATE",
                          lost.vm_id);
                      if (rows.empty()) return std::optional<std::string>();
                      return std::optional<std::string>(Text(rows[0][0]));
                    }));
  if (out.vm.project_volume_id) {
    KINDLING_ASSIGN_OR_RETURN(out.volume, ReleaseVolume(tx, *out.vm.project_volume_id, out.vm.id,
                                                        lost.volume_status, lost.volume_error));
  }
  KINDLING_ASSIGN_OR_RETURN(out.vm, UpdateVm(tx, out.vm.id,
                                             VmUpdate{.status = VmStatus::kCrashed,
                                                      .exit_reason = VmExit::kLost,
                                                      .error = SetTo(lost.error)}));
  if (instance_id) {
    KINDLING_ASSIGN_OR_RETURN(out.instance,
                              UpdateInstance(tx, *instance_id,
                                             InstanceUpdate{.status = WorkloadStatus::kFailed,
                                                            .address = SetNull(),
                                                            .error = SetTo(lost.error)}));
  }
  out.ended = true;
  return out;
}

Result<std::vector<RouteRow>> ListRoutes(Tx& tx) {
  return internal::Run(
      tx, "list routes", [&](pqxx::transaction_base& w) -> Result<std::vector<RouteRow>> {
        std::vector<RouteRow> out;
        for (const auto& row : w.exec(
                 "SELECT p.id, p.name, d.service, d.id, i.id, i.address "
                 "FROM deployments d JOIN projects p ON p.id = d.project_id "
                 "LEFT JOIN deployment_instances i ON i.deployment_id = d.id AND "
                 "i.status = 'running' AND i.address IS NOT NULL AND d.desired_state = 'running' "
                 "WHERE d.superseded_at IS NULL "
                 "ORDER BY p.name, d.service, i.created_at, i.id")) {
          out.push_back(RouteRow{.project_id = Text(row[0]),
                                 .project_name = Text(row[1]),
                                 .service = Text(row[2]),
                                 .deployment_id = Text(row[3]),
                                 .instance_id = OptText(row[4]),
                                 .address = OptText(row[5])});
        }
        return out;
      });
}

std::string ProjectSlug(std::string_view project_name) {
  std::string slug;
  for (const char c : project_name) {
    if (slug.size() == 40) break;
    // One '-' per UTF-8 character, not per byte: continuation bytes add none.
    if ((static_cast<unsigned char>(c) & 0xC0) == 0x80) continue;
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    const bool keep = (lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9') || c == '-';
    slug += keep ? lower : '-';
  }
  return slug;
}

std::string ServiceHostname(std::string_view service, std::string_view project_name,
                            std::string_view base_domain) {
  std::string host = std::string(service) + "-" + ProjectSlug(project_name);
  if (!base_domain.empty()) host += "." + std::string(base_domain);
  return host;
}

}  // namespace kindling::db
