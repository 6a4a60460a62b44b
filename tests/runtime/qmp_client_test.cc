#include "runtime/qmp_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include "testutil/temp_dir.h"

namespace kindling::vmm {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A QMP server for one connection: sends `greeting`, then hands each line
// the client sends to `on_line`, which writes whatever it likes back.
class FakeQmpServer {
 public:
  using OnLine = std::function<void(FakeQmpServer&, const json& request)>;

  FakeQmpServer(std::filesystem::path path, std::string greeting, OnLine on_line)
      : path_(std::move(path)), greeting_(std::move(greeting)), on_line_(std::move(on_line)) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_fd_, 1), 0);
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeQmpServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }

  void Write(const std::string& text) {
    EXPECT_EQ(::send(fd_, text.data(), text.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(text.size()));
  }
  void Answer(const json& request, const json& body) {
    json answer = body;
    answer["id"] = request["id"];
    Write(answer.dump() + "\r\n");
  }
  void Close() {
    ::shutdown(fd_, SHUT_RDWR);
    closed_ = true;
  }
  std::vector<std::string> commands() const {
    const std::lock_guard lock(mutex_);
    return commands_;
  }

 private:
  void Run() {
    fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd_ < 0) return;
    Write(greeting_);
    std::string buffer;
    char chunk[4096];
    while (!closed_) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buffer.append(chunk, static_cast<std::size_t>(n));
      for (std::size_t nl; !closed_ && (nl = buffer.find('\n')) != std::string::npos;) {
        const json request = json::parse(buffer.substr(0, nl));
        buffer.erase(0, nl + 1);
        {
          const std::lock_guard lock(mutex_);
          commands_.push_back(request.value("execute", ""));
        }
        on_line_(*this, request);
      }
    }
    ::close(fd_);
  }

  std::filesystem::path path_;
  std::string greeting_;
  OnLine on_line_;
  int listen_fd_ = -1;
  int fd_ = -1;
  bool closed_ = false;
  mutable std::mutex mutex_;
  std::vector<std::string> commands_;
  std::thread thread_;
};

constexpr char kGreeting[] =
    R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}})"
    "\r\n";

class QmpClientTest : public ::testing::Test {
 protected:
  std::filesystem::path socket() const { return temp_ / "qmp.sock"; }
  testutil::TempDir temp_;
};

// Answers qmp_capabilities, then `rest` for everything else.
FakeQmpServer::OnLine Negotiating(FakeQmpServer::OnLine rest) {
  return [rest](FakeQmpServer& server, const json& request) {
    if (request["execute"] == "qmp_capabilities") {
      server.Answer(request, {{"return", json::object()}});
      return;
    }
    rest(server, request);
  };
}

TEST_F(QmpClientTest, NegotiatesCapabilitiesAndRunsCommands) {
  FakeQmpServer server(socket(), kGreeting, Negotiating([](FakeQmpServer& s, const json& request) {
                         EXPECT_EQ(request["arguments"]["command-line"], "info usernet");
                         s.Answer(request, {{"return", "Hub -1 (net0):\r\n"}});
                       }));
  auto client = QmpClient::Connect(socket(), milliseconds(5000));
  ASSERT_TRUE(client) << client.error().message();
  EXPECT_EQ(client->greeting()["version"]["qemu"]["major"], 7);
  auto answer = client->Execute("human-monitor-command", {{"command-line", "info usernet"}});
  ASSERT_TRUE(answer) << answer.error().message();
  EXPECT_EQ(*answer, "Hub -1 (net0):\r\n");
  EXPECT_THAT(server.commands(), ElementsAre("qmp_capabilities", "human-monitor-command"));
}

TEST_F(QmpClientTest, EventsBeforeAnAnswerAreKeptInOrder) {
  FakeQmpServer server(
      socket(), kGreeting, Negotiating([](FakeQmpServer& s, const json& request) {
        s.Write(R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "POWERDOWN"})"
                "\r\n");
        // An answer to some other command is not ours.
        s.Write(R"({"return": {}, "id": 999})"
                "\r\n");
        s.Answer(request, {{"return", json::object()}});
        s.Write(R"({"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}})"
                "\r\n");
      }));
  auto client = QmpClient::Connect(socket(), milliseconds(5000));
  ASSERT_TRUE(client) << client.error().message();
  ASSERT_TRUE(client->Execute("system_powerdown"));
  auto shutdown = client->WaitEvent("SHUTDOWN", milliseconds(5000));
  ASSERT_TRUE(shutdown) << shutdown.error().message();
  EXPECT_EQ(shutdown->data["reason"], "guest-shutdown");
  std::vector<QmpEvent> rest = client->TakeEvents();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].name, "POWERDOWN");
  EXPECT_TRUE(rest[0].data.is_null());
}

TEST_F(QmpClientTest, AnErrorAnswerIsFailedPrecondition) {
  FakeQmpServer server(socket(), kGreeting, Negotiating([](FakeQmpServer& s, const json& request) {
                         s.Answer(request, {{"error",
                                             {{"class", "CommandNotFound"},
                                              {"desc", "The command nope has not been found"}}}});
                       }));
  auto client = QmpClient::Connect(socket(), milliseconds(5000));
  ASSERT_TRUE(client);
  auto answer = client->Execute("nope");
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().kind(), ErrorKind::kFailedPrecondition);
  EXPECT_THAT(answer.error().message(), HasSubstr("CommandNotFound"));
  EXPECT_THAT(answer.error().message(), HasSubstr("has not been found"));
}

TEST_F(QmpClientTest, SilenceIsATimeoutAndAClosedSocketIsIo) {
  FakeQmpServer server(socket(), kGreeting, Negotiating([](FakeQmpServer& s, const json& request) {
                         if (request["execute"] == "query-status") s.Close();
                       }));
  auto client = QmpClient::Connect(socket(), milliseconds(5000));
  ASSERT_TRUE(client);
  auto silent = client->Execute("stop", nullptr, milliseconds(100));
  ASSERT_FALSE(silent);
  EXPECT_TRUE(silent.error().retryable()) << silent.error().message();
  auto event = client->WaitEvent("SHUTDOWN", milliseconds(100));
  ASSERT_FALSE(event);
  EXPECT_TRUE(event.error().retryable());
  auto closed = client->Execute("query-status", nullptr, milliseconds(5000));
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().kind(), ErrorKind::kIo) << closed.error().message();
}

TEST_F(QmpClientTest, SomethingThatIsNotQmpIsRefused) {
  FakeQmpServer server(socket(), "{\"hello\": 1}\n", [](FakeQmpServer&, const json&) {});
  auto client = QmpClient::Connect(socket(), milliseconds(5000));
  ASSERT_FALSE(client);
  EXPECT_TRUE(client.error().is_corruption()) << client.error().message();
}

TEST_F(QmpClientTest, NoServerIsIo) {
  auto client = QmpClient::Connect(socket(), milliseconds(100));
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().kind(), ErrorKind::kIo);
}

}  // namespace
}  // namespace kindling::vmm
