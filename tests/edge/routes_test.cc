// RouteTable without a network: hostnames match case-insensitively and
// without a port, picks go round-robin over healthy backends, the reason a
// pick fails is told, and health survives Replace() for backends that stay.
#include "edge/routes.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

namespace kindling::edge {
namespace {

Backend B(std::string id, int port) {
  return Backend{.instance_id = std::move(id), .host = "10.0.0.1", .port = port};
}

TEST(NormalizeHostnameTest, LowerCasesAndDropsPortAndTrailingDot) {
  EXPECT_EQ(NormalizeHostname("Web-Shop.Apps.Example.COM:8080"), "web-shop.apps.example.com");
  EXPECT_EQ(NormalizeHostname("web-shop.apps.example.com."), "web-shop.apps.example.com");
  EXPECT_EQ(NormalizeHostname("  web-shop.apps.example.com  "), "web-shop.apps.example.com");
  EXPECT_EQ(NormalizeHostname("[::1]:8443"), "[::1]");
  EXPECT_EQ(NormalizeHostname("[::1]"), "[::1]");
  EXPECT_EQ(NormalizeHostname(""), "");
}

TEST(RouteTableTest, UnknownHostAndNoHealthyBackendAreTold) {
  RouteTable table;
  table.Replace({Route{.hostname = "empty.apps.test"},
                 Route{.hostname = "down.apps.test", .backends = {B("i1", 1)}}});
  ASSERT_TRUE(table.MarkUnhealthy(B("i1", 1)));

  EXPECT_EQ(table.Pick("nope.apps.test").error(), PickError::kUnknownHost);
  EXPECT_EQ(table.Pick("empty.apps.test").error(), PickError::kNoHealthyBackend);
  EXPECT_EQ(table.Pick("down.apps.test").error(), PickError::kNoHealthyBackend);
  EXPECT_FALSE(table.HasHealthyBackend("down.apps.test"));
}

TEST(RouteTableTest, MatchesHostCaseInsensitivelyIgnoringPort) {
  RouteTable table;
  table.Replace({Route{.hostname = "Web-Shop.Apps.Test", .backends = {B("i1", 1)}}});
  EXPECT_EQ(table.Pick("web-shop.apps.test")->instance_id, "i1");
  EXPECT_EQ(table.Pick("WEB-SHOP.APPS.TEST:8080")->instance_id, "i1");
  EXPECT_TRUE(table.HasHealthyBackend("web-shop.apps.test:80"));
}

TEST(RouteTableTest, RoundRobinSkipsUnhealthyBackends) {
  RouteTable table;
  table.Replace({Route{.hostname = "web.test", .backends = {B("a", 1), B("b", 2), B("c", 3)}}});
  std::vector<std::string> picked;
  for (int i = 0; i < 6; ++i) picked.push_back(table.Pick("web.test")->instance_id);
  EXPECT_EQ(picked, (std::vector<std::string>{"a", "b", "c", "a", "b", "c"}));

  ASSERT_TRUE(table.MarkUnhealthy(B("b", 2)));
  EXPECT_FALSE(table.MarkUnhealthy(B("b", 2)));  // already down: no transition
  picked.clear();
  for (int i = 0; i < 4; ++i) picked.push_back(table.Pick("web.test")->instance_id);
  EXPECT_EQ(picked, (std::vector<std::string>{"a", "c", "a", "c"}));
}

TEST(RouteTableTest, AvoidNeverPicksThatBackend) {
  RouteTable table;
  table.Replace({Route{.hostname = "web.test", .backends = {B("a", 1), B("b", 2)}}});
  const Backend a = B("a", 1);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(table.Pick("web.test", &a)->instance_id, "b");
  table.Replace({Route{.hostname = "web.test", .backends = {B("a", 1)}}});
  EXPECT_EQ(table.Pick("web.test", &a).error(), PickError::kNoHealthyBackend);
}

TEST(RouteTableTest, HealthSurvivesReplaceForBackendsThatStay) {
  RouteTable table;
  table.Replace({Route{.hostname = "web.test", .backends = {B("a", 1), B("b", 2)}}});
  ASSERT_TRUE(table.MarkUnhealthy(B("a", 1)));

  table.Replace({Route{.hostname = "web.test", .backends = {B("a", 1), B("c", 3)}},
                 Route{.hostname = "api.test", .backends = {B("b", 2)}}});
  EXPECT_FALSE(table.IsHealthy(B("a", 1)));
  EXPECT_TRUE(table.IsHealthy(B("b", 2)));
  EXPECT_TRUE(table.IsHealthy(B("c", 3)));  // new backends start healthy

  // A backend that leaves is forgotten; when it comes back it starts afresh.
  table.Replace({Route{.hostname = "web.test", .backends = {B("c", 3)}}});
  EXPECT_FALSE(table.IsHealthy(B("a", 1)));
  table.Replace({Route{.hostname = "web.test", .backends = {B("a", 1), B("c", 3)}}});
  EXPECT_TRUE(table.IsHealthy(B("a", 1)));

  // Same address, new instance: another backend.
  ASSERT_TRUE(table.MarkUnhealthy(B("a", 1)));
  table.Replace({Route{.hostname = "web.test", .backends = {B("a2", 1), B("c", 3)}}});
  EXPECT_TRUE(table.IsHealthy(B("a2", 1)));
}

TEST(RouteTableTest, ProbesTurnUnhealthyAfterThresholdAndHealthyAfterOneSuccess) {
  RouteTable table;
  const Backend a = B("a", 1);
  table.Replace({Route{.hostname = "web.test", .backends = {a}}});

  EXPECT_FALSE(table.ReportProbe(a, false, 3));
  EXPECT_FALSE(table.ReportProbe(a, false, 3));
  EXPECT_TRUE(table.IsHealthy(a));
  EXPECT_TRUE(table.ReportProbe(a, false, 3));  // the transition is reported once
  EXPECT_FALSE(table.IsHealthy(a));
  EXPECT_FALSE(table.ReportProbe(a, false, 3));

  EXPECT_TRUE(table.ReportProbe(a, true, 3));
  EXPECT_TRUE(table.IsHealthy(a));
  // A success resets the count of consecutive failures.
  EXPECT_FALSE(table.ReportProbe(a, false, 2));
  EXPECT_FALSE(table.ReportProbe(a, true, 2));
  EXPECT_FALSE(table.ReportProbe(a, false, 2));
  EXPECT_TRUE(table.IsHealthy(a));

  // Probes of backends that left are ignored.
  EXPECT_FALSE(table.ReportProbe(B("gone", 9), false, 1));
}

TEST(RouteTableTest, MergesDuplicateHostnamesAndDropsEmptyOnes) {
  RouteTable table;
  table.Replace({Route{.hostname = "web.test", .backends = {B("a", 1), B("a", 1)}},
                 Route{.hostname = "WEB.test", .backends = {B("b", 2)}},
                 Route{.hostname = "", .backends = {B("x", 5)}}});
  ASSERT_EQ(table.size(), 1u);
  const auto summaries = table.Summaries();
  ASSERT_EQ(summaries.size(), 1u);
  EXPECT_EQ(summaries[0].hostname, "web.test");
  EXPECT_EQ(summaries[0].backends, 2u);
  EXPECT_EQ(table.Backends().size(), 2u);
}

TEST(RouteTableTest, SummariesCountHealthyBackendsSortedByHostname) {
  RouteTable table;
  table.Replace({Route{.hostname = "z.test", .backends = {B("a", 1), B("b", 2)}},
                 Route{.hostname = "m.test", .backends = {B("a", 1)}}});
  ASSERT_TRUE(table.MarkUnhealthy(B("a", 1)));
  const auto summaries = table.Summaries();
  ASSERT_EQ(summaries.size(), 2u);
  EXPECT_EQ(summaries[0].hostname, "m.test");
  EXPECT_EQ(summaries[0].healthy, 0u);
  EXPECT_EQ(summaries[1].hostname, "z.test");
  EXPECT_EQ(summaries[1].backends, 2u);
  EXPECT_EQ(summaries[1].healthy, 1u);
  // A backend in two routes is probed once.
  EXPECT_EQ(table.Backends().size(), 2u);
}

TEST(RouteTableTest, PicksWhileReplacingFromOtherThreads) {
  RouteTable table;
  const std::vector<Route> one{Route{.hostname = "web.test", .backends = {B("a", 1)}}};
  const std::vector<Route> two{Route{.hostname = "web.test", .backends = {B("b", 2), B("c", 3)}}};
  table.Replace(one);
  std::atomic<bool> stop{false};
  std::thread replacer([&] {
    for (int i = 0; !stop; ++i) table.Replace(i % 2 == 0 ? two : one);
  });
  std::vector<std::thread> pickers;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    pickers.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (!table.Pick("web.test")) ++failures;
        (void)table.Summaries();
      }
    });
  }
  for (auto& picker : pickers) picker.join();
  stop = true;
  replacer.join();
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace kindling::edge
