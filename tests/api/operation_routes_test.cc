// GET /api/operations/{id}/events: server-sent events of an operation's
// changes until it ends, bounded in number, ended by the server's Stop().
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api_test_fixture.h"

namespace kindling::api {
namespace {

using namespace std::chrono_literals;

class OperationEventsTest : public ApiServerTest {
 protected:
  void SetUp() override {
    ApiServerTest::SetUp();
    // A server of its own: quick polls, keep-alive comments, one stream.
    ApiServerOptions options;
    options.event_streams =
        EventStreamOptions{.max_open = 1, .poll = 20ms, .max_duration = 10min, .keep_alive = 200ms};
    streams_ = std::make_unique<ApiServer>(db(), master_key_, options);
    ASSERT_TRUE(streams_->Start());
  }
  void TearDown() override {
    streams_.reset();
    ApiServerTest::TearDown();
  }

  // A backup operation that stays pending (no worker runs here).
  std::string QueueBackup() {
    MakeServer("w1");
    ConfigureLocalStore();
    const std::string project = CreateProject();
    EXPECT_EQ(Send("PUT", "/api/projects/" + project + "/volume", admin_key_, "{}").status, 200);
    Response queued =
        Send("POST", "/api/projects/" + project + "/volume/backups", admin_key_, "{}");
    EXPECT_EQ(queued.status, 202) << queued.raw;
    return queued.body.value("id", "");
  }

  // Reads a stream on a thread of its own until it ends.
  struct Reader {
    std::mutex mu;
    std::condition_variable changed;
    std::string text;
    std::string content_type;
    int status = 0;
    bool done = false;
    std::thread thread;

    void Start(ApiServer& on, const std::string& path, const std::string& key) {
      server = &on;
      const int port = on.port();
      thread = std::thread([this, port, path, key] {
        httplib::Client client("127.0.0.1", port);
        client.set_read_timeout(60, 0);
        auto res = client.Get(
            path, httplib::Headers{{"Authorization", "Bearer " + key}},
            [&](const httplib::Response& r) {
              std::lock_guard lock(mu);
              status = r.status;
              content_type = r.get_header_value("Content-Type");
              return true;
            },
            [&](const char* data, std::size_t size) {
              std::lock_guard lock(mu);
              text.append(data, size);
              changed.notify_all();
              return true;
            });
        std::lock_guard lock(mu);
        if (res && status == 0) status = res->status;
        done = true;
        changed.notify_all();
      });
    }
    // True once the stream's text holds `needle` (or it ended).
    bool WaitFor(const std::string& needle) {
      std::unique_lock lock(mu);
      return changed.wait_for(lock, 30s, [&] { return text.find(needle) != std::string::npos; });
    }
    void Join() {
      if (thread.joinable()) thread.join();
    }
    // A test that failed half-way: the server is stopped, which ends the
    // stream, so that the thread can be joined.
    ApiServer* server = nullptr;
    ~Reader() {
      if (thread.joinable() && server != nullptr) server->Stop();
      Join();
    }
  };

  std::unique_ptr<ApiServer> streams_;
};

std::vector<std::string> Statuses(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while ((at = text.find("data: {\"", at)) != std::string::npos) {
    const auto end = text.find("\n\n", at);
    const json op = json::parse(text.substr(at + 6, end - at - 6), nullptr, false);
    if (op.is_object() && op.contains("status")) out.push_back(op["status"]);
    at = end;
  }
  return out;
}

TEST_F(OperationEventsTest, SendsEachChangeUntilTheOperationEnds) {
  const std::string id = QueueBackup();
  Reader reader;
  reader.Start(*streams_, "/api/operations/" + id + "/events", member_key_);
  ASSERT_TRUE(reader.WaitFor("\"status\":\"pending\"")) << reader.text;
  Sql("UPDATE project_volume_operations SET status = 'running', lease_owner = gen_random_uuid(), "
      "lease_expires_at = now() + interval '1 minute', "
      "progress = '{\"phase\": \"upload\", \"bytes_done\": 10, \"bytes_total\": 40}' "
      "WHERE id = '" +
      id + "'");
  ASSERT_TRUE(reader.WaitFor("\"bytes_done\":10")) << reader.text;
  // Nothing changes for a while: a comment keeps the connection alive.
  ASSERT_TRUE(reader.WaitFor(": keep-alive\n\n")) << reader.text;
  Sql("UPDATE project_volume_operations SET status = 'succeeded', completed_at = now(), "
      "lease_owner = NULL, lease_expires_at = NULL, "
      "progress = '{\"phase\": \"done\", \"bytes_done\": 40, \"bytes_total\": 40}' "
      "WHERE id = '" +
      id + "'");
  reader.Join();
  EXPECT_EQ(reader.status, 200);
  EXPECT_EQ(reader.content_type, "text/event-stream");
  EXPECT_EQ(Statuses(reader.text), (std::vector<std::string>{"pending", "running", "succeeded"}))
      << reader.text;
  EXPECT_TRUE(reader.text.ends_with("event: end\ndata: {}\n\n")) << reader.text;

  // The stream was closed: the one slot is free again, and a finished
  // operation's stream sends it once and ends.
  Reader again;
  again.Start(*streams_, "/api/operations/" + id + "/events", admin_key_);
  again.Join();
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(Statuses(again.text), std::vector<std::string>{"succeeded"}) << again.text;
}

TEST_F(OperationEventsTest, StreamsAreBoundedAndStopEndsThem) {
  const std::string id = QueueBackup();
  Reader reader;
  reader.Start(*streams_, "/api/operations/" + id + "/events", admin_key_);
  ASSERT_TRUE(reader.WaitFor("\"status\":\"pending\"")) << reader.text;

  // One open already: the next is refused, and its client polls instead.
  httplib::Client client("127.0.0.1", streams_->port());
  auto refused = client.Get("/api/operations/" + id + "/events",
                            httplib::Headers{{"Authorization", "Bearer " + admin_key_}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(json::parse(refused->body).value("code", ""), "service_unavailable") << refused->body;

  // Stopping the server ends the open stream now, not when the operation
  // ends.
  streams_->Stop();
  reader.Join();
  EXPECT_EQ(reader.text.find("event: end"), std::string::npos) << reader.text;
  EXPECT_EQ(Statuses(reader.text), std::vector<std::string>{"pending"}) << reader.text;
}

}  // namespace
}  // namespace kindling::api
