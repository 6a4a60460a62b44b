#include "reconcile/workload_reconciler.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "db/operations.h"
#include "db/servers.h"
#include "db/volumes.h"
#include "reconcile/volume_images.h"
#include "runtime/canary/guest_cmdline.h"

namespace kindling::reconcile {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// WaitReady runs in slices this long, so that a stop request (a superseding
// deployment, the worker stopping) is seen during a long boot. Long enough
// for one HTTP probe of a slow (emulated) guest to be answered.
constexpr milliseconds kBootSlice{1000};
constexpr milliseconds kDbRetryPause{500};
constexpr char kWorkerRestarted[] = "the worker restarted while it ran";
constexpr char kWorkerStopped[] = "the worker stopped";

milliseconds Since(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
}

// Text for a database column: guests print anything on their console, and
// PostgreSQL's text refuses NUL bytes and invalid UTF-8. Control characters
// other than newline and tab and every non-ASCII byte become '?'.
std::string Printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\n' && c != '\t') || byte >= 0x7f) c = '?';
  }
  return out;
}

// `message` with the console's tail (what the guest printed last), for the
// instance's error; logs get `message` alone.
std::string WithConsole(const std::string& message, const std::filesystem::path& console) {
  const std::string tail = vmm::FileTail(console);
  return tail.empty() ? message : message + "; console:\n" + tail;
}

bool Wanted(const db::Deployment& deployment) {
  return !deployment.superseded_at && deployment.desired_state == db::DesiredState::kRunning;
}

std::string JoinNames(const GuestImageCatalogue& images) {
  std::string names;
  for (const auto& [name, image] : images) names += (names.empty() ? "" : ", ") + name;
  return names.empty() ? "none" : names;
}

// A pending instance on the volume's server for a deployment that is current
// and desired running and has no live instance (the one that just ended was
// updated before); its status becomes pending with `error`. nullopt when the
// deployment should not run now.
Result<std::optional<db::Instance>> QueueReplacement(db::Tx& tx, const std::string& deployment_id,
                                                     const std::string& error) {
  KINDLING_ASSIGN_OR_RETURN(db::Deployment deployment, db::GetDeployment(tx, deployment_id, true));
  if (!Wanted(deployment)) return std::optional<db::Instance>();
  KINDLING_ASSIGN_OR_RETURN(
      auto live,
      db::ListInstances(tx, db::InstanceFilter{.deployment_id = deployment.id, .live_only = true}));
  if (!live.empty()) return std::optional<db::Instance>();
  KINDLING_ASSIGN_OR_RETURN(auto volume, db::FindProjectVolume(tx, deployment.project_id));
  if (!volume || !volume->server_id) return std::optional<db::Instance>();
  KINDLING_ASSIGN_OR_RETURN(db::Instance instance,
                            db::CreateInstance(tx, deployment.id, *volume->server_id));
  KINDLING_RETURN_IF_ERROR(db::UpdateDeployment(
      tx, deployment.id,
      db::DeploymentUpdate{.status = db::WorkloadStatus::kPending, .error = db::SetTo(error)}));
  return std::optional<db::Instance>(std::move(instance));
}

// After a VM of `deployment_id` ended without a failure: a replacement when
// it should run (see QueueReplacement), else status stopped (a superseded
// deployment too: it mirrors its newest instance).
Status SettleDeployment(db::Tx& tx, const std::string& deployment_id,
                        const std::optional<std::string>& error,
                        const std::string& replacement_note) {
  KINDLING_ASSIGN_OR_RETURN(auto replacement,
                            QueueReplacement(tx, deployment_id, replacement_note));
  if (replacement) return OkStatus();
  KINDLING_RETURN_IF_ERROR(db::UpdateDeployment(
      tx, deployment_id,
      db::DeploymentUpdate{.status = db::WorkloadStatus::kStopped,
                           .error = error ? db::SetTo(*error) : db::SetNull()}));
  return OkStatus();
}

// Each current deployment of the volume's project that is desired running,
// has status stopped (left so by a stop for an operation, or by the leader
// when the worker running it died) and no live instance gets a pending
// instance on the volume's server.
Result<std::vector<db::Instance>> QueueRestarts(db::Tx& tx, const db::Volume& volume) {
  std::vector<db::Instance> out;
  if (volume.deleted_at || !volume.server_id) return out;
  KINDLING_ASSIGN_OR_RETURN(auto deployments, db::ListDeployments(tx, volume.project_id));
  for (const db::Deployment& deployment : deployments) {
    if (!Wanted(deployment) || deployment.status != db::WorkloadStatus::kStopped) continue;
    KINDLING_ASSIGN_OR_RETURN(
        auto live, db::ListInstances(
                       tx, db::InstanceFilter{.deployment_id = deployment.id, .live_only = true}));
    if (!live.empty()) continue;
    KINDLING_ASSIGN_OR_RETURN(db::Instance instance,
                              db::CreateInstance(tx, deployment.id, *volume.server_id));
    KINDLING_RETURN_IF_ERROR(db::UpdateDeployment(
        tx, deployment.id,
        db::DeploymentUpdate{.status = db::WorkloadStatus::kPending, .error = db::SetNull()}));
    out.push_back(std::move(instance));
  }
  return out;
}

// The base cmdline of the canary without its default mount: the reconciler
// appends the volume's.
std::string WithoutParameter(const std::string& cmdline, std::string_view parameter) {
  std::istringstream words(cmdline);
  std::string word, out;
  while (words >> word) {
    if (word.starts_with(std::string(parameter) + "=")) continue;
    out += (out.empty() ? "" : " ") + word;
  }
  return out;
}

