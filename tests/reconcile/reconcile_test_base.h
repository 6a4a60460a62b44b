// Fixture for reconcile/ tests: a migrated database (DbTest), a local backup
// store behind a fault-injecting wrapper, and workers with their own state
// directories and short intervals, run as threads of the test process.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "crypto/aead.h"
#include "db/backups.h"
#include "db/db_test_util.h"
#include "db/operations.h"
#include "engine/repository.h"
#include "reconcile/leader.h"
#include "reconcile/store_provider.h"
#include "reconcile/volume_images.h"
#include "reconcile/worker.h"
#include "storage/local_store.h"
#include "testutil/fault_injecting_store.h"
#include "testutil/temp_dir.h"

namespace kindling::reconcile {

// Chunk size of the test store (image digests depend on it).
inline constexpr std::uint32_t kStoreChunkSize = 1u << 20;

class ReconcileTest : public db::DbTest {
 protected:
  void SetUp() override {
    db::DbTest::SetUp();
    if (HasFatalFailure()) return;
    auto local = storage::LocalStore::Open(dir_ / "store");
    ASSERT_TRUE(local) << local.error().message();
    local_ = std::move(*local);
    faulty_ = std::make_unique<testutil::FaultInjectingStore>(*local_);
    const crypto::Key key = crypto::RandomKey();
    auto repository = engine::Repository::Init(*faulty_, key, kStoreChunkSize);
    ASSERT_TRUE(repository) << repository.error().message();
    repository_ = std::make_unique<engine::Repository>(std::move(*repository));
    auto open = [this]() -> Result<std::shared_ptr<const StoreHandle>> {
      auto handle = std::make_shared<StoreHandle>();
      handle->url = StoreUrl();
      handle->repository = std::make_unique<engine::Repository>(*repository_);
      return std::shared_ptr<const StoreHandle>(std::move(handle));
    };
    stores_ = std::make_unique<CachingStoreProvider>(
        open, [this, open](const std::string& url) -> Result<std::shared_ptr<const StoreHandle>> {
          if (url != StoreUrl()) return NotFound("no store " + url + " in this test");
          return open();
        });
    org_ = MakeOrganization();
  }

  std::string StoreUrl() const { return "file://" + (dir_ / "store").string(); }

  void TearDown() override {
    for (auto& w : workers_) w->Stop();
    workers_.clear();
  }

  WorkerOptions FastOptions(const std::string& name) {
    WorkerOptions o;
    o.server_id = NewUuidV4();
    o.hostname = name;
    o.state_dir = dir_ / name;
    o.heartbeat_interval = std::chrono::milliseconds(200);
    o.sweep_interval = std::chrono::milliseconds(200);
    o.lease_duration = std::chrono::milliseconds(1500);
    o.lease_renew_interval = std::chrono::milliseconds(300);
    o.progress_interval = std::chrono::milliseconds(100);
    o.engine_threads = 2;
    return o;
  }

  Worker& StartWorker(WorkerOptions options) {
    workers_.push_back(std::make_unique<Worker>(db(), *stores_, std::move(options)));
    auto started = workers_.back()->Start();
    EXPECT_TRUE(started) << started.error().message();
    return *workers_.back();
  }

  LeaderOptions FastLeader() {
    LeaderOptions o;
    o.sweep_interval = std::chrono::milliseconds(200);
    o.silent_after = std::chrono::seconds(2);
    o.eligibility.max_heartbeat_age = std::chrono::seconds(2);
    return o;
  }

  // A volume of `size_gb` GiB pinned to `server_id`, and its project.
  db::Volume MakePinnedVolume(const std::string& server_id, int size_gb = 1) {
    auto volume = Must([&](db::Tx& tx) {
      auto project = db::CreateProject(tx, org_, "p-" + NewUuidV4().substr(0, 8));
      if (!project) return Result<db::Volume>(std::unexpected(project.error()));
      return db::CreateVolume(
          tx, db::NewVolume{.project_id = project->id, .server_id = server_id, .size_gb = size_gb});
    });
    return volume ? *volume : db::Volume{};
  }

  db::Volume GetVolume(const std::string& id) {
    auto v = Must([&](db::Tx& tx) { return db::GetVolume(tx, id); });
    return v ? *v : db::Volume{};
  }
  db::Operation GetOperation(const std::string& id) {
    auto o = Must([&](db::Tx& tx) { return db::GetOperation(tx, id); });
    return o ? *o : db::Operation{};
  }

  db::QueuedOperation Queue(const db::QueueOperationRequest& request) {
    auto q = Must([&](db::Tx& tx) { return db::QueueOperation(tx, request); });
    return q ? *q : db::QueuedOperation{};
  }
  db::QueuedOperation QueueBackup(const db::Volume& v) {
    return Queue({.volume_id = v.id,
                  .kind = db::OperationKind::kBackup,
                  .server_id = *v.server_id,
                  .create_backup = db::BackupKind::kManual});
  }

  // Polls `done` every 20 ms up to `timeout`.
  static bool WaitFor(const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return done();
  }

  db::Operation WaitFinished(const std::string& operation_id,
                             std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    db::Operation op;
    WaitFor(
        [&] {
          op = GetOperation(operation_id);
          return db::IsFinished(op.status);
        },
        timeout);
    return op;
  }

  testutil::TempDir dir_;
  std::unique_ptr<storage::LocalStore> local_;
  std::unique_ptr<testutil::FaultInjectingStore> faulty_;
  std::unique_ptr<engine::Repository> repository_;
  std::unique_ptr<CachingStoreProvider> stores_;
  std::string org_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace kindling::reconcile
