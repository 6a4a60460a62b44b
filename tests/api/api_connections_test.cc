// The API server's connection handling and its authentication cache, against
// real PostgreSQL and real sockets: revoked or deleted keys stop working
// (at once when revoked through this server, within the cache's TTL when
// changed behind its back), and idle keep-alive connections do not keep a
// new client from being answered.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "api/api_server.h"
#include "api_test_fixture.h"

namespace kindling::api {
namespace {

using std::chrono::steady_clock;

class ApiConnectionsTest : public ApiServerTest {
 protected:
  void TearDown() override {
    caching_.reset();
    ApiServerTest::TearDown();
  }
  // A second server over the same database with a clock the test moves.
  void StartCachingServer() {
    ApiServerOptions options;
    options.auth_cache_ttl = std::chrono::seconds(10);
    options.clock = [this] { return steady_clock::time_point{} + now_.load(); };
    caching_ = std::make_unique<ApiServer>(db(), master_key_, options);
    ASSERT_TRUE(caching_->Start());
  }
  int Get(ApiServer& server, const std::string& path, const std::string& key) {
    httplib::Client client("127.0.0.1", server.port());
    auto res = client.Get(path, {{"Authorization", "Bearer " + key}});
    if (!res) {
      ADD_FAILURE() << path << ": " << httplib::to_string(res.error());
      return 0;
    }
    return res->status;
  }
  std::string NewKey(std::string* id) {
    Response created = Send("POST", "/api/api-keys", member_key_, R"({"name": "cached"})");
    EXPECT_EQ(created.status, 201) << created.raw;
    *id = created.body.value("id", "");
    return created.body.value("secret", "");
  }

  std::atomic<std::chrono::nanoseconds> now_{std::chrono::hours(1)};
  std::unique_ptr<ApiServer> caching_;
};

TEST_F(ApiConnectionsTest, KeyRevokedThroughThisServerStopsAtOnce) {
  StartCachingServer();
  std::string id;
  const std::string secret = NewKey(&id);
  EXPECT_EQ(Get(*caching_, "/api/projects", secret), 200);  // now cached
  httplib::Client client("127.0.0.1", caching_->port());
  auto revoked = client.Delete("/api/api-keys/" + id, {{"Authorization", "Bearer " + member_key_}});
  ASSERT_TRUE(revoked);
  EXPECT_EQ(revoked->status, 204);
  // The clock has not moved: the cached entry was dropped, not expired.
  EXPECT_EQ(Get(*caching_, "/api/projects", secret), 401);
  EXPECT_EQ(Get(*caching_, "/api/projects", member_key_), 200);
}

TEST_F(ApiConnectionsTest, KeyRevokedOrDeletedElsewhereStopsWithinTheTtl) {
  StartCachingServer();
  std::string revoked_id, deleted_id;
  const std::string revoked = NewKey(&revoked_id);
  const std::string deleted = NewKey(&deleted_id);
  EXPECT_EQ(Get(*caching_, "/api/projects", revoked), 200);
  EXPECT_EQ(Get(*caching_, "/api/projects", deleted), 200);

  // Another API process revokes one key (the fixture's server: a separate
  // cache) and the other row goes away outright.
  EXPECT_EQ(Send("DELETE", "/api/api-keys/" + revoked_id, member_key_).status, 204);
  Sql("DELETE FROM api_keys WHERE id = '" + deleted_id + "'");
  EXPECT_EQ(Send("GET", "/api/projects", revoked).status, 401);

  // Within the first half of the TTL this process may still accept them
  // (the documented window: answered from its cache); past it, a request
  // looks the key up again and both are refused.
  now_.store(now_.load() + std::chrono::seconds(4));
  EXPECT_EQ(Get(*caching_, "/api/projects", revoked), 200);
  now_.store(now_.load() + std::chrono::seconds(2));
  EXPECT_EQ(Get(*caching_, "/api/projects", revoked), 401);
  EXPECT_EQ(Get(*caching_, "/api/projects", deleted), 401);
  // And they stay refused: failures are not cached as anything.
  EXPECT_EQ(Get(*caching_, "/api/projects", revoked), 401);
  EXPECT_EQ(Get(*caching_, "/api/projects", member_key_), 200);
}

TEST_F(ApiConnectionsTest, UnknownKeysAreNeverCached) {
  StartCachingServer();
  EXPECT_EQ(Get(*caching_, "/api/projects", "kdl_" + std::string(64, '0')), 401);
  EXPECT_EQ(Get(*caching_, "/api/projects", "not-a-key"), 401);
  EXPECT_EQ(Get(*caching_, "/api/projects", admin_key_), 200);
}

// Opens a TCP connection to the server and leaves it open, silent.
int OpenSilentConnection(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(ApiConnectionsTest, IdleKeepAliveConnectionsDoNotStarveANewRequest) {
  ApiServerOptions options;
  options.serving_threads = 1;
  options.max_threads = 2;
  options.keep_alive_timeout = std::chrono::seconds(1);
  ApiServer server(db(), master_key_, options);
  ASSERT_TRUE(server.Start());

  // Three times as many idle connections as the server has threads: half
  // kept alive after a request, half never saying anything.
  std::vector<std::unique_ptr<httplib::Client>> kept;
  for (int i = 0; i < 3; ++i) {
    auto client = std::make_unique<httplib::Client>("127.0.0.1", server.port());
    client->set_keep_alive(true);
    auto res = client->Get("/healthz");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200);
    kept.push_back(std::move(client));
  }
  std::vector<int> silent;
  for (int i = 0; i < 3; ++i) {
    const int fd = OpenSilentConnection(server.port());
    ASSERT_GE(fd, 0);
    silent.push_back(fd);
  }

  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(30, 0);
  auto res = client.Get("/api/projects", {{"Authorization", "Bearer " + admin_key_}});
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  for (int fd : silent) ::close(fd);
}

}  // namespace
}  // namespace kindling::api
