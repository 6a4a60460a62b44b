#include "db/workloads.h"

#include <gtest/gtest.h>

#include <set>

#include "db/notifications.h"
#include "db_test_util.h"

namespace kindling::db {
namespace {

class WorkloadsTest : public DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    org_ = MakeOrganization();
    project_ = MakeProject(org_, "Shop Front");
    server_ = MakeServer("worker-a");
    volume_ = MakeVolume(project_, server_);
  }

  Deployment Deploy(const std::string& image = "canary") {
    auto created = Must([&](Tx& tx) {
      return CreateDeployment(tx, NewDeployment{.project_id = project_, .image = image});
    });
    return created ? created->deployment : Deployment{};
  }

  std::string org_, project_, server_;
  Volume volume_;
};

TEST_F(WorkloadsTest, ANewDeploymentSupersedesTheCurrentOne) {
  ASSERT_OK_AND_ASSIGN(auto none,
                       db().Transact([&](Tx& tx) { return FindCurrentDeployment(tx, project_); }));
  EXPECT_FALSE(none.has_value());
  const Deployment first = Deploy();
  EXPECT_EQ(first.service, "web");
  EXPECT_EQ(first.image, "canary");
  EXPECT_EQ(first.desired_state, DesiredState::kRunning);
  EXPECT_EQ(first.status, WorkloadStatus::kPending);
  EXPECT_EQ(first.memory_mib, 128);
  EXPECT_EQ(first.vcpus, 1);

  ASSERT_OK_AND_ASSIGN(auto second, db().Transact([&](Tx& tx) {
    return CreateDeployment(tx, NewDeployment{.project_id = project_, .image = "canary"});
  }));
  ASSERT_TRUE(second.superseded.has_value());
  EXPECT_EQ(second.superseded->id, first.id);
  EXPECT_EQ(second.superseded->desired_state, DesiredState::kStopped);
  EXPECT_TRUE(second.superseded->superseded_at.has_value());
  ASSERT_OK_AND_ASSIGN(auto current,
                       db().Transact([&](Tx& tx) { return FindCurrentDeployment(tx, project_); }));
  ASSERT_TRUE(current.has_value());
  EXPECT_EQ(current->id, second.deployment.id);
  ASSERT_OK_AND_ASSIGN(auto all,
                       db().Transact([&](Tx& tx) { return ListDeployments(tx, project_); }));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, second.deployment.id);  // newest first

  // Another service is independent.
  ASSERT_OK_AND_ASSIGN(auto worker, db().Transact([&](Tx& tx) {
    return CreateDeployment(
        tx, NewDeployment{.project_id = project_, .service = "jobs", .image = "canary"});
  }));
  EXPECT_FALSE(worker.superseded.has_value());
}

TEST_F(WorkloadsTest, BadValuesAreRefused) {
  for (const NewDeployment& bad :
       {NewDeployment{.project_id = project_, .service = "Web", .image = "canary"},
        NewDeployment{.project_id = project_, .service = "-web", .image = "canary"},
        NewDeployment{.project_id = project_, .image = "../etc"},
        NewDeployment{.project_id = project_, .image = "canary", .memory_mib = 64},
        NewDeployment{.project_id = project_, .image = "canary", .vcpus = 0},
        NewDeployment{.project_id = NewUuidV4(), .image = "canary"}}) {
    auto refused = db().Transact([&](Tx& tx) { return CreateDeployment(tx, bad); });
    SCOPED_TRACE(bad.service + " " + bad.image);
    EXPECT_ERROR_KIND(refused, ErrorKind::kInvalidArgument);
  }
  EXPECT_TRUE(Sql("SELECT 1 FROM deployments").empty());
}

