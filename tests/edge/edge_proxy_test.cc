// EdgeProxy in front of real HTTP backends on ephemeral ports: routing by
// Host, round-robin, the edge's own 404/503/502/413 answers, failover when a
// backend dies and its return, what is forwarded and stripped, bodies both
// ways, and route replacement under concurrent requests.
#include "edge/edge_proxy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "edge/health_checker.h"
#include "edge/test_backend.h"

namespace kindling::edge {
namespace {

using testing::LogCapture;
using testing::ProxyGet;
using testing::TestBackend;
using testing::WaitFor;

constexpr const char* kWeb = "web-shop.apps.test";

class EdgeProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_.Start();
    b_.Start();
    proxy_ = std::make_unique<EdgeProxy>(
        table_, EdgeProxyOptions{.listen_address = "127.0.0.1",
                                 .port = 0,
                                 .max_body_bytes = 64 * 1024,
                                 .connect_timeout = std::chrono::milliseconds(500),
                                 .backend_timeout = std::chrono::milliseconds(300),
                                 .client_timeout = std::chrono::seconds(5),
                                 .worker_threads = 8});
    ASSERT_TRUE(proxy_->Start());
    ASSERT_GT(proxy_->port(), 0);
  }
  void TearDown() override {
    a_.Release();
    b_.Release();
    proxy_->Stop();
  }

  void RouteWebTo(std::vector<Backend> backends) {
    table_.Replace({Route{.hostname = kWeb, .backends = std::move(backends)}});
  }
  httplib::Result Get(const std::string& path, const std::string& host = kWeb,
                      httplib::Headers headers = {}) {
    return ProxyGet(proxy_->port(), host, path, std::move(headers));
  }
  httplib::Client Client() {
    httplib::Client client("127.0.0.1", proxy_->port());
    client.set_read_timeout(std::chrono::seconds(5));
    return client;
  }

  // Declared first: outlives the servers that log into it.
  LogCapture log_;
  TestBackend a_{"a"};
  TestBackend b_{"b"};
  RouteTable table_;
  std::unique_ptr<EdgeProxy> proxy_;
};

TEST_F(EdgeProxyTest, RoutesByHostIgnoringCaseAndPort) {
  table_.Replace({Route{.hostname = kWeb, .backends = {a_.backend()}},
                  Route{.hostname = "api-shop.apps.test", .backends = {b_.backend()}}});
  auto web = Get("/", "WEB-Shop.Apps.Test:8080");
  ASSERT_TRUE(web);
  EXPECT_EQ(web->status, 200);
  EXPECT_EQ(web->body, "a");
  auto api = Get("/", "api-shop.apps.test");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->body, "b");
}

TEST_F(EdgeProxyTest, RoundRobinAcrossTwoBackends) {
  RouteWebTo({a_.backend(), b_.backend()});
  std::vector<std::string> answers;
  for (int i = 0; i < 6; ++i) {
    auto res = Get("/");
    ASSERT_TRUE(res);
    answers.push_back(res->body);
  }
  for (int i = 1; i < 6; ++i) EXPECT_NE(answers[i], answers[i - 1]) << i;
  EXPECT_EQ(a_.request_count(), 3u);
  EXPECT_EQ(b_.request_count(), 3u);
}

TEST_F(EdgeProxyTest, UnknownHostIs404NamingIt) {
  RouteWebTo({a_.backend()});
  auto res = Get("/x", "Nobody-Shop.apps.test");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_NE(res->body.find("nobody-shop.apps.test"), std::string::npos) << res->body;
  EXPECT_NE(res->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_EQ(a_.request_count(), 0u);

  // A hostname with markup in it is shown, not interpreted.
  auto evil = Get("/", "<script>.test");
  ASSERT_TRUE(evil);
  EXPECT_EQ(evil->status, 404);
  EXPECT_EQ(evil->body.find("<script>"), std::string::npos);
}

TEST_F(EdgeProxyTest, AllBackendsDownIs503) {
  RouteWebTo({a_.backend(), b_.backend()});
  ASSERT_TRUE(table_.MarkUnhealthy(a_.backend()));
  ASSERT_TRUE(table_.MarkUnhealthy(b_.backend()));
  auto res = Get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_NE(res->body.find("No instance of web-shop.apps.test is up"), std::string::npos)
      << res->body;
  EXPECT_EQ(res->get_header_value("Retry-After"), "5");

  // A route without instances (the deployment is stopped) answers the same.
  RouteWebTo({});
  auto empty = Get("/");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 503);
}

