// FakeHttpServer: a scripted HTTP server (cpp-httplib) on 127.0.0.1, port 0,
// for tests of API callers that need answers the real API cannot be made to
// give on demand (502 pages, scripted operation sequences). Records every
// request. Header-only (the tests that include it link cpp-httplib).
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kindling::testutil {

struct RecordedRequest {
  std::string method;
  std::string path;
  std::string target;  // path and raw query as sent
  std::string authorization;
  std::string content_type;
  std::string user_agent;
  std::string host;
  std::string body;
  httplib::Params params;
};

class FakeHttpServer {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  FakeHttpServer() = default;
  ~FakeHttpServer() { Stop(); }
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  // Routes (httplib regex patterns); register before Start().
  void Get(const std::string& pattern, Handler handler) {
    server_.Get(pattern, Record(std::move(handler)));
  }
  void Post(const std::string& pattern, Handler handler) {
    server_.Post(pattern, Record(std::move(handler)));
  }
  void Put(const std::string& pattern, Handler handler) {
    server_.Put(pattern, Record(std::move(handler)));
  }
  void Delete(const std::string& pattern, Handler handler) {
    server_.Delete(pattern, Record(std::move(handler)));
  }

  void Start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() is a no-op until the accept loop runs.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void Stop() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<RecordedRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

  static void Json(httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, "application/json");
  }

 private:
  httplib::Server::Handler Record(Handler handler) {
    return [this, handler = std::move(handler)](const httplib::Request& req,
                                                httplib::Response& res) {
      {
        std::lock_guard lock(mu_);
        requests_.push_back(RecordedRequest{.method = req.method,
                                            .path = req.path,
                                            .target = req.target,
                                            .authorization = req.get_header_value("Authorization"),
                                            .content_type = req.get_header_value("Content-Type"),
                                            .user_agent = req.get_header_value("User-Agent"),
                                            .host = req.get_header_value("Host"),
                                            .body = req.body,
                                            .params = req.params});
      }
      handler(req, res);
    };
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = -1;
  std::mutex mu_;
  std::vector<RecordedRequest> requests_;
};

// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
inline int ClosedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace kindling::testutil
