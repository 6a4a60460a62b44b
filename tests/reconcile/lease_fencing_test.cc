// A PostgreSQL stall longer than an operation's lease, between one worker and
// the database only: the leader's sweep (directly connected) re-queues the
// operation while the worker's execution still runs, the worker's own
// executors are free to claim it again, and everything the stalled
// execution sends flows on once the stall ends. The per-claim fencing token
// and the busy-volume check of the claim must keep it to one execution at a
// time and one completion.
#include <fstream>
#include <future>
#include <sstream>

#include "db/audit.h"
#include "reconcile_test_base.h"
#include "testutil/postgres_server.h"
#include "testutil/tcp_proxy.h"

namespace kindling::reconcile {
namespace {

using std::chrono::milliseconds;

class LeaseFencingTest : public ReconcileTest {
 public:
  void Release() { testutil::WriteFile(dir_ / "release", ""); }

 protected:
  // A fake e2fsck: logs "start <pid>", logs "overlap <pid>" when another
  // instance is running, waits until <dir>/release exists, logs "end <pid>"
  // and exits 0 (filesystem clean).
  std::filesystem::path MakeGatedFsck() {
    const std::filesystem::path tool = dir_ / "fake-e2fsck";
    const std::string d = dir_.path().string();
    testutil::WriteFile(tool,
                        "#!/bin/sh\n"
                        "echo \"start $$\" >> " +
                            d +
                            "/runs.log\n"
                            "mkdir " +
                            d + "/running 2>/dev/null || echo \"overlap $$\" >> " + d +
                            "/runs.log\n"
                            "while [ ! -e " +
                            d +
                            "/release ]; do sleep 0.02; done\n"
                            "echo \"end $$\" >> " +
                            d +
                            "/runs.log\n"
                            "rmdir " +
                            d +
                            "/running 2>/dev/null\n"
                            "exit 0\n");
    std::filesystem::permissions(tool, std::filesystem::perms::owner_all);
    return tool;
  }

  std::vector<std::string> Runs() {
    std::ifstream in(dir_ / "runs.log");
    std::vector<std::string> events;
    for (std::string line; std::getline(in, line);)
      events.push_back(line.substr(0, line.find(' ')));
    return events;
  }

