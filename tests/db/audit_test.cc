#include "db/audit.h"

#include <gtest/gtest.h>

#include <thread>

#include "db/settings.h"
#include "db_test_util.h"

namespace kindling::db {
namespace {

class AuditTest : public DbTest {
 protected:
  Status Insert(const std::string& action, const std::string& resource_type,
                const std::string& resource_id, const std::string& details = "{}") {
    return db().Transact([&](Tx& tx) -> Status {
      KINDLING_RETURN_IF_ERROR(InsertAuditEvent(tx, AuditEventInput{.action = action,
                                                                    .resource_type = resource_type,
                                                                    .resource_id = resource_id,
                                                                    .details_json = details}));
      return {};
    });
  }
};

TEST_F(AuditTest, InsertAndList) {
  const std::string user = NewUuidV4();
  ASSERT_OK_AND_ASSIGN(std::string id, db().Transact([&](Tx& tx) {
    return InsertAuditEvent(tx, AuditEventInput{.user_id = user,
                                                .action = "server.drain",
                                                .resource_type = "server",
                                                .resource_id = "s1",
                                                .details_json = R"({"previous":"active"})",
                                                .request_ip = "10.1.1.1",
                                                .user_agent = "curl/8"});
  }));
  ASSERT_OK_AND_ASSIGN(std::vector<AuditEvent> events,
                       db().Transact([](Tx& tx) { return ListAuditEvents(tx, {}); }));
  ASSERT_EQ(events.size(), 1u);
  const AuditEvent& e = events[0];
  EXPECT_EQ(e.id, id);
  EXPECT_EQ(e.user_id, user);
  EXPECT_EQ(e.action, "server.drain");
  EXPECT_EQ(e.resource_type, "server");
  EXPECT_EQ(e.resource_id, "s1");
  EXPECT_EQ(e.details_json, R"({"previous": "active"})");
  EXPECT_EQ(e.request_ip, "10.1.1.1");
  EXPECT_EQ(e.user_agent, "curl/8");
}

TEST_F(AuditTest, FiltersAndLimit) {
  ASSERT_OK(Insert("server.drain", "server", "s1"));
  ASSERT_OK(Insert("server.activate", "server", "s1"));
  ASSERT_OK(Insert("server.drain", "server", "s2"));
  ASSERT_OK(Insert("cluster.settings.update", "cluster_settings", "meta"));

  auto list = [&](AuditFilter filter) {
    auto events = db().Transact([&](Tx& tx) { return ListAuditEvents(tx, filter); });
    EXPECT_TRUE(events) << events.error().message();
    return events ? *events : std::vector<AuditEvent>{};
  };
  EXPECT_EQ(list({.action = "server.drain"}).size(), 2u);
  EXPECT_EQ(list({.resource_type = "server"}).size(), 3u);
  EXPECT_EQ(list({.resource_type = "server", .resource_id = "s1"}).size(), 2u);
  EXPECT_EQ(list({.limit = 1}).size(), 1u);
  // Newest first.
  EXPECT_EQ(list({.limit = 1})[0].action, "cluster.settings.update");

  // `since` cuts at a timestamp: everything is after a minute ago, nothing
  // after a minute from now.
  const Timestamp now =
      std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
  EXPECT_EQ(list({.since = now - std::chrono::minutes(1)}).size(), 4u);
  EXPECT_EQ(list({.since = now + std::chrono::minutes(1)}).size(), 0u);
  EXPECT_EQ(list({.before = now + std::chrono::minutes(1)}).size(), 4u);
}

TEST_F(AuditTest, RollsBackWithItsTransaction) {
  auto status = db().Transact([](Tx& tx) -> Status {
    KINDLING_RETURN_IF_ERROR(PutSetting(tx, "public_base_url", "https://example.com"));
    KINDLING_RETURN_IF_ERROR(InsertAuditEvent(
        tx, AuditEventInput{.action = "cluster.settings.update",
                            .resource_type = "cluster_settings",
                            .details_json = R"({"changed":["public_base_url"]})"}));
    return InternalError("the request failed after the audit write");
  });
  ASSERT_FALSE(status);
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events")[0][0].as<int>(), 0);
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_settings")[0][0].as<int>(), 0);
}

TEST_F(AuditTest, DetailsMustBeAJsonObject) {
  EXPECT_ERROR_KIND(Insert("a", "b", "c", "[1,2]"), ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(Insert("a", "b", "c", "{not json"), ErrorKind::kInvalidArgument);
  EXPECT_ERROR_KIND(Insert("", "b", "c"), ErrorKind::kInvalidArgument);
}

TEST_F(AuditTest, ReferenceOperatorQueryWorksUnchanged) {
  ASSERT_OK(Insert("server.drain", "server", "s1", R"({"reason":"maintenance"})"));
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_OK(Insert("server.activate", "server", "s1"));
  const pqxx::result rows =
      Sql("SELECT action, resource_type, resource_id, details, created_at FROM "
          "cluster_audit_events ORDER BY created_at DESC LIMIT 50;");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0].as<std::string>(), "server.activate");
  EXPECT_EQ(rows[1][0].as<std::string>(), "server.drain");
  EXPECT_EQ(rows[1][1].as<std::string>(), "server");
  EXPECT_EQ(rows[1][2].as<std::string>(), "s1");
  EXPECT_EQ(rows[1][3].as<std::string>(), R"({"reason": "maintenance"})");
}

}  // namespace
}  // namespace kindling::db