TEST_F(EdgeProxyTest, DeadBackendIsMarkedDownAndTrafficGoesToTheOther) {
  RouteWebTo({a_.backend(), b_.backend()});
  const int b_port = b_.port();
  b_.Stop();
  for (int i = 0; i < 4; ++i) {
    auto res = Get("/");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "a");
  }
  EXPECT_FALSE(table_.IsHealthy(b_.backend()));
  EXPECT_EQ(a_.request_count(), 4u);
  const auto counters = proxy_->counters();
  EXPECT_EQ(counters.connect_failures, 1u);  // once down, b is not tried again
  EXPECT_EQ(counters.retries, 1u);
  EXPECT_EQ(log_.Count("is down"), 1u);

  // It comes back: one good health check and it takes its share again.
  b_.Start(b_port);
  HealthChecker checker(table_, HealthCheckOptions{.timeout = std::chrono::milliseconds(300)});
  checker.CheckOnce();
  EXPECT_TRUE(table_.IsHealthy(b_.backend()));
  std::map<std::string, int> answers;
  for (int i = 0; i < 4; ++i) {
    auto res = Get("/");
    ASSERT_TRUE(res);
    ++answers[res->body];
  }
  EXPECT_EQ(answers, (std::map<std::string, int>{{"a", 2}, {"b", 2}}));
}

TEST_F(EdgeProxyTest, OnlyBackendRefusingIs503) {
  RouteWebTo({b_.backend()});
  b_.Stop();
  auto res = Get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_FALSE(table_.IsHealthy(b_.backend()));
}

TEST_F(EdgeProxyTest, BackendTimeoutIs502AndDoesNotMarkItDown) {
  RouteWebTo({a_.backend()});
  a_.set_slow(true);
  const auto start = std::chrono::steady_clock::now();
  auto res = Get("/slow");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
  EXPECT_NE(res->body.find("failed to answer"), std::string::npos) << res->body;
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  EXPECT_TRUE(table_.IsHealthy(a_.backend()));
  EXPECT_EQ(proxy_->counters().backend_failures, 1u);
}

TEST_F(EdgeProxyTest, GetIsRetriedOnAnotherBackendAfterAFailureButPostIsNot) {
  RouteWebTo({a_.backend(), b_.backend()});
  a_.set_slow(true);
  for (int i = 0; i < 2; ++i) {
    auto res = Get("/page");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "b");
  }
  std::map<int, int> statuses;
  for (int i = 0; i < 2; ++i) {
    auto res = Client().Post("/form", {{"Host", kWeb}}, "x=1", "application/x-www-form-urlencoded");
    ASSERT_TRUE(res);
    ++statuses[res->status];
  }
  EXPECT_EQ(statuses, (std::map<int, int>{{200, 1}, {502, 1}}));
  std::size_t posts_to_b = 0;
  for (const auto& seen : b_.requests()) posts_to_b += seen.method == "POST" ? 1 : 0;
  EXPECT_EQ(posts_to_b, 1u);
}

