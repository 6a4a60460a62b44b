// The API server's connection handling, against real PostgreSQL and real
// sockets: idle keep-alive connections do not keep a new client from being
// answered.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "api/api_server.h"
#include "api_test_fixture.h"

namespace kindling::api {
namespace {

class ApiConnectionsTest : public ApiServerTest {};

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
  options.worker_threads = 2;
  options.max_worker_threads = 2;
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
