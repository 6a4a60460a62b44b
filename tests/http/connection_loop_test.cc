#include "http/connection_loop.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/blocking_region.h"
#include "http/loop_server.h"

namespace kindling::http {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A clock the test moves.
struct FakeClock {
  std::atomic<Clock::rep> ticks{Clock::now().time_since_epoch().count()};
  Clock::time_point now() const { return Clock::time_point(Clock::duration(ticks.load())); }
  void Advance(Clock::duration d) { ticks += d.count(); }
};

// A gate a handler waits at (in a BlockingRegion, as a database round trip
// does) until the test opens it.
struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false;
  bool open = false;
  void Wait() {
    const BlockingRegion away;
    std::unique_lock lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [this] { return open; });
  }
  void AwaitEntered() {
    std::unique_lock lock(mu);
    cv.wait(lock, [this] { return entered; });
  }
  void Open() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
};

// A LoopServer with a few routes, served by a ConnectionLoop.
class ConnectionLoopTest : public ::testing::Test {
 protected:
  void StartServer(ConnectionLoopOptions options) {
    server_.new_task_queue = [] { return new RunAtOnce; };
    server_.set_socket_options([this](socket_t sock) { listen_socket_ = sock; });
    server_.set_payload_max_length(options.max_body_bytes);
    server_.Get("/hello", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("hello", "text/plain");
    });
    server_.Get("/blocked", [this](const httplib::Request&, httplib::Response& res) {
      latch_.Wait();
      res.set_content("unblocked", "text/plain");
    });
    server_.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body, "text/plain");
    });
    loop_ = std::make_unique<ConnectionLoop>(
        std::move(options),
        [this](httplib::Stream& stream, bool close_connection, bool& connection_closed) {
          return server_.ServeOne(stream, close_connection, connection_closed);
        });
    ASSERT_TRUE(loop_->Start());
    server_.Attach(loop_.get());
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    // httplib's backlog of 5 would drop some of a test's burst of connects
    // (each then retried a second later).
    ::listen(listen_socket_, 128);
    listener_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }

  void TearDown() override {
    latch_.Open();
    if (listener_.joinable()) {
      server_.stop();
      listener_.join();
    }
    if (loop_) loop_->Shutdown();
  }

  // A connected TCP socket, or -1.
  int Connect() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      if (fd >= 0) ::close(fd);
      return -1;
    }
    timeval timeout{.tv_sec = 20, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
  }

  static void Send(int fd, const std::string& bytes) {
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }

  // Reads until `needle` has arrived, the peer closed, or 20 s passed.
  static std::string ReadUntil(int fd, const std::string& needle) {
    std::string got;
    char buf[4096];
    while (got.find(needle) == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
  }

  // Whether the server closed `fd` (the read sees the end) rather than
  // leaving it open and silent.
  static bool ClosedByServer(int fd) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 20'000) <= 0) return false;
    char byte;
    return ::recv(fd, &byte, 1, MSG_DONTWAIT) == 0;
  }

  static bool OpenAndSilent(int fd) {
    char byte;
    const ssize_t n = ::recv(fd, &byte, 1, MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  httplib::Result Get(const std::string& path) {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(20, 0);
    return client.Get(path);
  }

  LoopServer<httplib::Server> server_;
  std::unique_ptr<ConnectionLoop> loop_;
  std::thread listener_;
  Latch latch_;
  int port_ = -1;
  int listen_socket_ = -1;
};

TEST_F(ConnectionLoopTest, AKeepAliveClientIsServedRequestAfterRequest) {
  StartServer({.threads = 1, .max_threads = 1});
  httplib::Client client("127.0.0.1", port_);
  client.set_keep_alive(true);
  for (int i = 0; i < 5; ++i) {
    auto res = client.Get("/hello");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "hello");
  }
  const ConnectionLoopStats stats = loop_->stats();
  EXPECT_EQ(stats.accepted, 1u);  // one connection for the five
  EXPECT_EQ(stats.threads, 1u);
}

TEST_F(ConnectionLoopTest, SilentAndSlowClientsHoldNoThread) {
  // One thread, and no more: a connection that held it while its client
  // stays silent or sends its request a piece at a time would stop every
  // other client until a timeout (a minute here).
  StartServer({.threads = 1, .max_threads = 1, .read_timeout = 60s});
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) fds.push_back(Connect());
  for (int i = 0; i < 4; ++i) {
    const int fd = Connect();
    Send(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n");  // the head, unfinished
    fds.push_back(fd);
  }
  for (int i = 0; i < 4; ++i) {
    const int fd = Connect();
    Send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    fds.push_back(fd);
  }
  for (const int fd : fds) ASSERT_GE(fd, 0);
  auto res = Get("/hello");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  // The slow ones are answered once their requests are whole.
  Send(fds[4], "\r\n");
  EXPECT_NE(ReadUntil(fds[4], "hello").find("HTTP/1.1 200"), std::string::npos);
  Send(fds[8], "defghij");
  EXPECT_NE(ReadUntil(fds[8], "abcdefghij").find("HTTP/1.1 200"), std::string::npos);
  for (const int fd : fds) ::close(fd);
}