TEST_F(EdgeProxyTest, ForwardsHeadersPathAndQueryAndStripsHopByHop) {
  RouteWebTo({a_.backend()});
  auto res = Get("/some%20path/x?q=a%2Fb&r=1", "Web-Shop.apps.test:8080",
                 {{"X-Custom", "kept"},
                  {"Authorization", "Bearer secret-token"},
                  {"Connection", "X-Private-Hop"},
                  {"X-Private-Hop", "dropped"},
                  {"Keep-Alive", "timeout=5"},
                  {"Proxy-Authorization", "Basic Zm9vOmJhcg=="},
                  {"TE", "trailers"},
                  {"X-Forwarded-For", "203.0.113.7"},
                  {"X-Forwarded-Proto", "spoofed"},
                  {"X-Forwarded-Host", "spoofed.example"}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const auto seen = a_.requests();
  ASSERT_EQ(seen.size(), 1u);
  const auto& headers = seen[0].headers;
  auto value = [&](const std::string& name) {
    auto it = headers.find(name);
    return it == headers.end() ? std::string("(absent)") : it->second;
  };
  EXPECT_EQ(seen[0].target, "/some%20path/x?q=a%2Fb&r=1");
  EXPECT_EQ(value("X-Custom"), "kept");
  EXPECT_EQ(value("Authorization"), "Bearer secret-token");
  EXPECT_EQ(value("Host"), "Web-Shop.apps.test:8080");
  EXPECT_EQ(value("X-Private-Hop"), "(absent)");
  EXPECT_EQ(value("Keep-Alive"), "(absent)");
  EXPECT_EQ(value("Proxy-Authorization"), "(absent)");
  EXPECT_EQ(value("TE"), "(absent)");
  EXPECT_EQ(value("X-Forwarded-For"), "203.0.113.7, 127.0.0.1");
  EXPECT_EQ(value("X-Forwarded-Proto"), "http");
  EXPECT_EQ(value("X-Forwarded-Host"), "Web-Shop.apps.test:8080");
  EXPECT_EQ(headers.count("X-Forwarded-Proto"), 1u);
  EXPECT_EQ(headers.count("X-Forwarded-Host"), 1u);
  // httplib's pseudo headers of the edge's own client connection stay behind
  // (the backend's server adds its own).
  EXPECT_EQ(headers.count("REMOTE_ADDR"), 1u);
  EXPECT_EQ(headers.count("LOCAL_PORT"), 1u);

  // The answer's headers come back, repeated ones included.
  EXPECT_EQ(res->get_header_value("X-Backend"), "a");
  EXPECT_EQ(res->get_header_value_count("Set-Cookie"), 2u);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain");
  EXPECT_EQ(res->get_header_value("Content-Length"), "1");
}

TEST_F(EdgeProxyTest, BackendErrorAnswersPassThroughUntouched) {
  RouteWebTo({a_.backend()});
  for (int status : {404, 500, 503}) {
    auto res = Get("/status/" + std::to_string(status));
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status);
    EXPECT_EQ(res->body, "status " + std::to_string(status) + " from a");
  }
  EXPECT_TRUE(table_.IsHealthy(a_.backend()));
}

TEST_F(EdgeProxyTest, RequestBodiesAreForwardedAndEchoed) {
  RouteWebTo({a_.backend()});
  std::string body;
  for (int i = 0; i < 40 * 1024; ++i) body.push_back(static_cast<char>(i * 7 % 256));
  auto client = Client();
  auto post = client.Post("/upload?x=1", {{"Host", kWeb}}, body, "application/octet-stream");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 200);
  EXPECT_EQ(post->body, body);
  EXPECT_EQ(post->get_header_value("Content-Type"), "application/octet-stream");

  auto put = client.Put("/doc", {{"Host", kWeb}}, "{\"a\":1}", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->body, "{\"a\":1}");
  auto patch = client.Patch("/doc", {{"Host", kWeb}}, "p", "text/plain");
  ASSERT_TRUE(patch);
  EXPECT_EQ(patch->body, "p");

  const auto seen = a_.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/upload?x=1");
  EXPECT_EQ(seen[0].body, body);
  EXPECT_EQ(seen[1].method, "PUT");
  EXPECT_EQ(seen[2].method, "PATCH");
}