TEST_F(WorkloadsTest, InstancesAndVmsFollowTheirLifecycle) {
  const Deployment d = Deploy();
  ASSERT_OK_AND_ASSIGN(auto listener, Listener::Open(dsn(), {kWorkloadsChannel}));
  ASSERT_OK_AND_ASSIGN(Instance instance,
                       db().Transact([&](Tx& tx) { return CreateInstance(tx, d.id, server_); }));
  EXPECT_EQ(instance.status, WorkloadStatus::kPending);
  EXPECT_FALSE(instance.started_at.has_value());
  // The worker hears of it.
  std::vector<Notification> heard;
  for (int i = 0; i < 20 && heard.empty(); ++i) {
    ASSERT_OK_AND_ASSIGN(heard, listener->Wait(std::chrono::milliseconds(100)));
  }
  ASSERT_FALSE(heard.empty());
  EXPECT_EQ(heard[0].payload, server_ + ":instance:" + instance.id);

  ASSERT_OK_AND_ASSIGN(Vm vm, db().Transact([&](Tx& tx) {
    return CreateVm(tx, NewVm{.server_id = server_,
                              .project_volume_id = volume_.id,
                              .runtime = "qemu-microvm-tcg"});
  }));
  EXPECT_EQ(vm.status, VmStatus::kBooting);
  EXPECT_EQ(vm.purpose, VmPurpose::kWorkload);
  ASSERT_OK_AND_ASSIGN(instance, db().Transact([&](Tx& tx) {
    return UpdateInstance(
        tx, instance.id,
        InstanceUpdate{.status = WorkloadStatus::kStarting, .vm_id = SetTo(vm.id)});
  }));
  EXPECT_TRUE(instance.started_at.has_value());
  EXPECT_EQ(instance.vm_id, vm.id);

  // A second VM on the same volume is refused, naming the first.
  auto second = db().Transact([&](Tx& tx) {
    return CreateVm(tx, NewVm{.server_id = server_,
                              .purpose = VmPurpose::kVerify,
                              .project_volume_id = volume_.id,
                              .runtime = "qemu-microvm-tcg"});
  });
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_NE(second.error().message().find(vm.id), std::string::npos) << second.error().message();

  // Running: the edge has a route.
  ASSERT_OK_AND_ASSIGN(vm, db().Transact([&](Tx& tx) {
    return UpdateVm(tx, vm.id, VmUpdate{.status = VmStatus::kRunning});
  }));
  EXPECT_TRUE(vm.ready_at.has_value());
  ASSERT_OK(db().Transact([&](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(UpdateInstance(
        tx, instance.id,
        InstanceUpdate{.status = WorkloadStatus::kRunning, .address = SetTo("127.0.0.1:4100")}));
    KINDLING_RETURN_IF_ERROR(
        UpdateDeployment(tx, d.id, DeploymentUpdate{.status = WorkloadStatus::kRunning}));
    return OkStatus();
  }));
  ASSERT_OK_AND_ASSIGN(auto routes, db().Transact([](Tx& tx) { return ListRoutes(tx); }));
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0].project_name, "Shop Front");
  EXPECT_EQ(routes[0].service, "web");
  EXPECT_EQ(routes[0].instance_id, instance.id);
  EXPECT_EQ(routes[0].address, "127.0.0.1:4100");
  ASSERT_OK_AND_ASSIGN(auto live, db().Transact([&](Tx& tx) {
    return ListInstances(tx, InstanceFilter{.server_id = server_, .live_only = true});
  }));
  EXPECT_EQ(live.size(), 1u);

  // Stopped on request: no route; the VM stopped cleanly frees the volume.
  ASSERT_OK(db().Transact([&](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(
        UpdateDeployment(tx, d.id, DeploymentUpdate{.desired_state = DesiredState::kStopped}));
    return OkStatus();
  }));
  ASSERT_OK_AND_ASSIGN(routes, db().Transact([](Tx& tx) { return ListRoutes(tx); }));
  ASSERT_EQ(routes.size(), 1u);  // known, with nothing to route to
  EXPECT_FALSE(routes[0].instance_id.has_value());
  EXPECT_FALSE(routes[0].address.has_value());
  ASSERT_OK_AND_ASSIGN(vm, db().Transact([&](Tx& tx) {
    return UpdateVm(tx, vm.id,
                    VmUpdate{.status = VmStatus::kStopped, .exit_reason = VmExit::kPowerdown});
  }));
  EXPECT_TRUE(vm.stopped_at.has_value());
  EXPECT_EQ(vm.exit_reason, VmExit::kPowerdown);
  ASSERT_OK_AND_ASSIGN(instance, db().Transact([&](Tx& tx) {
    return UpdateInstance(tx, instance.id,
                          InstanceUpdate{.status = WorkloadStatus::kStopped, .address = SetNull()});
  }));
  EXPECT_TRUE(instance.stopped_at.has_value());
  EXPECT_FALSE(instance.address.has_value());
  ASSERT_OK_AND_ASSIGN(live, db().Transact([&](Tx& tx) {
    return ListInstances(tx, InstanceFilter{.server_id = server_, .live_only = true});
  }));
  EXPECT_TRUE(live.empty());
  ASSERT_OK(db().Transact([&](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(CreateVm(tx, NewVm{.server_id = server_,
                                                .purpose = VmPurpose::kVerify,
                                                .project_volume_id = volume_.id,
                                                .runtime = "qemu-microvm-tcg"}));
    return OkStatus();
  }));
  ASSERT_OK_AND_ASSIGN(auto vms, db().Transact([&](Tx& tx) {
    return ListVms(tx, VmFilter{.project_volume_id = volume_.id, .live_only = true});
  }));
  ASSERT_EQ(vms.size(), 1u);
  EXPECT_EQ(vms[0].purpose, VmPurpose::kVerify);
}

