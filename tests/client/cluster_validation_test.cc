// The validation checklist against the real API on a throwaway PostgreSQL:
// servers and their component metadata are written as workers would.
#include "client/cluster_validation.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api/api_server.h"
#include "common/ids.h"
#include "db/control_plane_status.h"
#include "db/db_test_util.h"
#include "db/servers.h"
#include "service/serve.h"

namespace kindling::client {
namespace {

using json = nlohmann::json;
using Outcome = ValidationStep::Outcome;

class ClusterValidationTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    auto boot = Must([&](db::Tx& tx) {
      return db::BootstrapPlatformAdmin(tx, "ops@example.com", "Ops", "acme");
    });
    ASSERT_TRUE(boot);
    admin_key_ = std::string(boot->api_key.secret.Reveal());
    server_ = std::make_unique<api::ApiServer>(db(), crypto::RandomKey());
    ASSERT_TRUE(server_->Start());
  }

  std::unique_ptr<ApiClient> Client(const std::string& key) {
    auto client = ApiClient::Create(
        ApiClientOptions{.base_url = "http://127.0.0.1:" + std::to_string(server_->port()),
                         .api_key = Secret::FromView(key)});
    EXPECT_TRUE(client) << client.error().message();
    return client ? std::move(*client) : nullptr;
  }

  // A worker that heartbeats now and reports `dsn` as its DSN.
  std::string Worker(const std::string& hostname, const std::string& dsn) {
    const std::string id = NewUuidV4();
    EXPECT_TRUE(Must([&](db::Tx& tx) -> Status {
      KINDLING_RETURN_IF_ERROR(db::RegisterServer(
          tx, db::ServerRegistration{
                  .id = id, .hostname = hostname, .enabled_components = {"worker"}}));
      return db::UpsertComponentStatus(
          tx,
          db::ComponentStatusUpdate{.server_id = id,
                                    .component = "worker",
                                    .status = db::ComponentHealth::kHealthy,
                                    .metadata_json = json{{"runtime", "sparse-image"},
                                                          {"dsn_sha256", service::DsnDigest(dsn)}}
                                                         .dump()});
    }));
    return id;
  }

  // The check the scheduling process on the database host stores.
  void StoreControlPlaneCheck(bool ok, const json& problems) {
    const json report = {{"ok", ok},
                         {"problems", problems},
                         {"last_backup", {{"label", "20261201-010000F"}, {"type", "full"}}},
                         {"last_backup_age_seconds", 1800},
                         {"last_archived_age_seconds", 30},
                         {"checked_by", {{"hostname", "db-1"}}}};
    EXPECT_TRUE(Must([&](db::Tx& tx) {
      return db::PutControlPlaneBackupStatus(
          tx,
          db::ControlPlaneBackupStatusInput{
              .stanza = "kindling", .ok = ok, .report_json = report.dump(), .hostname = "db-1"});
    }));
  }

  static const ValidationStep& StepNamed(const ValidationReport& report, std::string_view name) {
    for (const ValidationStep& step : report.steps)
      if (step.name == name) return step;
    ADD_FAILURE() << "no step " << name;
    static const ValidationStep none;
    return none;
  }

  std::string admin_key_;
  std::unique_ptr<api::ApiServer> server_;
};

constexpr char kDsn[] = "postgresql://kindling:secret-one@db.internal/kindling";

TEST_F(ClusterValidationTest, PassesWhenEveryHostAgreesAndSaysWhatItSkipped) {
  Worker("w1", kDsn);
  Worker("w2", "postgresql://kindling:another-password@db.internal/kindling");
  auto client = Client(admin_key_);
  const ValidationReport report =
      ValidateCluster(*client, ValidationInputs{.local_dsn_sha256 = service::DsnDigest(kDsn)});
  EXPECT_TRUE(report.passed()) << report.ToJson().dump(2);
  EXPECT_EQ(StepNamed(report, "api_meta").outcome, Outcome::kPass);
  EXPECT_EQ(StepNamed(report, "server_heartbeats").outcome, Outcome::kPass);
  // Passwords are not part of the comparison (nor of what servers publish).
  EXPECT_EQ(StepNamed(report, "dsn_files_agree").outcome, Outcome::kPass)
      << StepNamed(report, "dsn_files_agree").evidence;
  EXPECT_EQ(StepNamed(report, "control_plane_backup").outcome, Outcome::kSkip);
  EXPECT_EQ(StepNamed(report, "canary").outcome, Outcome::kSkip);
  EXPECT_EQ(StepNamed(report, "volume_records").outcome, Outcome::kSkip);
  EXPECT_EQ(report.ToJson()["steps"].size(), report.steps.size());
  EXPECT_EQ(report.ToJson().dump().find("secret-one"), std::string::npos);
}