// /proc files report size 0: read them as streams (ReadFile sizes by stat).
std::optional<std::string> ReadStream(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Kills the VMM a previous process left running for `vm_id`, when its pid
// file names a process whose command line mentions the VM (pids are reused).
void KillLeftover(const std::filesystem::path& vm_dir, const std::string& vm_id) {
  auto text = ReadStream(vm_dir / "pid");
  if (!text) return;
  int pid = 0;
  try {
    pid = std::stoi(*text);
  } catch (const std::exception&) {
    return;
  }
  if (pid <= 1) return;
  const std::filesystem::path proc = "/proc/" + std::to_string(pid);
  auto cmdline = ReadStream(proc / "cmdline");
  if (!cmdline || cmdline->find(vm_id) == std::string::npos) return;
  if (::kill(pid, SIGKILL) != 0) {
    spdlog::warn("workload: VM {}: cannot kill its VMM (pid {}) left running: errno {}", vm_id, pid,
                 errno);
    return;
  }
  // Until it is gone (or a zombie: its files, and the image's lock, are
  // released then), so that a new VM on the volume is not refused.
  const auto deadline = Clock::now() + seconds(5);
  while (Clock::now() < deadline) {
    auto stat = ReadStream(proc / "stat");
    if (!stat) break;
    const auto close = stat->rfind(')');
    if (close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] == 'Z') break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  spdlog::warn("workload: VM {}: killed the VMM a previous worker process left running (pid {})",
               vm_id, pid);
}

}  // namespace

Result<GuestImageCatalogue> CanaryCatalogue(const std::filesystem::path& guest_dir) {
  GuestImage canary{
      .kernel = guest_dir / "vmlinux",
      .initramfs = guest_dir / "initramfs.cpio.gz",
      .cmdline = WithoutParameter(canary::GuestKernelCmdline({}), "kindling.mount"),
      .mount_parameter = "kindling.mount",
      .guest_port = canary::GuestBoot{}.port,
      .verify_cmdline = WithoutParameter(
          canary::GuestKernelCmdline({.mode = canary::GuestMode::kVerify}), "kindling.mount")};
  std::error_code ec;
  for (const auto& path : {canary.kernel, canary.initramfs}) {
    if (!std::filesystem::is_regular_file(path, ec))
      return NotFound("canary guest: " + path.string() + " is missing (the guest_image target)");
  }
  return GuestImageCatalogue{{kCanaryImage, std::move(canary)}};
}

std::string GuestCmdline(const GuestImage& image, bool verify, const std::string& mount_path) {
  const std::string& base = verify ? image.verify_cmdline : image.cmdline;
  if (image.mount_parameter.empty()) return base;
  return base + " " + image.mount_parameter + "=" + mount_path;
}

std::vector<std::string> ImageNames(const GuestImageCatalogue& catalogue) {
  std::vector<std::string> names;
  for (const auto& [name, image] : catalogue) names.push_back(name);
  return names;
}

std::string DeadWorkerVolumeError(std::string_view worker) {
  return std::string(kDeadWorkerPrefix) + "server " + std::string(worker) +
         " stopped heartbeating; the volume's image is on that server, so the workload starts "
         "again when it is back (or restore the volume on another server)";
}

bool IsDeadWorkerError(const std::optional<std::string>& last_error) {
  return last_error && last_error->starts_with(kDeadWorkerPrefix);
}

std::filesystem::path VmDir(const std::filesystem::path& state_dir, const std::string& vm_id) {
  return state_dir / "vms" / vm_id;
}

// One VM this process runs, and its supervisor thread.
struct WorkloadReconciler::Held {
  struct StopRequest {
    StopReason reason = StopReason::kDesired;
    milliseconds timeout{0};
    std::string why{};
  };

  // Set before the supervisor starts; read-only afterwards.
  db::Instance instance{};
  db::Deployment deployment{};
  db::Vm vm{};
  db::Volume volume{};
  GuestImage image{};
  std::filesystem::path dir{};
  bool busy_marked = false;
  std::thread thread{};

  std::mutex mu;
  std::condition_variable changed;
  // The VM while PauseAround may use it: set once started, cleared before it
  // is stopped or destroyed. PauseAround holds vm_mu for as long as it uses
  // the VM, so a stop waits for its resume.
  std::mutex vm_mu;
  vmm::VmInstance* live = nullptr;    // guarded by vm_mu
  std::optional<StopRequest> stop{};  // guarded by mu
  bool abandon = false;               // guarded by mu
  bool ended = false;                 // guarded by mu
  OperationStop result{};             // guarded by mu; final once ended

  std::string Describe() const {
    return "instance " + instance.id + " (deployment " + deployment.id + ", VM " + vm.id + ")";
  }
};

WorkloadReconciler::WorkloadReconciler(db::Database& db, vmm::Vmm& vmm,
                                       WorkloadReconcilerOptions options)
    : db_(db), vmm_(vmm), options_(std::move(options)) {}

WorkloadReconciler::~WorkloadReconciler() { Shutdown(); }

bool WorkloadReconciler::abandoned() const {
  std::lock_guard lock(mu_);
  return abandoned_;
}

std::string WorkloadReconciler::HolderOf(const std::string& volume_id) const {
  std::lock_guard lock(mu_);
  for (const auto& [id, held] : held_) {
    std::lock_guard held_lock(held->mu);
    if (held->volume.id == volume_id && !held->ended)
      return "VM " + held->vm.id + " of instance " + id + " (" +
             (held->stop ? "stopping" : "running") + ")";
  }
  return "";
}

std::vector<std::string> WorkloadReconciler::HeldInstances() const {
  std::vector<std::string> ids;
  std::lock_guard lock(mu_);
  for (const auto& [id, held] : held_) {
    std::lock_guard held_lock(held->mu);
    if (!held->ended) ids.push_back(id);
  }
  return ids;
}

