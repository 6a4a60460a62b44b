// HttpClient against a local cpp-httplib server: statuses are answers, not
// errors; headers come back lower-cased; bodies go up and come down intact;
// a refused connection is a transient error.
#include "http/http_client.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "testutil/fake_http_server.h"

namespace kindling::http {
namespace {

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Get("/status/(\\d+)", [](const httplib::Request& req, httplib::Response& res) {
      res.status = std::stoi(req.matches[1]);
      res.set_header("X-Answer", "  forty-two ");
      res.set_content("status body", "text/plain");
    });
    server_.Put("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body + "|" + req.get_header_value("X-Test"), "text/plain");
    });
    server_.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content("posted:" + req.body, "text/plain");
    });
    server_.Start();
  }

  HttpRequest Request(std::string method, const std::string& path) {
    HttpRequest request;
    request.method = std::move(method);
    request.url = server_.url() + path;
    return request;
  }

  testutil::FakeHttpServer server_;
  HttpClient client_{HttpClientOptions{.max_connections = 2}};
};

TEST_F(HttpClientTest, StatusesAreAnswersWithLowerCaseHeaders) {
  for (int status : {200, 404, 500, 503}) {
    auto response = client_.Send(Request("GET", "/status/" + std::to_string(status)), "GET test");
    ASSERT_TRUE(response) << response.error().message();
    EXPECT_EQ(response->status, status);
    EXPECT_EQ(response->body, "status body");
    ASSERT_NE(response->Header("x-answer"), nullptr);
    EXPECT_EQ(*response->Header("x-answer"), "forty-two");
    EXPECT_EQ(response->ContentLength(), 11u);
  }
}

TEST_F(HttpClientTest, SendsBodiesAndHeaders) {
  std::string payload(300'000, 'x');
  payload += "end";
  HttpRequest put = Request("PUT", "/echo");
  put.headers = {"X-Test: yes"};
  put.body = payload;
  auto response = client_.Send(put, "PUT echo");
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, payload + "|yes");

  HttpRequest post = Request("POST", "/echo");  // empty body: Content-Length 0
  response = client_.Send(post, "POST echo");
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->body, "posted:");
}

TEST_F(HttpClientTest, ConcurrentCallersShareThePool) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 5; ++j) {
        auto response = client_.Send(Request("GET", "/status/200"), "GET");
        if (response && response->status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 30);
}

TEST(HttpClientErrorsTest, RefusedConnectionIsTransientAndNamed) {
  HttpClient client(HttpClientOptions{.max_connections = 1, .connect_timeout_ms = 2'000});
  HttpRequest request;
  request.method = "GET";
  request.url = "http://127.0.0.1:" + std::to_string(testutil::ClosedPort()) + "/x";
  auto response = client.Send(request, "GET probe");
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind(), ErrorKind::kTransient);
  EXPECT_TRUE(response.error().message().starts_with("GET probe: ")) << response.error().message();
}

}  // namespace
}  // namespace kindling::http