TEST_F(EdgeProxyTest, KeepAliveConnectionCarriesSeveralRequests) {
  RouteWebTo({a_.backend(), b_.backend()});
  auto client = Client();
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  std::map<std::string, int> answers;
  for (int i = 0; i < 4; ++i) {
    auto res = client.Get("/", {{"Host", kWeb}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    ++answers[res->body];
  }
  auto post = client.Post("/echo", {{"Host", kWeb}}, "hello", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->body, "hello");
  auto missing = client.Get("/", {{"Host", "missing.test"}});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(answers, (std::map<std::string, int>{{"a", 2}, {"b", 2}}));
  client.stop();
}

TEST_F(EdgeProxyTest, BodyOverTheLimitIs413AndNeverReachesTheBackend) {
  RouteWebTo({a_.backend()});
  const std::string body(64 * 1024 + 1, 'x');
  auto res = Client().Post("/upload", {{"Host", kWeb}}, body, "application/octet-stream");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  EXPECT_EQ(a_.request_count(), 0u);
  EXPECT_TRUE(WaitFor([&] { return proxy_->counters().responses[3] == 1; }));
}

TEST_F(EdgeProxyTest, HeadKeepsTheBackendsContentLength) {
  RouteWebTo({a_.backend()});
  auto res = Client().Head("/", {{"Host", kWeb}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Length"), "1");
  EXPECT_TRUE(res->body.empty());
  ASSERT_EQ(a_.requests().size(), 1u);
  EXPECT_EQ(a_.requests()[0].method, "HEAD");
}

TEST_F(EdgeProxyTest, RangeAndCompressedAnswersAreNotReworked) {
  RouteWebTo({a_.backend()});
  auto range = Get("/range", kWeb, {{"Range", "bytes=2-5"}});
  ASSERT_TRUE(range);
  EXPECT_EQ(range->status, 206);
  EXPECT_EQ(range->body, "2345");

  // The backend compresses; the edge passes the gzip body on as it is (the
  // test client inflates it once).
  auto text = Get("/text", kWeb, {{"Accept-Encoding", "gzip"}});
  ASSERT_TRUE(text);
  EXPECT_EQ(text->status, 200);
  EXPECT_EQ(text->get_header_value("Content-Encoding"), "gzip");
  EXPECT_EQ(text->body, TestBackend::LongText());
}

TEST_F(EdgeProxyTest, EdgeHealthEndpointAnswersOnAnyHost) {
  auto res = Get("/_edge/healthz", "anything.example");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");
}

TEST_F(EdgeProxyTest, ConcurrentRequestsDuringReplaceAllGetAnswers) {
  const std::vector<Route> only_a{Route{.hostname = kWeb, .backends = {a_.backend()}}};
  const std::vector<Route> only_b{Route{.hostname = kWeb, .backends = {b_.backend()}}};
  const std::vector<Route> both{Route{.hostname = kWeb, .backends = {a_.backend(), b_.backend()}}};
  table_.Replace(both);

  std::atomic<bool> done{false};
  std::atomic<int> replaced{0};
  std::thread replacer([&] {
    for (int i = 0; !done; ++i) {
      table_.Replace(i % 3 == 0 ? only_a : i % 3 == 1 ? only_b : both);
      ++replaced;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::atomic<int> ok{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 40; ++i) {
        auto res = Get("/");
        if (res && res->status == 200 && (res->body == "a" || res->body == "b")) {
          ++ok;
        } else {
          ++bad;
        }
      }
    });
  }
  for (auto& client : clients) client.join();
  done = true;
  replacer.join();
  EXPECT_EQ(ok, 160);
  EXPECT_EQ(bad, 0);
  EXPECT_GT(replaced, 10);
}

TEST_F(EdgeProxyTest, AccessLogNamesTheRequestButNoSecrets) {
  RouteWebTo({a_.backend()});
  auto res = Client().Post("/login?token=query-secret",
                           {{"Host", kWeb}, {"Authorization", "Bearer header-secret"}},
                           "password=body-secret", "application/x-www-form-urlencoded");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  // The line is written once the answer is out.
  const std::string line =
      "edge POST web-shop.apps.test /login 200 backend=127.0.0.1:" + std::to_string(a_.port());
  EXPECT_TRUE(WaitFor([&] { return log_.Count(line) == 1; })) << log_.text();
  const std::string log = log_.text();
  EXPECT_NE(log.find("ms\n"), std::string::npos);
  EXPECT_EQ(log.find("secret"), std::string::npos) << log;
}

TEST_F(EdgeProxyTest, MetricsCountAnswersAndRouteBackends) {
  RouteWebTo({a_.backend(), b_.backend()});
  ASSERT_TRUE(table_.MarkUnhealthy(b_.backend()));
  ASSERT_TRUE(Get("/"));
  ASSERT_TRUE(Get("/", "unknown.test"));
  // Answers are counted once they are out.
  ASSERT_TRUE(WaitFor([&] {
    const auto counters = proxy_->counters();
    return counters.responses[1] + counters.responses[3] == 2;
  }));
  const std::string text = proxy_->MetricsText();
  EXPECT_NE(text.find("kindling_edge_responses_total{class=\"2xx\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("kindling_edge_responses_total{class=\"4xx\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("kindling_edge_routes 1\n"), std::string::npos);
  EXPECT_NE(text.find("kindling_edge_route_backends{hostname=\"web-shop.apps.test\","
                      "state=\"healthy\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("kindling_edge_route_backends{hostname=\"web-shop.apps.test\","
                      "state=\"unhealthy\"} 1\n"),
            std::string::npos);
}

}  // namespace
}  // namespace kindling::edge