void WorkloadReconciler::ReapEnded() {
  std::vector<std::shared_ptr<Held>> ended;
  {
    std::lock_guard lock(mu_);
    for (auto it = held_.begin(); it != held_.end();) {
      bool done = false;
      {
        std::lock_guard held_lock(it->second->mu);
        done = it->second->ended;
      }
      if (done) {
        ended.push_back(it->second);
        it = held_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& held : ended)
    if (held->thread.joinable()) held->thread.join();
}

Status WorkloadReconciler::ReconcileOnce() {
  std::lock_guard pass(pass_mu_);
  {
    std::lock_guard lock(mu_);
    if (shut_down_ || abandoned_) return OkStatus();
  }
  ReapEnded();
  Status outcome = ReclaimAfterDeadWorker();
  KINDLING_ASSIGN_OR_RETURN(auto instances, db_.Transact([&](db::Tx& tx) {
    return db::ListInstances(
        tx, db::InstanceFilter{.server_id = options_.server_id, .live_only = true});
  }));
  std::set<std::string> listed;
  for (const db::Instance& instance : instances) {
    listed.insert(instance.id);
    std::shared_ptr<Held> held;
    {
      std::lock_guard lock(mu_);
      if (auto it = held_.find(instance.id); it != held_.end()) held = it->second;
    }
    auto deployment =
        db_.Transact([&](db::Tx& tx) { return db::GetDeployment(tx, instance.deployment_id); });
    if (!deployment) {
      if (outcome) outcome = std::unexpected(deployment.error());
      continue;
    }
    if (held) {
      if (!Wanted(*deployment))
        RequestStop(*held, StopReason::kDesired, seconds(deployment->stop_timeout_seconds),
                    deployment->superseded_at ? "the deployment was superseded"
                                              : "the deployment is stopped");
      continue;
    }
    // Starting, running or stopping without a VM here: a previous process
    // ran it (RecoverAfterRestart's business).
    if (instance.status != db::WorkloadStatus::kPending) continue;
    if (!Wanted(*deployment)) {
      if (auto ended = EndPending(instance, *deployment); !ended && outcome) outcome = ended;
      continue;
    }
    std::string why_waiting;
    auto started = TryStart(instance, *deployment, why_waiting);
    if (!started) {
      spdlog::warn("workload: instance {}: start: {}", instance.id, started.error().message());
      if (outcome) outcome = std::unexpected(started.error());
      continue;
    }
    if (*started == StartOutcome::kWaiting) {
      std::string& logged = waiting_[instance.id];
      if (logged != why_waiting)
        spdlog::info("workload: instance {} waits: {}", instance.id, why_waiting);
      logged = why_waiting;
    }
  }
  std::erase_if(waiting_, [&](const auto& entry) { return !listed.contains(entry.first); });
  // A VM whose instance is no longer live in the database (its rows were
  // ended or deleted behind this worker's back) must not keep the volume.
  if (outcome) {
    std::vector<std::shared_ptr<Held>> orphans;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, held] : held_)
        if (!listed.contains(id)) orphans.push_back(held);
    }
    for (const auto& held : orphans)
      RequestStop(*held, StopReason::kDesired, seconds(held->deployment.stop_timeout_seconds),
                  "its instance is no longer live in the database");
  }
  return outcome;
}

Status WorkloadReconciler::ReclaimAfterDeadWorker() {
  KINDLING_ASSIGN_OR_RETURN(auto pinned, db_.Transact([&](db::Tx& tx) {
    return db::ListVolumes(tx, db::VolumeFilter{.server_id = options_.server_id});
  }));
  Status outcome = OkStatus();
  for (const db::Volume& volume : pinned) {
    if (volume.deleted_at || volume.status != db::VolumeStatus::kUnavailable ||
        !IsDeadWorkerError(volume.last_error))
      continue;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(ImagePath(options_.state_dir, volume.id), ec)) continue;
    auto queued = db_.Transact([&](db::Tx& tx) -> Result<std::optional<std::vector<db::Instance>>> {
      KINDLING_ASSIGN_OR_RETURN(db::Volume current, db::GetVolume(tx, volume.id, true));
      KINDLING_ASSIGN_OR_RETURN(db::Server server, db::GetServer(tx, options_.server_id));
      // Still dead: the leader has not seen a heartbeat since (it would end
      // what this worker starts now).
      if (server.status == db::ServerStatus::kDead || current.deleted_at ||
          current.server_id != options_.server_id ||
          current.status != db::VolumeStatus::kUnavailable ||
          !IsDeadWorkerError(current.last_error))
        return std::optional<std::vector<db::Instance>>();
      KINDLING_ASSIGN_OR_RETURN(
          current,
          db::UpdateVolumeState(tx, volume.id,
                                db::VolumeStateUpdate{.status = db::VolumeStatus::kDetached,
                                                      .last_error = db::SetNull()}));
      KINDLING_ASSIGN_OR_RETURN(auto restarts, QueueRestarts(tx, current));
      return std::optional<std::vector<db::Instance>>(std::move(restarts));
    });
    if (!queued) {
      spdlog::warn("workload: volume {}: {}", volume.id, queued.error().message());
      if (outcome) outcome = std::unexpected(queued.error());
      continue;
    }
    if (!*queued) continue;
    spdlog::info("workload: volume {} is detached again: this worker is back with its image",
                 volume.id);
    for (const db::Instance& instance : **queued)
      spdlog::info("workload: instance {} of deployment {} queued: its worker is back", instance.id,
                   instance.deployment_id);
  }
  return outcome;
}

Status WorkloadReconciler::EndPending(const db::Instance& instance,
                                      const db::Deployment& deployment) {
  const std::string why = deployment.superseded_at
                              ? "the deployment was superseded before this instance started"
                              : "the deployment was stopped before this instance started";
  spdlog::info("workload: instance {}: {}", instance.id, why);
  return db_.Transact([&](db::Tx& tx) -> Status {
    KINDLING_ASSIGN_OR_RETURN(db::Instance current, db::GetInstance(tx, instance.id, true));
    if (current.status != db::WorkloadStatus::kPending) return OkStatus();
    KINDLING_RETURN_IF_ERROR(db::UpdateInstance(
        tx, instance.id,
        db::InstanceUpdate{.status = db::WorkloadStatus::kStopped, .error = db::SetTo(why)}));
    return SettleDeployment(tx, deployment.id, std::nullopt, "");
  });
}

