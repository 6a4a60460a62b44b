#include "runtime/canary/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "runtime/canary/canary_routes.h"
#include "testutil/temp_dir.h"
#include "runtime/http_probe.h"

namespace kindling::canary {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(HttpParseTest, WaitsForTheWholeRequest) {
  const std::string request = "POST /records HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
  for (std::size_t cut : {std::size_t{0}, std::size_t{10}, request.size() - 1}) {
    auto partial = ParseHttpRequest(request.substr(0, cut));
    ASSERT_TRUE(partial) << cut;
    EXPECT_FALSE(partial->has_value()) << cut;
  }
  auto whole = ParseHttpRequest(request);
  ASSERT_TRUE(whole && whole->has_value());
  const HttpRequest& parsed = **whole;
  EXPECT_EQ(parsed.method, "POST");
  EXPECT_EQ(parsed.target, "/records");
  EXPECT_EQ(parsed.headers.at("content-length"), "5");
  EXPECT_EQ(parsed.headers.at("host"), "x");
  EXPECT_EQ(parsed.body, "hello");
}

TEST(HttpParseTest, RefusesWhatItCannotServe) {
  struct Case {
    std::string request;
    int status;
  };
  for (const Case& c : {
           Case{"GARBAGE\r\n\r\n", 400},
           Case{"GET /x HTTP/1.1\r\nno colon here\r\n\r\n", 400},
           Case{"GET /x HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400},
           Case{"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411},
           Case{"POST /x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413},
       }) {
    auto parsed = ParseHttpRequest(c.request);
    ASSERT_FALSE(parsed) << c.request;
    EXPECT_EQ(parsed.error().status, c.status) << c.request;
  }
}

TEST(HttpParseTest, RenderedResponseClosesTheConnection) {
  const std::string text = RenderHttpResponse({.status = 201, .body = R"({"id":1})"});
  EXPECT_THAT(text, StartsWith("HTTP/1.1 201 Created\r\n"));
  EXPECT_THAT(text, HasSubstr("Content-Length: 8\r\n"));
  EXPECT_THAT(text, HasSubstr("Connection: close\r\n\r\n{\"id\":1}"));
}

// The canary's routes through its server over real sockets; the probe the
// VMM uses for readiness is the client.
TEST(HttpServerTest, ServesTheCanaryRoutes) {
  testutil::TempDir temp;
  auto store = RecordStore::Open(temp / "canary");
  ASSERT_TRUE(store);
  auto server = HttpServer::Listen("127.0.0.1", 0);
  ASSERT_TRUE(server) << server.error().message();
  std::thread serving([&] {
    auto served = server->Serve(
        [&](const HttpRequest& request) { return HandleCanaryRequest(*store, request); },
        std::chrono::milliseconds(500));
    EXPECT_TRUE(served) << served.error().message();
  });
  auto health = vmm::HttpGetStatus(server->port(), "/healthz", std::chrono::seconds(5));
  ASSERT_TRUE(health) << health.error().message();
  EXPECT_EQ(*health, 200);
  auto missing = vmm::HttpGetStatus(server->port(), "/nope", std::chrono::seconds(5));
  ASSERT_TRUE(missing);
  EXPECT_EQ(*missing, 404);
  auto wrong_method = vmm::HttpGetStatus(server->port(), "/records", std::chrono::seconds(5));
  ASSERT_TRUE(wrong_method);
  EXPECT_EQ(*wrong_method, 405);
  server->RequestStop();
  serving.join();
}

TEST(CanaryRoutesTest, PostThenVerify) {
  testutil::TempDir temp;
  auto store = RecordStore::Open(temp / "canary");
  ASSERT_TRUE(store);
  HttpResponse created = HandleCanaryRequest(
      *store, {.method = "POST", .target = "/records", .headers = {}, .body = "first"});
  EXPECT_EQ(created.status, 201);
  EXPECT_EQ(created.body, R"({"id":1})");
  HttpResponse verify = HandleCanaryRequest(
      *store, {.method = "GET", .target = "/records/verify", .headers = {}, .body = {}});
  EXPECT_EQ(verify.status, 200);
  EXPECT_EQ(verify.body, R"({"records":1,"intact":1,"damaged":[]})");
  HttpResponse health = HandleCanaryRequest(
      *store, {.method = "GET", .target = "/healthz?probe=1", .headers = {}, .body = {}});
  EXPECT_EQ(health.status, 200);
}

TEST(CanaryRoutesTest, AStoreThatFailsAnswers500) {
  testutil::TempDir temp;
  auto store = RecordStore::Open(temp / "canary");
  ASSERT_TRUE(store);
  std::filesystem::remove_all(temp / "canary");
  HttpResponse created = HandleCanaryRequest(
      *store, {.method = "POST", .target = "/records", .headers = {}, .body = "x"});
  EXPECT_EQ(created.status, 500);
  EXPECT_THAT(created.body, HasSubstr("error"));
}

}  // namespace
}  // namespace kindling::canary
