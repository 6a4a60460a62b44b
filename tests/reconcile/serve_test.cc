#include "service/serve.h"

#include <nlohmann/json.hpp>

#include "control/admin_service.h"
#include "control/backup_store.h"
#include "db/settings.h"
#include "engine/backup.h"
#include "reconcile_test_base.h"
#include "testutil/sparse_image.h"

namespace kindling::service {
namespace {

using std::chrono::milliseconds;

class ServeTest : public reconcile::ReconcileTest {
 protected:
  ServeOptions Options() {
    testutil::WriteFile(dir_ / "postgres.dsn", dsn() + "\n");
    ServeOptions o;
    o.components = {"worker"};
    o.dsn_file = dir_ / "postgres.dsn";
    o.state_dir = dir_ / "serve";
    o.heartbeat_interval = milliseconds(200);
    o.sweep_interval = milliseconds(200);
    o.handle_signals = false;
    o.stop = &stop_;
    return o;
  }

  std::atomic<bool> stop_{false};
};

TEST_F(ServeTest, KeepsStableIdsAndBacksUpThroughClusterSettings) {
  std::atomic<bool> ready{false};
  ServeOptions options = Options();
  options.on_ready = [&](const ServeContext&) { ready = true; };
  Status served;
  std::thread serving([&] { served = Serve(options); });
  ASSERT_TRUE(reconcile::ReconcileTest::WaitFor([&] { return ready.load(); }));
  auto server_id = LoadOrCreateServerId(dir_ / "serve" / "server-id");
  ASSERT_TRUE(server_id);
  auto master_key = LoadOrCreateMasterKey(dir_ / "serve" / "master.key");
  ASSERT_TRUE(master_key);

  // The local-directory store configured through cluster settings.
  ASSERT_TRUE(Must([&](db::Tx& tx) {
    return db::PutSetting(tx, control::kSettingLocalDirectory, (dir_ / "bucket").string());
  }));
  const db::Volume volume = MakePinnedVolume(*server_id);
  const auto image = dir_ / "serve" / "volumes" / (volume.id + ".img");
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(image); }));
  const db::QueuedOperation op = QueueBackup(volume);
  const db::Operation done = WaitFinished(op.operation.id);
  EXPECT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  auto backup = Must([&](db::Tx& tx) { return db::GetBackup(tx, *op.operation.backup_id); });
  EXPECT_EQ(backup->storage_url.value_or("").rfind("file://", 0), 0u);

  stop_ = true;
  serving.join();
  ASSERT_TRUE(served) << served.error().message();

  // A second start keeps the id and the key.
  stop_ = false;
  ready = false;
  std::thread again([&] { served = Serve(options); });
  ASSERT_TRUE(reconcile::ReconcileTest::WaitFor([&] { return ready.load(); }));
  stop_ = true;
  again.join();
  EXPECT_EQ(*LoadOrCreateServerId(dir_ / "serve" / "server-id"), *server_id);
  EXPECT_EQ(*LoadOrCreateMasterKey(dir_ / "serve" / "master.key"), *master_key);
  auto servers = Must([&](db::Tx& tx) { return db::ListServers(tx); });
  EXPECT_EQ(servers->size(), 1u);
}