Result<WorkloadReconciler::StartOutcome> WorkloadReconciler::TryStart(
    const db::Instance& instance, const db::Deployment& deployment, std::string& why_waiting) {
  const auto image = options_.images.find(deployment.image);
  auto held = std::make_shared<Held>();
  std::optional<std::string> marked;  // the volume this attempt marked busy
  auto unmark = [&] {
    if (marked && options_.busy) options_.busy->Release(*marked);
    marked.reset();
  };
  auto decided = db_.Transact([&](db::Tx& tx) -> Result<StartOutcome> {
    unmark();  // from an attempt Transact retries
    why_waiting.clear();
    KINDLING_ASSIGN_OR_RETURN(auto volume, db::FindProjectVolume(tx, deployment.project_id, true));
    KINDLING_ASSIGN_OR_RETURN(db::Instance current, db::GetInstance(tx, instance.id, true));
    if (current.status != db::WorkloadStatus::kPending || current.server_id != options_.server_id) {
      why_waiting = "it changed meanwhile";
      return StartOutcome::kWaiting;
    }

    // The volume moved (a restore or move while the instance waited): the
    // workload runs where its volume is.
    if (volume && volume->server_id && *volume->server_id != options_.server_id) {
      const std::string moved = "the project's volume moved to server " + *volume->server_id +
                                "; the deployment starts there";
      spdlog::info("workload: instance {}: {}", instance.id, moved);
      KINDLING_RETURN_IF_ERROR(db::UpdateInstance(
          tx, instance.id,
          db::InstanceUpdate{.status = db::WorkloadStatus::kStopped, .error = db::SetTo(moved)}));
      KINDLING_RETURN_IF_ERROR(db::CreateInstance(tx, deployment.id, *volume->server_id));
      return StartOutcome::kEnded;
    }

    // What can never start here.
    std::string failure;
    if (!volume) {
      failure = "the project has no volume";
    } else if (!volume->server_id) {
      failure = "the project's volume is not pinned to a server";
    } else if (image == options_.images.end()) {
      failure = "image '" + deployment.image +
                "' is not available on this worker (it has: " + JoinNames(options_.images) + ")";
    } else if (!volume->mount_path.starts_with('/') ||
               volume->mount_path.find_first_of(" \t\n") != std::string::npos) {
      failure = "the volume's mount path '" + volume->mount_path +
                "' cannot be passed to the guest (absolute, without spaces)";
    }
    if (!failure.empty()) {
      spdlog::warn("workload: instance {} cannot start here: {}", instance.id, failure);
      KINDLING_RETURN_IF_ERROR(db::UpdateInstance(
          tx, instance.id,
          db::InstanceUpdate{.status = db::WorkloadStatus::kFailed, .error = db::SetTo(failure)}));
      KINDLING_RETURN_IF_ERROR(
          db::UpdateDeployment(tx, deployment.id,
                               db::DeploymentUpdate{.status = db::WorkloadStatus::kFailed,
                                                    .error = db::SetTo(failure)}));
      return StartOutcome::kEnded;
    }

    // What a later pass may find changed.
    std::error_code ec;
    if (volume->status == db::VolumeStatus::kUnavailable) {
      why_waiting =
          "the volume is unavailable (health " + std::string(db::Name(volume->health)) + ")";
    } else if (db::IsTransitional(volume->status)) {
      why_waiting = "the volume is busy (" + std::string(db::Name(volume->status)) + ")";
    } else {
      KINDLING_ASSIGN_OR_RETURN(auto active, db::FindActiveOperation(tx, volume->id));
      if (active) {
        why_waiting = "a " + std::string(db::Name(active->kind)) + " operation (" + active->id +
                      ") is in flight on the volume";
      } else if (!std::filesystem::is_regular_file(ImagePath(options_.state_dir, volume->id), ec)) {
        why_waiting = "the volume's image is not on this worker yet";
      } else if (const std::string holder = HolderOf(volume->id); !holder.empty()) {
        why_waiting = holder + " still holds the volume";
      } else if (options_.busy) {
        if (options_.busy->TryMark(volume->id)) {
          marked = volume->id;
        } else {
          why_waiting = "this worker is working on the volume's image";
        }
      }
    }
    if (!why_waiting.empty()) return StartOutcome::kWaiting;

    auto vm = db::CreateVm(tx, db::NewVm{.server_id = options_.server_id,
                                         .purpose = db::VmPurpose::kWorkload,
                                         .project_volume_id = volume->id,
                                         .runtime = std::string(vmm::RuntimeName(vmm_.runtime())),
                                         .memory_mib = deployment.memory_mib,
                                         .vcpus = deployment.vcpus});
    if (!vm) {
      // Another VM holds the volume (a superseded deployment's, stopping).
      if (vm.error().kind() == ErrorKind::kAlreadyExists) why_waiting = vm.error().message();
      return std::unexpected(vm.error());
    }
    KINDLING_ASSIGN_OR_RETURN(
        held->instance,
        db::UpdateInstance(tx, instance.id,
                           db::InstanceUpdate{.status = db::WorkloadStatus::kStarting,
                                              .vm_id = db::SetTo(vm->id),
                                              .address = db::SetNull(),
                                              .error = db::SetNull()}));
    KINDLING_ASSIGN_OR_RETURN(
        held->volume,
        db::UpdateVolumeState(tx, volume->id,
                              db::VolumeStateUpdate{.status = db::VolumeStatus::kAttached,
                                                    .attached_vm_id = db::SetTo(vm->id)}));
    KINDLING_ASSIGN_OR_RETURN(
        held->deployment,
        db::UpdateDeployment(
            tx, deployment.id,
            db::DeploymentUpdate{.status = db::WorkloadStatus::kStarting, .error = db::SetNull()}));
    held->vm = std::move(*vm);
    return StartOutcome::kStarted;
  });
  if (!decided || *decided != StartOutcome::kStarted) unmark();
  if (!decided) {
    if (decided.error().kind() == ErrorKind::kAlreadyExists) return StartOutcome::kWaiting;
    return std::unexpected(decided.error());
  }
  if (*decided != StartOutcome::kStarted) return *decided;

  held->image = image->second;
  held->dir = VmDir(options_.state_dir, held->vm.id);
  held->busy_marked = marked.has_value();
  spdlog::info("workload: {} starting: image {}, {} MiB, {} vCPU, volume {} at {}",
               held->Describe(), deployment.image, deployment.memory_mib, deployment.vcpus,
               held->volume.id, held->volume.mount_path);
  {
    std::lock_guard lock(mu_);
    held_[held->instance.id] = held;
  }
  held->thread = std::thread([this, held] { Supervise(held); });
  return StartOutcome::kStarted;
}