TEST_F(ClusterValidationTest, FailsOnStaleHeartbeatsAndDifferentDsnFiles) {
  Worker("w1", kDsn);
  const std::string stale = Worker("w2", "postgresql://kindling@standby.internal/kindling");
  Sql("UPDATE servers SET last_heartbeat_at = now() - interval '5 minutes' WHERE id = '" + stale +
      "'");
  auto client = Client(admin_key_);
  const ValidationReport report =
      ValidateCluster(*client, ValidationInputs{.local_dsn_sha256 = service::DsnDigest(kDsn)});
  EXPECT_FALSE(report.passed());
  const ValidationStep& heartbeats = StepNamed(report, "server_heartbeats");
  EXPECT_EQ(heartbeats.outcome, Outcome::kFail);
  EXPECT_NE(heartbeats.evidence.find(stale), std::string::npos) << heartbeats.evidence;
  const ValidationStep& dsn = StepNamed(report, "dsn_files_agree");
  EXPECT_EQ(dsn.outcome, Outcome::kFail);
  EXPECT_NE(dsn.evidence.find("w2"), std::string::npos) << dsn.evidence;
  EXPECT_NE(dsn.evidence.find("this host"), std::string::npos) << dsn.evidence;
}

TEST_F(ClusterValidationTest, AKeyThatIsNotAPlatformAdminsFailsTheFirstStep) {
  Worker("w1", kDsn);
  const std::string member_key =
      Must([&](db::Tx& tx) -> Result<std::string> {
        KINDLING_ASSIGN_OR_RETURN(auto user, db::CreateUser(tx, db::NewUser{.email = "m@x.com"}));
        KINDLING_ASSIGN_OR_RETURN(auto key, db::CreateApiKey(tx, user.id, "k"));
        return std::string(key.secret.Reveal());
      }).value_or("");
  auto client = Client(member_key);
  const ValidationReport report = ValidateCluster(*client, ValidationInputs{});
  EXPECT_FALSE(report.passed());
  EXPECT_EQ(StepNamed(report, "api_meta").outcome, Outcome::kFail);
  EXPECT_NE(StepNamed(report, "api_meta").evidence.find("forbidden"), std::string::npos);
}

TEST_F(ClusterValidationTest, ThisHostsDsnMustReachAPrimary) {
  Worker("w1", kDsn);
  auto client = Client(admin_key_);
  const auto outcome = [&](std::optional<ValidationInputs::DsnProbe> probe) {
    const ValidationReport report =
        ValidateCluster(*client, ValidationInputs{.local_dsn_sha256 = service::DsnDigest(kDsn),
                                                  .local_dsn_probe = std::move(probe)});
    return StepNamed(report, "dsn_reaches_primary");
  };
  EXPECT_EQ(outcome(std::nullopt).outcome, Outcome::kSkip);
  EXPECT_EQ(outcome(ValidationInputs::DsnProbe{}).outcome, Outcome::kPass);
  const ValidationStep standby = outcome(ValidationInputs::DsnProbe{.in_recovery = true});
  EXPECT_EQ(standby.outcome, Outcome::kFail);
  EXPECT_NE(standby.evidence.find("standby"), std::string::npos) << standby.evidence;
  const ValidationStep down = outcome(ValidationInputs::DsnProbe{.error = "connection refused"});
  EXPECT_EQ(down.outcome, Outcome::kFail);
  EXPECT_NE(down.evidence.find("connection refused"), std::string::npos) << down.evidence;
}

TEST_F(ClusterValidationTest, NoActiveServerFails) {
  auto client = Client(admin_key_);
  const ValidationReport report = ValidateCluster(*client, ValidationInputs{});
  EXPECT_EQ(StepNamed(report, "server_heartbeats").outcome, Outcome::kFail);
  EXPECT_EQ(StepNamed(report, "dsn_files_agree").outcome, Outcome::kSkip);
}

TEST_F(ClusterValidationTest, ControlPlaneBackupStepReadsTheStoredCheck) {
  Worker("w1", kDsn);
  auto client = Client(admin_key_);
  // Nobody ever checked: skipped, saying how to set it up.
  ValidationStep step = StepNamed(ValidateCluster(*client, {}), "control_plane_backup");
  EXPECT_EQ(step.outcome, Outcome::kSkip);
  EXPECT_NE(step.evidence.find("control-plane configure"), std::string::npos) << step.evidence;

  StoreControlPlaneCheck(true, json::array());
  ValidationReport report = ValidateCluster(*client, {});
  step = StepNamed(report, "control_plane_backup");
  EXPECT_EQ(step.outcome, Outcome::kPass) << step.evidence;
  EXPECT_NE(step.evidence.find("20261201-010000F"), std::string::npos) << step.evidence;
  EXPECT_NE(step.evidence.find("30 min old"), std::string::npos) << step.evidence;
  EXPECT_NE(step.evidence.find("WAL archived 30 s ago"), std::string::npos) << step.evidence;
  EXPECT_TRUE(report.passed()) << report.ToJson().dump(2);

  StoreControlPlaneCheck(false, {"WAL archiving fails: the last attempt failed"});
  report = ValidateCluster(*client, {});
  step = StepNamed(report, "control_plane_backup");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("WAL archiving fails"), std::string::npos) << step.evidence;
  EXPECT_FALSE(report.passed());

  // A good check nobody renewed for an hour fails as stale.
  StoreControlPlaneCheck(true, json::array());
  Sql("UPDATE control_plane_backup_status SET checked_at = now() - interval '1 hour'");
  step = StepNamed(ValidateCluster(*client, {}), "control_plane_backup");
  EXPECT_EQ(step.outcome, Outcome::kFail);
  EXPECT_NE(step.evidence.find("stale"), std::string::npos) << step.evidence;
  EXPECT_NE(step.evidence.find("db-1"), std::string::npos) << step.evidence;
}

}  // namespace
}  // namespace kindling::client
