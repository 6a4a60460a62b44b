#include "db/servers.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "db_test_util.h"

namespace kindling::db {
namespace {

class ServersTest : public DbTest {
 protected:
  void Backdate(const std::string& server_id, int seconds) {
    Sql("UPDATE servers SET last_heartbeat_at = now() - interval '" + std::to_string(seconds) +
        " seconds' WHERE id = '" + server_id + "'");
  }
  Server Get(const std::string& id) {
    auto server = Must([&](Tx& tx) { return GetServer(tx, id); });
    return server ? *server : Server{};
  }
};

TEST_F(ServersTest, ReRegisteringWithTheSameIdReusesTheRow) {
  const std::string id = NewUuidV4();
  ASSERT_OK_AND_ASSIGN(Server first, db().Transact([&](Tx& tx) {
    return RegisterServer(tx, ServerRegistration{.id = id,
                                                 .hostname = "w1",
                                                 .internal_ip = "10.0.0.1",
                                                 .enabled_components = {"worker"}});
  }));
  EXPECT_EQ(first.status, ServerStatus::kActive);
  EXPECT_TRUE(first.last_heartbeat_at.has_value());
  ASSERT_OK_AND_ASSIGN(Server second, db().Transact([&](Tx& tx) {
    return RegisterServer(tx, ServerRegistration{.id = id,
                                                 .hostname = "w1-renamed",
                                                 .internal_ip = "10.0.0.9",
                                                 .enabled_components = {"api", "worker"}});
  }));
  EXPECT_EQ(second.id, id);
  EXPECT_EQ(second.hostname, "w1-renamed");
  EXPECT_EQ(second.internal_ip, "10.0.0.9");
  EXPECT_EQ(second.enabled_components, (std::vector<std::string>{"api", "worker"}));
  EXPECT_EQ(second.created_at, first.created_at);
  EXPECT_EQ(Sql("SELECT count(*) FROM servers")[0][0].as<int>(), 1);
}

TEST_F(ServersTest, HeartbeatOfUnknownServerIsNotFound) {
  EXPECT_ERROR_KIND(db().Transact([](Tx& tx) { return Heartbeat(tx, NewUuidV4()); }),
                    ErrorKind::kNotFound);
}

TEST_F(ServersTest, SilentActiveServersDieAndHeartbeatsReviveThem) {
  const std::string quiet = MakeServer("quiet");
  const std::string alive = MakeServer("alive");
  const std::string draining = MakeServer("draining");
  ASSERT_OK(db().Transact(
      [&](Tx& tx) { return SetServerStatus(tx, draining, ServerStatus::kDraining); }));
  Backdate(quiet, 60);
  Backdate(draining, 60);
  Backdate(alive, 5);

  ASSERT_OK_AND_ASSIGN(std::vector<std::string> dead, db().Transact([](Tx& tx) {
    return MarkSilentServersDead(tx, std::chrono::seconds(30));
  }));
  EXPECT_EQ(dead, std::vector<std::string>{quiet});
  EXPECT_EQ(Get(quiet).status, ServerStatus::kDead);
  EXPECT_EQ(Get(alive).status, ServerStatus::kActive);
  // Operator states change only by operator action.
  EXPECT_EQ(Get(draining).status, ServerStatus::kDraining);

  ASSERT_OK_AND_ASSIGN(Server revived, db().Transact([&](Tx& tx) { return Heartbeat(tx, quiet); }));
  EXPECT_EQ(revived.status, ServerStatus::kActive);
  ASSERT_OK_AND_ASSIGN(Server still_draining,
                       db().Transact([&](Tx& tx) { return Heartbeat(tx, draining); }));
  EXPECT_EQ(still_draining.status, ServerStatus::kDraining);
}

TEST_F(ServersTest, HeartbeatAgeAndHealthAreComputed) {
  const std::string fresh = MakeServer("a-fresh");
  const std::string stale = MakeServer("b-stale");
  const std::string never = NewUuidV4();
  Sql("INSERT INTO servers (id, hostname) VALUES ('" + never + "', 'c-never')");
  Backdate(stale, 60);

  ASSERT_OK_AND_ASSIGN(std::vector<Server> servers,
                       db().Transact([](Tx& tx) { return ListServers(tx); }));
  ASSERT_EQ(servers.size(), 3u);
  EXPECT_EQ(servers[0].id, fresh);
  ASSERT_TRUE(servers[0].heartbeat_age_seconds);
  EXPECT_LT(*servers[0].heartbeat_age_seconds, 10.0);
  EXPECT_EQ(HeartbeatHealth(servers[0]), "healthy");
  ASSERT_TRUE(servers[1].heartbeat_age_seconds);
  EXPECT_NEAR(*servers[1].heartbeat_age_seconds, 60.0, 5.0);
  EXPECT_EQ(HeartbeatHealth(servers[1]), "stale");
  EXPECT_FALSE(servers[2].heartbeat_age_seconds);
  EXPECT_EQ(HeartbeatHealth(servers[2]), "unknown");
  ASSERT_EQ(servers[0].components.size(), 1u);
  EXPECT_EQ(servers[0].components[0].runtime, "sparse-file");
}

TEST_F(ServersTest, ComponentStatusKeepsHistory) {
  const std::string id = MakeServer("w1");
  ASSERT_OK(db().Transact([&](Tx& tx) {
    return UpsertComponentStatus(tx, ComponentStatusUpdate{.server_id = id,
                                                           .component = "worker",
                                                           .status = ComponentHealth::kDegraded,
                                                           .error_message = "disk full",
                                                           .metadata_json = R"({"runtime":"x"})"});
  }));
  Server server = Get(id);
  ASSERT_EQ(server.components.size(), 1u);
  const ComponentStatus& worker = server.components[0];
  EXPECT_EQ(worker.status, ComponentHealth::kDegraded);
  EXPECT_EQ(worker.last_error_message, "disk full");
  EXPECT_TRUE(worker.last_error_at.has_value());
  EXPECT_TRUE(worker.last_success_at.has_value());  // from MakeServer's healthy report
  EXPECT_EQ(worker.runtime, "x");

  ASSERT_OK(db().Transact([&](Tx& tx) {
    return UpsertComponentStatus(tx, ComponentStatusUpdate{.server_id = id, .component = "worker"});
  }));
  server = Get(id);
  EXPECT_EQ(server.components[0].status, ComponentHealth::kHealthy);
  EXPECT_EQ(server.components[0].last_error_message, "disk full");
  EXPECT_EQ(server.components[0].metadata_json, "{}");
}

TEST_F(ServersTest, DrainAndActivateReportThePreviousStatus) {
  const std::string id = MakeServer("w1");
  ASSERT_OK_AND_ASSIGN(ServerStatusChange drained, db().Transact([&](Tx& tx) {
    return SetServerStatus(tx, id, ServerStatus::kDraining);
  }));
  EXPECT_EQ(drained.previous, ServerStatus::kActive);
  EXPECT_EQ(drained.server.status, ServerStatus::kDraining);
  ASSERT_OK_AND_ASSIGN(ServerStatusChange activated, db().Transact([&](Tx& tx) {
    return SetServerStatus(tx, id, ServerStatus::kActive);
  }));
  EXPECT_EQ(activated.previous, ServerStatus::kDraining);
  EXPECT_ERROR_KIND(
      db().Transact([](Tx& tx) { return SetServerStatus(tx, NewUuidV4(), ServerStatus::kActive); }),
      ErrorKind::kNotFound);
}

TEST_F(ServersTest, OrganizationFilterListsServersHoldingItsVolumes) {
  const std::string acme = MakeOrganization("acme");
  const std::string other = MakeOrganization("other");
  const std::string w1 = MakeServer("w1");
  const std::string w2 = MakeServer("w2");
  MakeServer("w3");
  MakeVolume(MakeProject(acme, "a"), w1);
  MakeVolume(MakeProject(other, "b"), w2);

  ASSERT_OK_AND_ASSIGN(std::vector<Server> mine, db().Transact([&](Tx& tx) {
    return ListServers(tx, ServerFilter{.organization_id = acme});
  }));
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0].id, w1);
  ASSERT_OK_AND_ASSIGN(std::vector<Server> all,
                       db().Transact([](Tx& tx) { return ListServers(tx); }));
  EXPECT_EQ(all.size(), 3u);
}