void WorkloadReconciler::RequestStop(Held& held, StopReason reason, milliseconds timeout,
                                     std::string why) {
  std::lock_guard lock(held.mu);
  if (held.stop || held.ended) return;
  held.stop = Held::StopRequest{.reason = reason, .timeout = timeout, .why = std::move(why)};
  held.changed.notify_all();
}

bool WorkloadReconciler::Write(const Held& held, std::string_view what,
                               const std::function<Status(db::Tx&)>& fn) {
  const auto give_up = Clock::now() + options_.db_retry_for;
  for (;;) {
    if (abandoned()) return false;
    Status written = db_.Transact(fn);
    if (written) return true;
    if (!written.error().retryable() || Clock::now() >= give_up) {
      spdlog::error("workload: {}: cannot record {}: {}", held.Describe(), what,
                    written.error().message());
      return false;
    }
    std::this_thread::sleep_for(kDbRetryPause);
  }
}

void WorkloadReconciler::Supervise(const std::shared_ptr<Held>& owner) {
  Held& held = *owner;
  const vmm::VmSpec spec{.name = "kindling-vm-" + held.vm.id,
                         .kernel = held.image.kernel,
                         .initramfs = held.image.initramfs,
                         .cmdline = GuestCmdline(held.image, false, held.volume.mount_path),
                         .memory_mib = static_cast<std::uint32_t>(held.deployment.memory_mib),
                         .vcpus = static_cast<std::uint32_t>(held.deployment.vcpus),
                         .volume_image = ImagePath(options_.state_dir, held.volume.id),
                         .host_port = 0,
                         .guest_port = held.image.guest_port,
                         .console_log = held.dir / "console.log",
                         .runtime_dir = held.dir};
  std::error_code ec;
  std::filesystem::create_directories(held.dir, ec);
  const auto started = Clock::now();
  auto made = vmm_.Start(spec);
  if (!made) {
    const std::string error = "the VM did not start: " + made.error().message();
    RecordFailure(held, db::VmStatus::kCrashed, db::VmExit::kCrashed, error,
                  std::string(kWorkloadErrorPrefix) + "did not start: " + made.error().message());
    Finish(held);
    return;
  }
  std::unique_ptr<vmm::VmInstance> vm = std::move(*made);
  auto retire = [&held] {
    std::lock_guard lock(held.vm_mu);
    held.live = nullptr;
  };
  {
    std::lock_guard lock(held.vm_mu);
    held.live = vm.get();
  }
  // Destroyed before `vm`: no PauseAround uses a VM that is gone.
  struct Retired {
    std::function<void()> retire;
    ~Retired() { retire(); }
  } retired{retire};
  if (auto pid = vm->process_id()) {
    if (auto written = WriteFileAtomic(held.dir / "pid", std::to_string(*pid) + "\n"); !written)
      spdlog::warn("workload: {}: {}", held.Describe(), written.error().message());
  }

  // Boot, in slices: a stop request or abandonment is seen between them.
  const milliseconds boot_timeout = seconds(held.deployment.boot_timeout_seconds);
  const auto deadline = started + boot_timeout;
  bool ready = false;
  bool stop_wanted = false;
  bool abandon = false;
  while (!ready) {
    {
      std::lock_guard lock(held.mu);
      abandon = held.abandon;
      stop_wanted = held.stop.has_value();
    }
    if (abandon) break;
    if (stop_wanted) break;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      vm->Kill();
      const std::string error = "the VM was not ready within " +
                                std::to_string(held.deployment.boot_timeout_seconds) +
                                " s (no answer on /healthz); killed";
      RecordFailure(held, db::VmStatus::kCrashed, db::VmExit::kKilled,
                    WithConsole(error, spec.console_log),
                    std::string(kWorkloadErrorPrefix) + "did not start: " + error);
      Finish(held);
      return;
    }
    Status waited = vm->WaitReady(std::min(left, kBootSlice));
    if (waited) {
      ready = true;
    } else if (!waited.error().retryable()) {
      // Ended (or cannot be asked) before it was ready.
      std::optional<vmm::VmExit> exit = vm->Poll();
      if (!exit) exit = vm->Kill();
      const std::string error =
          "the VM ended before it was ready (" + vmm::DescribeExit(*exit) + ")";
      RecordFailure(held, db::VmStatus::kCrashed, db::VmExit::kCrashed,
                    WithConsole(error, spec.console_log),
                    std::string(kWorkloadErrorPrefix) + "did not start: " + error);
      Finish(held);
      return;
    }
  }

  if (abandon) {
    Finish(held);
    return;  // the VM is killed with `vm`, no row written
  }
  if (ready) {
    const std::string address = "127.0.0.1:" + std::to_string(vm->host_port());
    Write(held, "that it is ready", [&](db::Tx& tx) -> Status {
      KINDLING_ASSIGN_OR_RETURN(db::Volume volume, db::GetVolume(tx, held.volume.id, true));
      if (volume.last_error && volume.last_error->starts_with(kWorkloadErrorPrefix))
        KINDLING_RETURN_IF_ERROR(db::UpdateVolumeState(
            tx, volume.id, db::VolumeStateUpdate{.last_error = db::SetNull()}));
      KINDLING_RETURN_IF_ERROR(
          db::UpdateVm(tx, held.vm.id, db::VmUpdate{.status = db::VmStatus::kRunning}));
      KINDLING_RETURN_IF_ERROR(
          db::UpdateInstance(tx, held.instance.id,
                             db::InstanceUpdate{.status = db::WorkloadStatus::kRunning,
                                                .address = db::SetTo(address)}));
      KINDLING_RETURN_IF_ERROR(db::UpdateDeployment(
          tx, held.deployment.id,
          db::DeploymentUpdate{.status = db::WorkloadStatus::kRunning, .error = db::SetNull()}));
      return OkStatus();
    });
    spdlog::info("workload: {} ready in {} ms at {}", held.Describe(), Since(started).count(),
                 address);
  }

  // Watch: until a stop request, abandonment, or the VM ends by itself.
  for (;;) {
    {
      std::unique_lock lock(held.mu);
      held.changed.wait_for(lock, options_.poll_interval,
                            [&] { return held.abandon || held.stop.has_value(); });
      abandon = held.abandon;
      stop_wanted = held.stop.has_value();
    }
    if (abandon) {
      Finish(held);
      return;
    }
    if (stop_wanted) {
      retire();  // waits for a pause in progress to resume
      StopAndRecord(held, *vm);
      Finish(held);
      return;
    }
    if (std::optional<vmm::VmExit> exit = vm->Poll()) {
      const std::string error = "the VM exited: " + vmm::DescribeExit(*exit);
      RecordFailure(held, db::VmStatus::kCrashed, db::VmExit::kCrashed,
                    WithConsole(error, spec.console_log),
                    std::string(kWorkloadErrorPrefix) + "exited: " + vmm::DescribeExit(*exit));
      Finish(held);
      return;
    }
  }
}