TEST_F(WorkloadsTest, ALostVmEndsWithItsInstanceAndLetsGoOfTheVolume) {
  const Deployment d = Deploy();
  ASSERT_OK_AND_ASSIGN(Vm vm, db().Transact([&](Tx& tx) {
    return CreateVm(tx, NewVm{.server_id = server_,
                              .project_volume_id = volume_.id,
                              .runtime = "qemu-microvm-tcg"});
  }));
  ASSERT_OK_AND_ASSIGN(Instance instance, db().Transact([&](Tx& tx) -> Result<Instance> {
    KINDLING_ASSIGN_OR_RETURN(Instance created, CreateInstance(tx, d.id, server_));
    KINDLING_RETURN_IF_ERROR(UpdateVm(tx, vm.id, VmUpdate{.status = VmStatus::kRunning}));
    KINDLING_RETURN_IF_ERROR(UpdateVolumeState(
        tx, volume_.id,
        VolumeStateUpdate{.status = VolumeStatus::kAttached, .attached_vm_id = SetTo(vm.id)}));
    return UpdateInstance(tx, created.id,
                          InstanceUpdate{.status = WorkloadStatus::kRunning,
                                         .vm_id = SetTo(vm.id),
                                         .address = SetTo("127.0.0.1:4100")});
  }));
  // Only VMs of dead servers, when asked.
  ASSERT_OK_AND_ASSIGN(auto on_dead, db().Transact([&](Tx& tx) {
    return ListVms(tx, VmFilter{.live_only = true, .on_dead_servers = true});
  }));
  EXPECT_TRUE(on_dead.empty());
  Sql("UPDATE servers SET status = 'dead' WHERE id = '" + server_ + "'");
  ASSERT_OK_AND_ASSIGN(on_dead, db().Transact([&](Tx& tx) {
    return ListVms(tx, VmFilter{.live_only = true, .on_dead_servers = true});
  }));
  ASSERT_EQ(on_dead.size(), 1u);
  EXPECT_EQ(on_dead[0].id, vm.id);

  ASSERT_OK_AND_ASSIGN(auto listener, Listener::Open(dsn(), {kWorkloadsChannel}));
  ASSERT_OK_AND_ASSIGN(EndedVm ended, db().Transact([&](Tx& tx) {
    return EndLostVm(tx, LostVm{.vm_id = vm.id,
                                .error = "the worker died",
                                .volume_status = VolumeStatus::kUnavailable,
                                .volume_error = "its worker is dead"});
  }));
  EXPECT_TRUE(ended.ended);
  EXPECT_EQ(ended.vm.status, VmStatus::kCrashed);
  EXPECT_EQ(ended.vm.exit_reason, VmExit::kLost);
  EXPECT_EQ(ended.vm.error, "the worker died");
  EXPECT_TRUE(ended.vm.stopped_at.has_value());
  ASSERT_TRUE(ended.instance.has_value());
  EXPECT_EQ(ended.instance->id, instance.id);
  EXPECT_EQ(ended.instance->status, WorkloadStatus::kFailed);
  EXPECT_EQ(ended.instance->error, "the worker died");
  EXPECT_FALSE(ended.instance->address.has_value());
  ASSERT_TRUE(ended.volume.has_value());
  EXPECT_EQ(ended.volume->status, VolumeStatus::kUnavailable);
  EXPECT_FALSE(ended.volume->attached_vm_id.has_value());
  EXPECT_EQ(ended.volume->last_error, "its worker is dead");
  // The worker and the edge hear of it.
  std::vector<Notification> heard;
  for (int i = 0; i < 20 && heard.empty(); ++i) {
    ASSERT_OK_AND_ASSIGN(heard, listener->Wait(std::chrono::milliseconds(100)));
  }
  ASSERT_FALSE(heard.empty());
  EXPECT_EQ(heard[0].payload, server_ + ":instance:" + instance.id);
  ASSERT_OK_AND_ASSIGN(auto routes, db().Transact([](Tx& tx) { return ListRoutes(tx); }));
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_FALSE(routes[0].instance_id.has_value());
  ASSERT_OK_AND_ASSIGN(on_dead, db().Transact([&](Tx& tx) {
    return ListVms(tx, VmFilter{.live_only = true, .on_dead_servers = true});
  }));
  EXPECT_TRUE(on_dead.empty());

  // Ended already: a second writer changes nothing.
  ASSERT_OK_AND_ASSIGN(ended, db().Transact([&](Tx& tx) {
    return EndLostVm(tx, LostVm{.vm_id = vm.id, .error = "the worker restarted"});
  }));
  EXPECT_FALSE(ended.ended);
  EXPECT_EQ(ended.vm.error, "the worker died");
  ASSERT_OK_AND_ASSIGN(Volume volume,
                       db().Transact([&](Tx& tx) { return GetVolume(tx, volume_.id); }));
  EXPECT_EQ(volume.status, VolumeStatus::kUnavailable);
  EXPECT_EQ(volume.last_error, "its worker is dead");
  EXPECT_ERROR_KIND(db().Transact([&](Tx& tx) {
    return EndLostVm(tx, LostVm{.vm_id = NewUuidV4(), .error = "x"});
  }),
                    ErrorKind::kNotFound);
}

