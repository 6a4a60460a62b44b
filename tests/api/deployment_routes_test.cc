// Workload routes against real PostgreSQL: deploy, list, stop and start,
// who may call them, every refusal with the state unchanged, and the audit.
#include <gtest/gtest.h>

#include "api_test_fixture.h"
#include "db/workloads.h"

namespace kindling::api {
namespace {

class DeploymentRoutesTest : public ApiServerTest {};

TEST_F(DeploymentRoutesTest, DeployStopStartAndEveryRefusal) {
  const std::string worker = MakeVmServer("w1");
  const std::string project = CreateProject("Shop Front");
  const std::string deploy = "/api/projects/" + project + "/deploy";
  const std::string canary = json{{"image", "canary"}}.dump();

  // No volume yet: a workload runs where its volume is.
  ExpectRefused("POST", deploy, admin_key_, canary, 409, "volume_unavailable");
  ASSERT_EQ(
      Send("PUT", "/api/projects/" + project + "/volume", admin_key_, json{{"size_gb", 1}}.dump())
          .status,
      200);
  ASSERT_EQ(
      Send("PUT", "/api/meta", admin_key_, json{{"service_base_domain", "apps.example.com"}}.dump())
          .status,
      200);

  // Refusals, each changing nothing.
  ExpectRefused("POST", deploy, member_key_, canary, 403, "forbidden");
  ExpectRefused("POST", deploy, "", canary, 401, "unauthorized");
  ExpectRefused("POST", deploy, admin_key_, "{}", 400, "validation_error");
  ExpectRefused("POST", deploy, admin_key_, json{{"image", "nginx"}}.dump(), 400,
                "validation_error");
  ExpectRefused("POST", deploy, admin_key_, json{{"image", "canary"}, {"service", "Web"}}.dump(),
                400, "validation_error");
  ExpectRefused("POST", deploy, admin_key_, json{{"image", "canary"}, {"memory_mib", 64}}.dump(),
                400, "validation_error");
  ExpectRefused("POST", deploy, admin_key_, json{{"image", "canary"}, {"colour", "red"}}.dump(),
                400, "validation_error");
  ExpectRefused("POST", "/api/projects/" + project + "/stop", admin_key_, "{}", 404, "not_found");
  ExpectRefused("POST", "/api/projects/" + NewUuidV4() + "/deploy", admin_key_, canary, 404,
                "not_found");
  {
    const Response unknown = Send("POST", deploy, admin_key_, json{{"image", "nginx"}}.dump());
    EXPECT_NE(unknown.body.value("error", "").find("it has: canary"), std::string::npos)
        << unknown.raw;
  }

  // Deployed: pending on the volume's worker, named as the reference names it.
  const Response deployed = Send("POST", deploy, org_admin_key_, canary);
  ASSERT_EQ(deployed.status, 202) << deployed.raw;
  const std::string first = deployed.body.value("id", "");
  EXPECT_EQ(deployed.body.value("status", ""), "pending");
  EXPECT_EQ(deployed.body.value("desired_state", ""), "running");
  EXPECT_EQ(deployed.body.value("image", ""), "canary");
  EXPECT_EQ(deployed.body.value("service", ""), "web");
  EXPECT_EQ(deployed.body.value("hostname", ""), "web-shop-front.apps.example.com");
  EXPECT_EQ(deployed.body.value("memory_mib", 0), 128);
  ASSERT_TRUE(deployed.body["instance"].is_object()) << deployed.raw;
  EXPECT_EQ(deployed.body["instance"].value("server_id", ""), worker);
  EXPECT_EQ(deployed.body["instance"].value("status", ""), "pending");
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events WHERE action = 'deployment.create' "
                "AND resource_id = '" +
                first + "'")[0][0]
                .as<int>(),
            1);

  // Members read them.
  Response listed = Send("GET", "/api/projects/" + project + "/deployments", member_key_);
  ASSERT_EQ(listed.status, 200) << listed.raw;
  ASSERT_EQ(listed.body.size(), 1u);
  EXPECT_EQ(listed.body[0].value("id", ""), first);

  // Stop and start change the desired state; a live instance is reused.
  Response stopped = Send("POST", "/api/projects/" + project + "/stop", admin_key_, "{}");
  ASSERT_EQ(stopped.status, 202) << stopped.raw;
  EXPECT_EQ(stopped.body.value("desired_state", ""), "stopped");
  ExpectRefused("POST", "/api/projects/" + project + "/start", member_key_, "{}", 403, "forbidden");
  Response started = Send("POST", "/api/projects/" + project + "/start", admin_key_, "");
  ASSERT_EQ(started.status, 202) << started.raw;
  EXPECT_EQ(started.body.value("desired_state", ""), "running");
  EXPECT_EQ(Sql("SELECT count(*) FROM deployment_instances")[0][0].as<int>(), 1);
  // Once the instance stopped, start queues a new one.
  Sql("UPDATE deployment_instances SET status = 'stopped'");
  started = Send("POST", "/api/projects/" + project + "/start", admin_key_, "{}");
  ASSERT_EQ(started.status, 202) << started.raw;
  EXPECT_EQ(started.body["instance"].value("status", ""), "pending");
  EXPECT_EQ(Sql("SELECT count(*) FROM deployment_instances")[0][0].as<int>(), 2);
  for (const char* action : {"deployment.stop", "deployment.start"}) {
    EXPECT_GE(Sql(std::string("SELECT count(*) FROM cluster_audit_events WHERE action = '") +
                  action + "'")[0][0]
                  .as<int>(),
              1)
        << action;
  }

  // A busy volume takes no deployment.
  Sql("UPDATE project_volumes SET status = 'backing_up'");
  ExpectRefused("POST", deploy, admin_key_, canary, 409, "volume_busy");
  ExpectRefused("POST", "/api/projects/" + project + "/start", admin_key_, "{}", 409,
                "volume_busy");
  Sql("UPDATE project_volumes SET status = 'detached'");

  // A new deployment supersedes the first.
  const Response second = Send("POST", deploy, admin_key_, canary);
  ASSERT_EQ(second.status, 202) << second.raw;
  listed = Send("GET", "/api/projects/" + project + "/deployments", admin_key_);
  ASSERT_EQ(listed.body.size(), 2u);
  EXPECT_EQ(listed.body[0].value("id", ""), second.body.value("id", ""));
  EXPECT_EQ(listed.body[1].value("id", ""), first);
  EXPECT_FALSE(listed.body[1]["superseded_at"].is_null());
  EXPECT_EQ(listed.body[1].value("desired_state", ""), "stopped");
}

}  // namespace
}  // namespace kindling::api