void WorkloadReconciler::StopAndRecord(Held& held, vmm::VmInstance& vm) {
  Held::StopRequest request;
  {
    std::lock_guard lock(held.mu);
    request = *held.stop;
  }
  // Rows the leader already ended (it recorded the VM lost while this
  // worker was cut off from the database) are left as they are.
  auto ended = [&](db::Tx& tx) -> Result<bool> {
    // The volume row first, as every writer of these rows locks them.
    KINDLING_RETURN_IF_ERROR(db::GetVolume(tx, held.volume.id, /*for_update=*/true));
    KINDLING_ASSIGN_OR_RETURN(db::Vm current, db::GetVm(tx, held.vm.id, /*for_update=*/true));
    return current.status == db::VmStatus::kStopped || current.status == db::VmStatus::kCrashed;
  };
  Write(held, "that it stops", [&](db::Tx& tx) -> Status {
    KINDLING_ASSIGN_OR_RETURN(const bool already, ended(tx));
    if (already) return OkStatus();
    KINDLING_RETURN_IF_ERROR(
        db::UpdateVm(tx, held.vm.id, db::VmUpdate{.status = db::VmStatus::kStopping}));
    KINDLING_RETURN_IF_ERROR(db::UpdateInstance(
        tx, held.instance.id, db::InstanceUpdate{.status = db::WorkloadStatus::kStopping}));
    return OkStatus();
  });
  spdlog::info("workload: {} stopping ({}), {} ms to power off", held.Describe(), request.why,
               request.timeout.count());

  vmm::StopResult result;
  if (auto stopped = vm.Stop(request.timeout)) {
    result = *stopped;
  } else {
    spdlog::warn("workload: {}: stop: {}; killing it", held.Describe(), stopped.error().message());
    const auto start = Clock::now();
    result = vmm::StopResult{
        .outcome = vmm::StopOutcome::kKilled, .exit = vm.Kill(), .elapsed = Since(start)};
  }

  db::VmUpdate vm_update{.status = db::VmStatus::kStopped};
  std::optional<std::string> note;  // how it ended, when not cleanly
  switch (result.outcome) {
    case vmm::StopOutcome::kPoweredOff:
      vm_update.exit_reason = db::VmExit::kPowerdown;
      if (!result.exit.clean()) note = "it powered off uncleanly: " + DescribeExit(result.exit);
      break;
    case vmm::StopOutcome::kKilled:
      vm_update.exit_reason = db::VmExit::kKilled;
      note = "it did not power off within " + std::to_string(request.timeout.count()) +
             " ms and was killed";
      break;
    case vmm::StopOutcome::kAlreadyExited:
      vm_update.status = db::VmStatus::kCrashed;
      vm_update.exit_reason = db::VmExit::kCrashed;
      note = "it had exited before the stop: " + DescribeExit(result.exit);
      break;
  }
  if (note) note = Printable(*note);
  if (note) vm_update.error = db::SetTo(*note);

  std::optional<std::string> instance_error;
  switch (request.reason) {
    case StopReason::kDesired:
      instance_error = note;
      break;
    case StopReason::kOperation:
      instance_error = "stopped for " + request.why;
      break;
    case StopReason::kWorkerStop:
      instance_error = kWorkerStopped;
      break;
  }
  if (request.reason != StopReason::kDesired && note) *instance_error += "; " + *note;

  Write(held, "that it stopped", [&](db::Tx& tx) -> Status {
    KINDLING_ASSIGN_OR_RETURN(const bool already, ended(tx));
    if (already) return OkStatus();
    KINDLING_RETURN_IF_ERROR(db::ReleaseVolume(tx, held.volume.id, held.vm.id,
                                               db::VolumeStatus::kDetached, std::nullopt));
    KINDLING_RETURN_IF_ERROR(db::UpdateVm(tx, held.vm.id, vm_update));
    KINDLING_RETURN_IF_ERROR(db::UpdateInstance(
        tx, held.instance.id,
        db::InstanceUpdate{.status = db::WorkloadStatus::kStopped,
                           .address = db::SetNull(),
                           .error = instance_error ? db::SetTo(*instance_error) : db::SetNull()}));
    switch (request.reason) {
      case StopReason::kOperation:
        // It runs again when the operation is done (RestartAfterOperation).
        KINDLING_RETURN_IF_ERROR(
            db::UpdateDeployment(tx, held.deployment.id,
                                 db::DeploymentUpdate{.status = db::WorkloadStatus::kStopped,
                                                      .error = db::SetTo(*instance_error)}));
        return OkStatus();
      case StopReason::kWorkerStop:
        return SettleDeployment(tx, held.deployment.id, instance_error,
                                std::string(kWorkerStopped) + "; it starts again with the worker");
      case StopReason::kDesired:
        // An operator's start may have come during the stop.
        return SettleDeployment(tx, held.deployment.id, std::nullopt,
                                "started again while it stopped");
    }
    return OkStatus();
  });
  spdlog::info("workload: {} stopped: {} in {} ms ({})", held.Describe(),
               vmm::StopOutcomeName(result.outcome), result.elapsed.count(),
               vmm::DescribeExit(result.exit));
  std::lock_guard lock(held.mu);
  held.result = OperationStop{.stopped = true,
                              .instance_id = held.instance.id,
                              .outcome = result.outcome,
                              .elapsed = result.elapsed};
}

