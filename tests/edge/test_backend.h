// Test kit of the edge tests: a workload instance (a cpp-httplib server on
// 127.0.0.1 that says who it is, echoes, can be slow or unwell), a client for
// the proxy, and a capture of log lines. Header-only.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "edge/routes.h"

namespace kindling::edge::testing {

struct SeenRequest {
  std::string method;
  std::string target;
  httplib::Headers headers;
  std::string body;
};

// GET /healthz answers health_status(); GET /status/<n> answers n with body
// "status <n> from <name>"; GET /range answers "0123456789" (httplib applies a
// Range header itself); GET /text answers compressible text (gzip when asked);
// other GETs answer the name, with X-Backend: <name> and two Set-Cookie
// headers; POST/PUT/PATCH/DELETE echo the body and its Content-Type. With
// set_slow(true) every request but /healthz waits until Release() or 5 s.
class TestBackend {
 public:
  explicit TestBackend(std::string name) : name_(std::move(name)) {}
  ~TestBackend() {
    Release();
    Stop();
  }
  TestBackend(const TestBackend&) = delete;
  TestBackend& operator=(const TestBackend&) = delete;

  // Listens on `port` (0: a free one; the previous port to come back).
  void Start(int port = 0) {
    server_ = std::make_unique<httplib::Server>();
    Routes(*server_);
    if (port == 0) {
      port_ = server_->bind_to_any_port("127.0.0.1");
    } else {
      port_ = server_->bind_to_port("127.0.0.1", port) ? port : -1;
    }
    ASSERT_GT(port_, 0);
    thread_ = std::thread([server = server_.get()] { server->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void Stop() {
    if (!server_) return;
    server_->stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }

  const std::string& name() const { return name_; }
  int port() const { return port_; }
  Backend backend() const {
    return Backend{.instance_id = name_, .host = "127.0.0.1", .port = port_};
  }

  void set_health_status(int status) { health_status_ = status; }
  void set_slow(bool slow) { slow_ = slow; }
  // Lets every waiting slow request finish.
  void Release() {
    {
      std::lock_guard lock(mu_);
      released_ = true;
    }
    released_cv_.notify_all();
  }

  std::vector<SeenRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::size_t request_count() {
    std::lock_guard lock(mu_);
    return requests_.size();
  }

 private:
  void Routes(httplib::Server& server) {
    server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      res.status = health_status_;
      res.set_content("health", "text/plain");
    });
    server.Get(R"(/status/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      Seen(req);
      res.status = std::stoi(req.matches[1]);
      res.set_content("status " + std::string(req.matches[1]) + " from " + name_, "text/plain");
    });
    server.Get("/range", [this](const httplib::Request& req, httplib::Response& res) {
      Seen(req);
      res.set_content("0123456789", "text/plain");
    });
    server.Get("/text", [this](const httplib::Request& req, httplib::Response& res) {
      Seen(req);
      res.set_content(LongText(), "text/plain");
    });
    server.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
      Seen(req);
      res.set_header("X-Backend", name_);
      res.set_header("Set-Cookie", "a=1");
      res.set_header("Set-Cookie", "b=2");
      res.set_content(name_, "text/plain");
    });
    auto echo = [this](const httplib::Request& req, httplib::Response& res) {
      Seen(req);
      res.set_header("X-Backend", name_);
      res.set_content(req.body, req.get_header_value("Content-Type"));
    };
    server.Post(".*", echo);
    server.Put(".*", echo);
    server.Patch(".*", echo);
    server.Delete(".*", echo);
  }

 public:
  static std::string LongText() {
    std::string text;
    for (int i = 0; i < 200; ++i) text += "line " + std::to_string(i) + " of compressible text\n";
    return text;
  }

 private:
  void Seen(const httplib::Request& req) {
    {
      std::lock_guard lock(mu_);
      requests_.push_back(SeenRequest{
          .method = req.method, .target = req.target, .headers = req.headers, .body = req.body});
    }
    if (slow_) {
      std::unique_lock lock(mu_);
      released_cv_.wait_for(lock, std::chrono::seconds(5), [this] { return released_; });
    }
  }

  const std::string name_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = -1;
  std::atomic<int> health_status_{200};
  std::atomic<bool> slow_{false};
  std::mutex mu_;
  std::condition_variable released_cv_;
  bool released_ = false;  // guarded by mu_
  std::vector<SeenRequest> requests_;
};

// A client of the proxy that sends Host: `host`.
inline httplib::Result ProxyGet(int port, const std::string& host, const std::string& path,
                                httplib::Headers headers = {}) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(std::chrono::seconds(5));
  headers.emplace("Host", host);
  return client.Get(path, headers);
}

// Routes the default spdlog logger into a string for the object's lifetime.
// REQUIRES: nothing logs while it is created or destroyed (spdlog's free
// functions read the default logger without a lock), so create it before the
// servers of a test and let it outlive them.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()), sink_(std::make_shared<StringSink>()) {
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(std::move(logger));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string text() { return sink_->text(); }
  std::size_t Count(const std::string& needle) {
    const std::string all = text();
    std::size_t count = 0;
    for (auto pos = all.find(needle); pos != std::string::npos; pos = all.find(needle, pos + 1)) {
      ++count;
    }
    return count;
  }

 private:
  class StringSink final : public spdlog::sinks::base_sink<std::mutex> {
   public:
    std::string text() {
      std::lock_guard lock(mutex_);
      return text_;
    }

   protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
      spdlog::memory_buf_t formatted;
      formatter_->format(msg, formatted);
      text_.append(formatted.data(), formatted.size());
    }
    void flush_() override {}

   private:
    std::string text_;
  };

  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<StringSink> sink_;
};

// Polls `done` every millisecond for up to `timeout`.
template <typename Fn>
bool WaitFor(Fn done, std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace kindling::edge::testing