TEST_F(ConnectionLoopTest, IdleAndUnfinishedConnectionsCloseAtTheirDeadlines) {
  auto clock = std::make_shared<FakeClock>();
  StartServer(
      {.keep_alive_timeout = 5s, .read_timeout = 10s, .clock = [clock] { return clock->now(); }});
  const int idle = Connect();
  const int unfinished = Connect();
  ASSERT_GE(idle, 0);
  ASSERT_GE(unfinished, 0);
  Send(unfinished, "GET /hello HTTP/1.1\r\n");
  // Until the loop has read those bytes the connection counts as idle.
  while (loop_->stats().receiving < 1) std::this_thread::sleep_for(1ms);

  clock->Advance(4s);
  loop_->Sweep();
  EXPECT_TRUE(OpenAndSilent(idle));
  clock->Advance(2s);  // 6 s: past the keep-alive timeout
  loop_->Sweep();
  EXPECT_TRUE(ClosedByServer(idle));
  EXPECT_TRUE(OpenAndSilent(unfinished));
  clock->Advance(5s);  // 11 s: past the read timeout since its first byte
  loop_->Sweep();
  EXPECT_TRUE(ClosedByServer(unfinished));
  EXPECT_EQ(loop_->stats().connections, 0u);
  ::close(idle);
  ::close(unfinished);
}

TEST_F(ConnectionLoopTest, AThreadWaitingOutsideTheProcessIsReplacedMeanwhile) {
  StartServer({.threads = 1, .max_threads = 4});
  std::thread blocked([this] {
    auto res = Get("/blocked");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->body, "unblocked");
  });
  latch_.AwaitEntered();
  // The only serving thread waits in a BlockingRegion: another serves this.
  auto res = Get("/hello");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(loop_->stats().threads, 2u);
  latch_.Open();
  blocked.join();
}

TEST_F(ConnectionLoopTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer({.threads = 1});
  const int fd = Connect();
  ASSERT_GE(fd, 0);
  Send(fd,
       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
       "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthird");
  const std::string got = ReadUntil(fd, "third");
  const std::size_t first = got.find("first");
  const std::size_t second = got.find("hello");
  const std::size_t third = got.find("third");
  ASSERT_NE(first, std::string::npos) << got;
  ASSERT_NE(second, std::string::npos) << got;
  ASSERT_NE(third, std::string::npos) << got;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
  ::close(fd);
}

TEST_F(ConnectionLoopTest, ABodyTooLargeIsRefusedUnreadAndTheConnectionClosed) {
  StartServer({.max_body_bytes = 1000});
  const int fd = Connect();
  ASSERT_GE(fd, 0);
  Send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n0123456789");
  const std::string got = ReadUntil(fd, "\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got;
  EXPECT_TRUE(ClosedByServer(fd) || ReadUntil(fd, "never").empty());
  ::close(fd);

  // A body over the bound but within what is read and dropped: the client,
  // still sending it, gets to read the refusal.
  httplib::Client client("127.0.0.1", port_);
  auto res = client.Post("/echo", std::string(8u << 20, 'x'), "text/plain");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 413);

  // The same as the first for a head larger than the bound, never finished.
  const int big = Connect();
  ASSERT_GE(big, 0);
  Send(big, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Filler: " + std::string(70 * 1024, 'a'));
  const std::string refused = ReadUntil(big, "\r\n\r\n");
  EXPECT_EQ(refused.rfind("HTTP/1.1 4", 0), 0u) << refused.substr(0, 200);
  EXPECT_TRUE(ClosedByServer(big) || ReadUntil(big, "never").empty());
  ::close(big);
}

TEST_F(ConnectionLoopTest, ChunkedAndExpectContinueBodiesAreReadAsTheyCome) {
  StartServer({.threads = 1, .max_threads = 2});
  const int chunked = Connect();
  ASSERT_GE(chunked, 0);
  Send(chunked, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  const int expecting = Connect();
  ASSERT_GE(expecting, 0);
  Send(expecting,
       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(ReadUntil(expecting, "\r\n\r\n").rfind("HTTP/1.1 100 Continue", 0), 0u);
  Send(expecting, "wxyz");
  EXPECT_NE(ReadUntil(expecting, "wxyz").find("HTTP/1.1 200"), std::string::npos);
  Send(chunked, "2\r\nde\r\n0\r\n\r\n");
  EXPECT_NE(ReadUntil(chunked, "abcde").find("HTTP/1.1 200"), std::string::npos);
  ::close(chunked);
  ::close(expecting);
}

TEST_F(ConnectionLoopTest, ConnectionsBeyondTheMaximumAreClosedAtOnce) {
  StartServer({.max_connections = 2});
  const int a = Connect();
  const int b = Connect();
  while (loop_->stats().connections < 2) std::this_thread::sleep_for(1ms);
  const int c = Connect();
  ASSERT_GE(c, 0);
  EXPECT_TRUE(ClosedByServer(c));
  EXPECT_EQ(loop_->stats().refused, 1u);
  EXPECT_TRUE(OpenAndSilent(a));
  ::close(a);
  ::close(b);
  ::close(c);
}

TEST_F(ConnectionLoopTest, ShutdownClosesWaitingConnectionsAndFinishesTheRequestsBeingServed) {
  StartServer({.threads = 1, .max_threads = 2});
  const int idle = Connect();
  ASSERT_GE(idle, 0);
  const int busy = Connect();
  ASSERT_GE(busy, 0);
  Send(busy, "GET /blocked HTTP/1.1\r\nHost: x\r\n\r\n");
  latch_.AwaitEntered();
  server_.stop();
  listener_.join();
  std::thread shutdown([this] { loop_->Shutdown(); });
  EXPECT_TRUE(ClosedByServer(idle));
  latch_.Open();
  const std::string got = ReadUntil(busy, "unblocked");
  EXPECT_NE(got.find("HTTP/1.1 200"), std::string::npos) << got;
  EXPECT_TRUE(ClosedByServer(busy));  // after its answer
  shutdown.join();
  EXPECT_EQ(loop_->stats().threads, 0u);
  EXPECT_EQ(loop_->stats().connections, 0u);
  ::close(idle);
  ::close(busy);
}

}  // namespace
}  // namespace kindling::http