void WorkloadReconciler::RecordFailure(Held& held, db::VmStatus vm_status, db::VmExit exit_reason,
                                       const std::string& raw_error,
                                       const std::string& raw_volume_error) {
  // The log gets the error without the console (the guest's own output).
  spdlog::warn("workload: {} failed: {}", held.Describe(), Printable(raw_volume_error));
  const std::string error = Printable(raw_error);
  const std::string volume_error = Printable(raw_volume_error);
  Write(held, "its failure", [&](db::Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(db::ReleaseVolume(tx, held.volume.id, held.vm.id,
                                               db::VolumeStatus::kDetached, volume_error));
    KINDLING_RETURN_IF_ERROR(db::UpdateVm(
        tx, held.vm.id,
        db::VmUpdate{.status = vm_status, .exit_reason = exit_reason, .error = db::SetTo(error)}));
    KINDLING_RETURN_IF_ERROR(
        db::UpdateInstance(tx, held.instance.id,
                           db::InstanceUpdate{.status = db::WorkloadStatus::kFailed,
                                              .address = db::SetNull(),
                                              .error = db::SetTo(error)}));
    KINDLING_RETURN_IF_ERROR(db::UpdateDeployment(
        tx, held.deployment.id,
        db::DeploymentUpdate{.status = db::WorkloadStatus::kFailed, .error = db::SetTo(error)}));
    return OkStatus();
  });
}

void WorkloadReconciler::Finish(Held& held) {
  std::error_code ec;
  std::filesystem::remove(held.dir / "pid", ec);
  if (held.busy_marked && options_.busy) options_.busy->Release(held.volume.id);
  {
    std::lock_guard lock(held.mu);
    held.ended = true;
  }
  held.changed.notify_all();
  if (options_.wake && !abandoned()) options_.wake();
}

Result<OperationStop> WorkloadReconciler::StopForOperation(const std::string& volume_id,
                                                           milliseconds timeout,
                                                           std::string_view why) {
  std::shared_ptr<Held> target;
  {
    std::lock_guard pass(pass_mu_);
    std::lock_guard lock(mu_);
    for (const auto& [id, held] : held_) {
      std::lock_guard held_lock(held->mu);
      if (held->volume.id == volume_id && !held->ended) target = held;
    }
  }
  if (!target) return OperationStop{};
  RequestStop(*target, StopReason::kOperation, timeout, std::string(why));
  std::unique_lock lock(target->mu);
  target->changed.wait(lock, [&] { return target->ended; });
  return target->result;
}

Result<PauseOutcome> WorkloadReconciler::PauseAround(const std::string& volume_id,
                                                     const std::function<Status()>& take) {
  std::shared_ptr<Held> target;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, held] : held_) {
      std::lock_guard held_lock(held->mu);
      if (held->volume.id == volume_id && !held->ended) target = held;
    }
  }
  if (!target) {
    KINDLING_RETURN_IF_ERROR(take());
    return PauseOutcome{};
  }
  {
    std::unique_lock vm_lock(target->vm_mu);
    if (vmm::VmInstance* vm = target->live) {
      const auto started = Clock::now();
      KINDLING_RETURN_IF_ERROR(vm->Pause());
      Status taken = take();
      Status resumed = vm->Resume();
      for (int attempt = 1; !resumed && attempt < 3; ++attempt) {
        std::this_thread::sleep_for(milliseconds(100));
        resumed = vm->Resume();
      }
      const PauseOutcome outcome{.paused = true, .paused_for = Since(started)};
      if (!resumed)
        spdlog::error("workload: {} stays paused after a snapshot of its volume: {}",
                      target->Describe(), resumed.error().message());
      KINDLING_RETURN_IF_ERROR(taken);
      KINDLING_RETURN_IF_ERROR(resumed);
      spdlog::info("workload: {} paused {} ms for a snapshot of its volume", target->Describe(),
                   outcome.paused_for.count());
      return outcome;
    }
  }
  // Starting or stopping: it may write until it has ended.
  {
    std::unique_lock lock(target->mu);
    target->changed.wait(lock, [&] { return target->ended; });
  }
  KINDLING_RETURN_IF_ERROR(take());
  return PauseOutcome{};
}

Result<std::vector<db::Instance>> WorkloadReconciler::RestartAfterOperation(
    const std::string& volume_id) {
  KINDLING_ASSIGN_OR_RETURN(
      auto queued, db_.Transact([&](db::Tx& tx) -> Result<std::vector<db::Instance>> {
        KINDLING_ASSIGN_OR_RETURN(db::Volume volume, db::GetVolume(tx, volume_id, true));
        return QueueRestarts(tx, volume);
      }));
  for (const db::Instance& instance : queued)
    spdlog::info("workload: instance {} of deployment {} queued on server {} after an operation",
                 instance.id, instance.deployment_id, instance.server_id);
  const bool here = std::any_of(queued.begin(), queued.end(), [&](const db::Instance& instance) {
    return instance.server_id == options_.server_id;
  });
  if (here) {
    if (auto pass = ReconcileOnce(); !pass)
      spdlog::warn("workload: pass after an operation: {}", pass.error().message());
  }
  return queued;
}