TEST_F(ServersTest, EligibleWorkersFollowTheReferenceRules) {
  const std::string org = MakeOrganization();
  const std::string busy = MakeServer("a-busy");
  const std::string idle_b = MakeServer("b-idle");
  const std::string idle_c = MakeServer("c-idle");
  const std::string dead = MakeServer("d-dead");
  const std::string draining = MakeServer("e-draining");
  const std::string stale = MakeServer("f-stale");
  const std::string degraded = MakeServer("g-degraded");
  const std::string other_runtime = MakeServer("h-other", "crun");
  MakeVolume(MakeProject(org, "p1"), busy);
  Sql("UPDATE servers SET status = 'dead' WHERE id = '" + dead + "'");
  Sql("UPDATE servers SET status = 'draining' WHERE id = '" + draining + "'");
  Sql("UPDATE servers SET last_heartbeat_at = now() - interval '5 minutes' WHERE id = '" + stale +
      "'");
  Sql("UPDATE server_component_statuses SET status = 'degraded' WHERE server_id = '" + degraded +
      "'");

  ASSERT_OK_AND_ASSIGN(std::vector<EligibleWorker> workers, db().Transact([](Tx& tx) {
    return ListEligibleWorkers(tx, WorkerEligibility{.runtimes = {"sparse-file"}});
  }));
  std::vector<std::string> ids;
  for (const auto& w : workers) ids.push_back(w.server_id);
  EXPECT_EQ(ids, (std::vector<std::string>{idle_b, idle_c, busy}));
  EXPECT_EQ(workers.back().load, 1);

  ASSERT_OK_AND_ASSIGN(std::vector<EligibleWorker> any_runtime,
                       db().Transact([](Tx& tx) { return ListEligibleWorkers(tx); }));
  EXPECT_EQ(any_runtime.size(), 4u);
  EXPECT_TRUE(std::any_of(any_runtime.begin(), any_runtime.end(),
                          [&](const EligibleWorker& w) { return w.server_id == other_runtime; }));
}

}  // namespace
}  // namespace kindling::db
