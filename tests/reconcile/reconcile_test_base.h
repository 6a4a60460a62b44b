// Fixture for reconcile/ tests: a migrated database (DbTest), a local backup
// store behind a fault-injecting wrapper (more stores on request, any of
// them the current one), and workers with their own state directories and
// short intervals, run as threads of the test process or driven step by step.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
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
    current_store_url_ = StoreUrl();
    stores_ = std::make_unique<CachingStoreProvider>(
        [this] {
          std::string url;
          {
            std::lock_guard lock(stores_mu_);
            url = current_store_url_;
          }
          return OpenStore(url);
        },
        [this](const std::string& url) { return OpenStore(url); });
    org_ = MakeOrganization();
  }

  std::string StoreUrl() const { return "file://" + (dir_ / "store").string(); }

  // Creates another local store at <dir>/<name> (its own key, the same chunk
  // size) and returns its url; workers can read it by url at once.
  std::string AddStore(const std::string& name) {
    auto local = storage::LocalStore::Open(dir_ / name);
    EXPECT_TRUE(local) << local.error().message();
    if (!local) return "";
    auto repository = engine::Repository::Init(**local, crypto::RandomKey(), kStoreChunkSize);
    EXPECT_TRUE(repository) << repository.error().message();
    if (!repository) return "";
    const std::string url = "file://" + (dir_ / name).string();
    std::lock_guard lock(stores_mu_);
    ExtraStore& store = extra_stores_[url];
    store.local = std::move(*local);
    store.repository = std::make_unique<engine::Repository>(std::move(*repository));
    return url;
  }

  // Makes `url` the current store (new backups go there), as a settings
  // change announced on kindling_config would.
  void SetCurrentStore(const std::string& url) {
    {
      std::lock_guard lock(stores_mu_);
      current_store_url_ = url;
    }
    stores_->Invalidate();
  }

  // The repository of a store of this test; null for an unknown url.
  const engine::Repository* RepositoryAt(const std::string& url) {
    if (url == StoreUrl()) return repository_.get();
    std::lock_guard lock(stores_mu_);
    auto it = extra_stores_.find(url);
    return it == extra_stores_.end() ? nullptr : it->second.repository.get();
  }

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

  // A registered worker whose threads are not started: the test drives it
  // through its step functions (RunNextOperation, ReconcileImagesOnce), so
  // nothing happens behind its back.
  Worker& AddSteppedWorker(WorkerOptions options) {
    workers_.push_back(std::make_unique<Worker>(db(), *stores_, std::move(options)));
    Worker& worker = *workers_.back();
    auto registered = worker.Register();
    EXPECT_TRUE(registered) << registered.error().message();
    auto beat = worker.HeartbeatOnce();
    EXPECT_TRUE(beat) << beat.error().message();
    return worker;
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

  Result<std::shared_ptr<const StoreHandle>> OpenStore(const std::string& url) {
    const engine::Repository* repository = RepositoryAt(url);
    if (repository == nullptr) return NotFound("no store " + url + " in this test");
    auto handle = std::make_shared<StoreHandle>();
    handle->url = url;
    handle->repository = std::make_unique<engine::Repository>(*repository);
    return std::shared_ptr<const StoreHandle>(std::move(handle));
  }

  struct ExtraStore {
    std::unique_ptr<storage::LocalStore> local;
    std::unique_ptr<engine::Repository> repository;
  };

  testutil::TempDir dir_;
  std::unique_ptr<storage::LocalStore> local_;
  std::unique_ptr<testutil::FaultInjectingStore> faulty_;
  std::unique_ptr<engine::Repository> repository_;
  std::unique_ptr<CachingStoreProvider> stores_;
  std::string org_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex stores_mu_;
  std::string current_store_url_;                   // guarded by stores_mu_
  std::map<std::string, ExtraStore> extra_stores_;  // guarded by stores_mu_
};

}  // namespace kindling::reconcile
