// ExplainWorkerChoice: every worker, eligible in the order chosen, the
// others with the first rule they fail.
#include "control/worker_choice.h"

#include <gtest/gtest.h>

namespace kindling::control {
namespace {

db::Server Worker(const std::string& id, const std::string& hostname, double heartbeat_age,
                  db::ComponentHealth health = db::ComponentHealth::kHealthy,
                  std::optional<std::string> runtime = "sparse-image") {
  db::Server s{.id = id, .hostname = hostname};
  s.enabled_components = {"worker"};
  s.heartbeat_age_seconds = heartbeat_age;
  s.components.push_back(db::ComponentStatus{.server_id = id,
                                             .component = "worker",
                                             .status = health,
                                             .last_error_message = "disk full",
                                             .runtime = std::move(runtime)});
  return s;
}

TEST(WorkerChoiceTest, EligibleFirstInOrderThenTheOthersWithWhyNot) {
  std::vector<db::Server> servers = {
      Worker("a", "alpha", 1),
      Worker("b", "bravo", 1),
      Worker("c", "charlie", 1),
      Worker("d", "delta", 95),
      Worker("e", "echo", 1, db::ComponentHealth::kDegraded),
      Worker("f", "foxtrot", 1, db::ComponentHealth::kHealthy, std::nullopt),
      Worker("g", "golf", 1, db::ComponentHealth::kHealthy, "qemu-microvm-tcg"),
  };
  servers[2].status = db::ServerStatus::kDraining;
  db::Server api_only{.id = "h", .hostname = "hotel"};
  api_only.enabled_components = {"api"};
  servers.push_back(api_only);
  db::Server silent = Worker("i", "india", 0);
  silent.heartbeat_age_seconds.reset();
  servers.push_back(silent);
  const std::vector<db::EligibleWorker> eligible = {{"b", "bravo", "sparse-image", 0},
                                                    {"a", "alpha", "sparse-image", 2}};

  const auto choices = ExplainWorkerChoice(servers, eligible, std::string("a"),
                                           std::chrono::seconds(20), {"sparse-image"});
  std::vector<std::string> order;
  for (const auto& c : choices) order.push_back(c.hostname);
  EXPECT_EQ(order, (std::vector<std::string>{"bravo", "alpha", "charlie", "delta", "echo",
                                             "foxtrot", "golf", "india"}))
      << "the api-only host is no worker";
  EXPECT_TRUE(choices[0].eligible);
  EXPECT_EQ(choices[0].load, 0);
  EXPECT_FALSE(choices[0].current);
  EXPECT_TRUE(choices[1].current);
  EXPECT_EQ(choices[1].load, 2);
  EXPECT_EQ(choices[2].reason, "the server is draining");
  EXPECT_EQ(choices[3].reason, "no heartbeat for 95 s (more than 20 s)");
  EXPECT_EQ(choices[4].reason, "its worker is degraded: disk full");
  EXPECT_EQ(choices[5].reason, "its worker reports no VM runtime");
  EXPECT_EQ(choices[6].reason, "its runtime qemu-microvm-tcg is not accepted here");
  EXPECT_EQ(choices[7].reason, "no heartbeat yet");
  for (std::size_t i = 2; i < choices.size(); ++i) EXPECT_FALSE(choices[i].eligible);
}

}  // namespace
}  // namespace kindling::control