  // dsn() with the port replaced by `port`, and sessions that a stall caught
  // inside a transaction ended by the server: the sweep skips rows locked by
  // such a transaction, as a real stalled client's would be until TCP gave up.
  std::string DsnThrough(int port) {
    std::string proxied = dsn();
    const std::string from = ":" + std::to_string(testutil::PostgresServer::Shared().port()) + "/";
    const std::size_t at = proxied.find(from);
    EXPECT_NE(at, std::string::npos) << proxied;
    if (at == std::string::npos) return proxied;
    proxied.replace(at, from.size(), ":" + std::to_string(port) + "/");
    proxied += proxied.find('?') == std::string::npos ? "?" : "&";
    return proxied + "options=-c%20idle_in_transaction_session_timeout%3D1000";
  }
};

TEST_F(LeaseFencingTest, AStallPastTheLeaseNeverRunsAnOperationTwiceAtOnce) {
  testutil::TcpProxy proxy(testutil::PostgresServer::Shared().port());
  db::DatabaseOptions worker_db_options = Options();
  worker_db_options.dsn = DsnThrough(proxy.port());
  worker_db_options.max_connections = 8;
  auto worker_db = db::Database::Open(worker_db_options);
  ASSERT_TRUE(worker_db) << worker_db.error().message();

  WorkerOptions options = FastOptions("w1");
  options.e2fsck_tool = MakeGatedFsck().string();
  options.max_concurrent_operations = 2;  // an idle executor could claim it again
  options.lease_duration = milliseconds(1500);
  options.lease_renew_interval = milliseconds(300);
  Worker worker(**worker_db, *stores_, options);
  // e2fsck is not cancellable: whatever happens, it must end before the
  // worker stops.
  struct ReleaseAtExit {
    LeaseFencingTest& test;
    ~ReleaseAtExit() { test.Release(); }
  } release_at_exit{*this};
  ASSERT_TRUE(worker.Start());
  // The leader reaches the database directly; the worker's silence during
  // the stall must not make its server dead (that would fail the repair).
  LeaderOptions leader_options = FastLeader();
  leader_options.silent_after = std::chrono::seconds(600);
  Leader leader(db(), leader_options);

  const db::Volume volume = MakePinnedVolume(worker.server_id());
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(worker.ImageOf(volume.id)); }))
      << "image never created";
  const db::QueuedOperation queued = Queue({.volume_id = volume.id,
                                            .kind = db::OperationKind::kRepair,
                                            .server_id = worker.server_id()});
  const std::string op_id = queued.operation.id;
  ASSERT_TRUE(WaitFor([&] { return Runs().size() == 1; })) << "e2fsck never started";
  const db::Operation first = GetOperation(op_id);
  ASSERT_EQ(first.status, db::OperationStatus::kRunning);
  ASSERT_EQ(first.attempts, 1);

  // The stall: past the lease, until the sweep has re-queued the operation.
  proxy.Pause();
  ASSERT_TRUE(WaitFor([&] {
    auto report = leader.SweepOnce(/*with_schedules=*/false);
    EXPECT_TRUE(report) << report.error().message();
    return report && !report->requeued.empty();
  })) << "the sweep never took the operation over";
  db::Operation requeued = GetOperation(op_id);
  EXPECT_EQ(requeued.status, db::OperationStatus::kPending);
  EXPECT_EQ(requeued.server_id, worker.server_id());
  EXPECT_FALSE(requeued.lease_owner);
  proxy.Resume();

  // The first execution still runs its e2fsck: no claim in this process may
  // take the volume's operation (its executors are woken by the re-queue's
  // NOTIFY and their sweep; this one is the test's).
  auto claim = std::async(std::launch::async, [&] { return worker.RunNextOperation(); });
  if (claim.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    Release();  // a second e2fsck is running: let it end, then fail
    FAIL() << "a second execution was started while the first one ran";
  }
  auto ran = claim.get();
  ASSERT_TRUE(ran) << ran.error().message();
  EXPECT_FALSE(*ran) << "claimed an operation whose volume is busy here";
  EXPECT_EQ(GetOperation(op_id).status, db::OperationStatus::kPending);
  EXPECT_EQ(Runs(), (std::vector<std::string>{"start"}));

  // The first e2fsck ends: its execution finds its claim stale and leaves
  // the row alone; the volume is free, the worker claims the operation again
  // and completes it.
  Release();
  const db::Operation done = WaitFinished(op_id);
  ASSERT_EQ(done.status, db::OperationStatus::kSucceeded) << done.error.value_or("");
  EXPECT_EQ(done.attempts, 2);
  EXPECT_FALSE(done.lease_owner);
  EXPECT_EQ(Runs(), (std::vector<std::string>{"start", "end", "start", "end"}))
      << "e2fsck runs overlapped or ran a third time";
  const db::Volume after = GetVolume(volume.id);
  EXPECT_EQ(after.status, db::VolumeStatus::kDetached);
  EXPECT_EQ(after.health, db::VolumeHealth::kHealthy);
  EXPECT_FALSE(after.last_error);

  worker.Stop();
  // Exactly one completion and no failure were recorded for the volume.
  auto events = Must([&](db::Tx& tx) {
    return db::ListAuditEvents(
        tx, db::AuditFilter{.resource_type = "project_volume", .resource_id = volume.id});
  });
  ASSERT_TRUE(events);
  int succeeded = 0;
  int failed = 0;
  for (const db::AuditEvent& e : *events) {
    if (e.action == "volume.repair.succeeded") ++succeeded;
    if (e.action == "volume.repair.failed") ++failed;
  }
  EXPECT_EQ(succeeded, 1);
  EXPECT_EQ(failed, 0);
  // Nothing else ran afterwards.
  EXPECT_EQ(GetOperation(op_id).attempts, 2);
}

}  // namespace
}  // namespace kindling::reconcile