void WorkloadReconciler::Shutdown() {
  std::vector<std::shared_ptr<Held>> all;
  {
    std::lock_guard pass(pass_mu_);
    std::lock_guard lock(mu_);
    if (shut_down_ || abandoned_) return;
    shut_down_ = true;
    for (const auto& [id, held] : held_) all.push_back(held);
  }
  if (!all.empty()) spdlog::info("workload: stopping {} VM(s): the worker stops", all.size());
  for (const auto& held : all)
    RequestStop(*held, StopReason::kWorkerStop, seconds(held->deployment.stop_timeout_seconds),
                kWorkerStopped);
  for (const auto& held : all)
    if (held->thread.joinable()) held->thread.join();
  std::lock_guard lock(mu_);
  held_.clear();
}

void WorkloadReconciler::Abandon() {
  std::vector<std::shared_ptr<Held>> all;
  {
    std::lock_guard pass(pass_mu_);
    std::lock_guard lock(mu_);
    abandoned_ = true;
    for (const auto& [id, held] : held_) all.push_back(held);
  }
  for (const auto& held : all) {
    std::lock_guard lock(held->mu);
    held->abandon = true;
    held->changed.notify_all();
  }
  for (const auto& held : all)
    if (held->thread.joinable()) held->thread.join();
  std::lock_guard lock(mu_);
  held_.clear();
}

Status WorkloadReconciler::RecoverAfterRestart() {
  std::lock_guard pass(pass_mu_);
  std::set<std::string> held_vms;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, held] : held_) held_vms.insert(held->vm.id);
  }
  struct Seen {
    std::vector<db::Vm> vms;
    std::vector<db::Instance> instances;
  };
  KINDLING_ASSIGN_OR_RETURN(Seen seen, db_.Transact([&](db::Tx& tx) -> Result<Seen> {
    Seen s;
    KINDLING_ASSIGN_OR_RETURN(
        s.vms, db::ListVms(tx, db::VmFilter{.server_id = options_.server_id, .live_only = true}));
    KINDLING_ASSIGN_OR_RETURN(
        s.instances, db::ListInstances(tx, db::InstanceFilter{.server_id = options_.server_id,
                                                              .live_only = true}));
    return s;
  }));

  // Lost instances without a live VM row (those with one end with it).
  std::vector<db::Instance> without_vm;
  std::set<std::string> live_vms;
  for (const db::Vm& vm : seen.vms) live_vms.insert(vm.id);
  for (const db::Instance& instance : seen.instances) {
    if (instance.status == db::WorkloadStatus::kPending) continue;
    if (instance.vm_id && held_vms.contains(*instance.vm_id)) continue;
    if (!instance.vm_id || !live_vms.contains(*instance.vm_id)) without_vm.push_back(instance);
  }

  const std::string volume_error =
      std::string(kWorkloadErrorPrefix) + "was lost: " + kWorkerRestarted;
  // A lost instance's deployment: a replacement when it should run, stopped
  // when it should not.
  auto settle = [&](db::Tx& tx, const std::string& deployment_id) -> Status {
    KINDLING_ASSIGN_OR_RETURN(auto replacement, QueueReplacement(tx, deployment_id,
                                                                 std::string(kWorkerRestarted) +
                                                                     "; it was started again"));
    if (replacement) return OkStatus();
    KINDLING_ASSIGN_OR_RETURN(db::Deployment deployment, db::GetDeployment(tx, deployment_id));
    const bool should_run = Wanted(deployment);
    KINDLING_RETURN_IF_ERROR(db::UpdateDeployment(
        tx, deployment.id,
        db::DeploymentUpdate{
            .status = should_run ? db::WorkloadStatus::kFailed : db::WorkloadStatus::kStopped,
            .error = db::SetTo(kWorkerRestarted)}));
    return OkStatus();
  };

  Status outcome = OkStatus();
  for (const db::Vm& vm : seen.vms) {
    if (held_vms.contains(vm.id)) continue;
    KillLeftover(VmDir(options_.state_dir, vm.id), vm.id);
    std::optional<db::EndedVm> ended;
    Status recorded = db_.Transact([&](db::Tx& tx) -> Status {
      KINDLING_ASSIGN_OR_RETURN(ended, db::EndLostVm(tx, db::LostVm{.vm_id = vm.id,
                                                                    .error = kWorkerRestarted,
                                                                    .volume_error = volume_error}));
      if (ended->ended && ended->instance) return settle(tx, ended->instance->deployment_id);
      return OkStatus();
    });
    if (!recorded) {
      if (outcome) outcome = recorded;
    } else if (!ended->ended) {
      spdlog::info("workload: VM {} was already recorded as {}", vm.id, db::Name(ended->vm.status));
    } else {
      spdlog::warn(
          "workload: VM {} ({}) was lost: {}", vm.id,
          ended->instance ? "instance " + ended->instance->id : std::string(db::Name(vm.purpose)),
          kWorkerRestarted);
    }
  }
  for (const db::Instance& instance : without_vm) {
    bool ended = false;
    Status recorded = db_.Transact([&](db::Tx& tx) -> Status {
      ended = false;
      KINDLING_ASSIGN_OR_RETURN(db::Instance current, db::GetInstance(tx, instance.id, true));
      if (current.status != db::WorkloadStatus::kStarting &&
          current.status != db::WorkloadStatus::kRunning &&
          current.status != db::WorkloadStatus::kStopping)
        return OkStatus();  // ended (or queued again) meanwhile
      KINDLING_RETURN_IF_ERROR(
          db::UpdateInstance(tx, instance.id,
                             db::InstanceUpdate{.status = db::WorkloadStatus::kFailed,
                                                .address = db::SetNull(),
                                                .error = db::SetTo(kWorkerRestarted)}));
      ended = true;
      return settle(tx, instance.deployment_id);
    });
    if (!recorded && outcome) outcome = recorded;
    if (recorded && ended)
      spdlog::warn("workload: instance {} was lost: {}", instance.id, kWorkerRestarted);
  }
  return outcome;
}

}  // namespace kindling::reconcile
