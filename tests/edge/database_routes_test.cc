// The edge's routes from the database: a route per current deployment, named
// as the reference names it, with its running instance as the backend.
#include "edge/database_routes.h"

#include <gtest/gtest.h>

#include "db/db_test_util.h"
#include "db/settings.h"
#include "db/workloads.h"

namespace kindling::edge {
namespace {

class DatabaseRoutesTest : public db::DbTest {};

TEST_F(DatabaseRoutesTest, ARoutePerCurrentDeploymentWithItsRunningInstance) {
  const std::string org = MakeOrganization();
  const std::string shop = MakeProject(org, "Shop Front");
  const std::string blog = MakeProject(org, "blog");
  const std::string server = MakeServer("w1");
  MustRun(
      [&](db::Tx& tx) { return db::PutSetting(tx, "service_base_domain", "Apps.Example.com"); });
  DatabaseRouteSource source(db());
  ASSERT_OK_AND_ASSIGN(auto routes, source.Load());
  EXPECT_TRUE(routes.empty());

  auto deploy = [&](const std::string& project) {
    auto created = Must([&](db::Tx& tx) {
      return db::CreateDeployment(tx, db::NewDeployment{.project_id = project, .image = "canary"});
    });
    return created ? created->deployment.id : "";
  };
  const std::string shop_deployment = deploy(shop);
  deploy(blog);
  auto running = [&](const std::string& deployment, const std::string& address) {
    auto instance = Must([&](db::Tx& tx) -> Result<db::Instance> {
      KINDLING_ASSIGN_OR_RETURN(auto i, db::CreateInstance(tx, deployment, server));
      return db::UpdateInstance(tx, i.id,
                                db::InstanceUpdate{.status = db::WorkloadStatus::kRunning,
                                                   .address = db::SetTo(address)});
    });
    return instance ? instance->id : "";
  };
  const std::string first = running(shop_deployment, "127.0.0.1:4100");
  const std::string second = running(shop_deployment, "[::1]:4101");

  ASSERT_OK_AND_ASSIGN(routes, source.Load());
  ASSERT_EQ(routes.size(), 2u);
  // The blog's deployment has no instance up: a route without backends.
  EXPECT_EQ(routes[0].hostname, "web-blog.apps.example.com");
  EXPECT_TRUE(routes[0].backends.empty());
  EXPECT_EQ(routes[1].hostname, "web-shop-front.apps.example.com");
  ASSERT_EQ(routes[1].backends.size(), 2u);
  EXPECT_EQ(routes[1].backends[0],
            (Backend{.instance_id = first, .host = "127.0.0.1", .port = 4100}));
  EXPECT_EQ(routes[1].backends[1], (Backend{.instance_id = second, .host = "::1", .port = 4101}));

  // Stopped on request: still known, nothing to route to.
  MustRun([&](db::Tx& tx) {
    return db::UpdateDeployment(tx, shop_deployment,
                                db::DeploymentUpdate{.desired_state = db::DesiredState::kStopped});
  });
  ASSERT_OK_AND_ASSIGN(routes, source.Load());
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_TRUE(routes[1].backends.empty());
}

TEST(ParseBackendAddressTest, HostPortOrAClearError) {
  ASSERT_OK_AND_ASSIGN(Backend b, ParseBackendAddress("i", "10.0.0.7:8080"));
  EXPECT_EQ(b.host, "10.0.0.7");
  EXPECT_EQ(b.port, 8080);
  for (const char* bad : {"10.0.0.7", ":80", "host:", "host:0", "host:70000", "host:8x"}) {
    EXPECT_FALSE(ParseBackendAddress("i", bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace kindling::edge
