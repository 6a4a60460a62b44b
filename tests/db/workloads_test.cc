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