TEST_F(WorkloadsTest, ReleaseVolumeLeavesAVolumeAnotherVmHolds) {
  ASSERT_OK_AND_ASSIGN(Vm holder, db().Transact([&](Tx& tx) {
    return CreateVm(tx, NewVm{.server_id = server_,
                              .project_volume_id = volume_.id,
                              .runtime = "qemu-microvm-tcg"});
  }));
  ASSERT_OK(db().Transact([&](Tx& tx) {
    return UpdateVolumeState(
        tx, volume_.id,
        VolumeStateUpdate{.status = VolumeStatus::kAttached, .attached_vm_id = SetTo(holder.id)});
  }));
  ASSERT_OK_AND_ASSIGN(Volume kept, db().Transact([&](Tx& tx) {
    return ReleaseVolume(tx, volume_.id, NewUuidV4(), VolumeStatus::kDetached, "not mine");
  }));
  EXPECT_EQ(kept.status, VolumeStatus::kAttached);
  EXPECT_EQ(kept.attached_vm_id, holder.id);
  EXPECT_FALSE(kept.last_error.has_value());
  ASSERT_OK_AND_ASSIGN(Volume released, db().Transact([&](Tx& tx) {
    return ReleaseVolume(tx, volume_.id, holder.id, VolumeStatus::kDetached, std::nullopt);
  }));
  EXPECT_EQ(released.status, VolumeStatus::kDetached);
  EXPECT_FALSE(released.attached_vm_id.has_value());
  // A transitional status an operation set stays.
  ASSERT_OK(db().Transact([&](Tx& tx) {
    return UpdateVolumeState(
        tx, volume_.id,
        VolumeStateUpdate{.status = VolumeStatus::kBackingUp, .attached_vm_id = SetTo(holder.id)});
  }));
  ASSERT_OK_AND_ASSIGN(released, db().Transact([&](Tx& tx) {
    return ReleaseVolume(tx, volume_.id, holder.id, VolumeStatus::kUnavailable, "stopped");
  }));
  EXPECT_EQ(released.status, VolumeStatus::kBackingUp);
  EXPECT_FALSE(released.attached_vm_id.has_value());
  EXPECT_EQ(released.last_error, "stopped");
}

TEST_F(WorkloadsTest, HostnamesFollowTheReferenceNaming) {
  EXPECT_EQ(ProjectSlug("Shop Front"), "shop-front");
  EXPECT_EQ(ProjectSlug("api_v2.Prod"), "api-v2-prod");
  EXPECT_EQ(ProjectSlug("café"), "caf-");
  EXPECT_EQ(ProjectSlug(std::string(50, 'a')), std::string(40, 'a'));
  EXPECT_EQ(ServiceHostname("web", "Shop Front", "apps.example.com"),
            "web-shop-front.apps.example.com");
  EXPECT_EQ(ServiceHostname("web", "Shop Front", ""), "web-shop-front");
}

}  // namespace
}  // namespace kindling::db