// A database restored from an older snapshot lacks the rows of the backups
// made after it; the process that becomes the leader brings them back.
TEST_F(ServeTest, LeaderRescansTheStoresWhenItStartsLeading) {
  auto master_key = LoadOrCreateMasterKey(dir_ / "serve" / "master.key");
  ASSERT_TRUE(master_key);
  ASSERT_TRUE(control::UpdateBackupSettings(
      db(), *master_key, control::Actor{},
      control::BackupSettingsUpdate{.local_directory = (dir_ / "bucket").string()}));
  auto store = control::OpenCurrentBackupStore(db(), *master_key);
  ASSERT_TRUE(store) << store.error().message();
  const db::Volume volume = MakeVolume(MakeProject(org_), std::nullopt);
  testutil::MakeSparseFile(dir_ / "image", 8u << 20, {{.offset = 0, .length = 2u << 20}});
  engine::BackupOptions backup;
  backup.volume_id = volume.id;
  backup.backup_id = NewUuidV7();
  backup.image = dir_ / "image";
  ASSERT_TRUE(engine::CreateBackup(*store->repository, backup));

  std::atomic<bool> ready{false};
  ServeOptions options = Options();
  options.on_ready = [&](const ServeContext&) { ready = true; };
  Status served;
  std::thread serving([&] { served = Serve(options); });
  ASSERT_TRUE(reconcile::ReconcileTest::WaitFor([&] { return ready.load(); }));
  EXPECT_TRUE(WaitFor([&] {
    auto row = db().Transact([&](db::Tx& tx) { return db::GetBackup(tx, backup.backup_id); });
    return row && row->status == db::BackupStatus::kSucceeded;
  }));
  stop_ = true;
  serving.join();
  ASSERT_TRUE(served) << served.error().message();
  EXPECT_EQ(Sql("SELECT count(*) FROM cluster_audit_events WHERE action = "
                "'volume.backup.imported' AND user_id IS NULL")[0][0]
                .as<int>(),
            1);
}

TEST_F(ServeTest, RefusesToStartWithAnotherHostsMasterKey) {
  std::atomic<bool> ready{false};
  ServeOptions options = Options();
  options.on_ready = [&](const ServeContext&) { ready = true; };
  Status served;
  std::thread serving([&] { served = Serve(options); });
  ASSERT_TRUE(reconcile::ReconcileTest::WaitFor([&] { return ready.load(); }));
  stop_ = true;
  serving.join();
  ASSERT_TRUE(served) << served.error().message();

  // A second host whose master key file is a fresh one (not copied).
  stop_ = false;
  ServeOptions other = Options();
  other.state_dir = dir_ / "other-host";
  auto refused = Serve(other);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), ErrorKind::kWrongKey);
  EXPECT_NE(refused.error().message().find((dir_ / "other-host" / "master.key").string()),
            std::string::npos)
      << refused.error().message();

  // With the cluster's key file copied over, it starts.
  std::filesystem::copy_file(dir_ / "serve" / "master.key", dir_ / "other-host" / "master.key",
                             std::filesystem::copy_options::overwrite_existing);
  ready = false;
  other.on_ready = [&](const ServeContext&) { ready = true; };
  std::thread again([&] { served = Serve(other); });
  ASSERT_TRUE(reconcile::ReconcileTest::WaitFor([&] { return ready.load(); }));
  stop_ = true;
  again.join();
  EXPECT_TRUE(served) << served.error().message();
}

TEST_F(ServeTest, RefusesApiWithoutFactoryAndMissingDsnFile) {
  ServeOptions options = Options();
  options.components = {"api"};
  EXPECT_FALSE(Serve(options));
  options = Options();
  options.dsn_file = dir_ / "nope.dsn";
  auto served = Serve(options);
  ASSERT_FALSE(served);
  EXPECT_EQ(served.error().kind(), ErrorKind::kNotFound);
}

TEST(ParseListenAddressTest, HostAndPortOrAClearError) {
  auto parsed = ParseListenAddress("127.0.0.1:8080");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->host, "127.0.0.1");
  EXPECT_EQ(parsed->port, 8080);
  EXPECT_EQ(ParseListenAddress("0.0.0.0:0")->port, 0);
  for (const char* bad : {"8080", ":8080", "host:", "host:70000", "host:80x", "host:-1"}) {
    auto refused = ParseListenAddress(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(refused.error().message().find(bad), std::string::npos);
  }
}

TEST(ResolveDsnFileTest, FlagThenEnvironmentThenDefault) {
  ::unsetenv(kDsnFileEnv);
  EXPECT_EQ(ResolveDsnFile(""), kDefaultDsnFile);
  ::setenv(kDsnFileEnv, "/tmp/x.dsn", 1);
  EXPECT_EQ(ResolveDsnFile(""), "/tmp/x.dsn");
  EXPECT_EQ(ResolveDsnFile("/a.dsn"), "/a.dsn");
  ::unsetenv(kDsnFileEnv);
}

}  // namespace
}  // namespace kindling::service
