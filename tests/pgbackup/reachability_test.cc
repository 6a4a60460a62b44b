// ProbeEndpoint against sockets of this test: a listening one answers, a
// closed port is named as unreachable at once rather than after
// pgBackRest's retries.
#include "pgbackup/reachability.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace kindling::pgbackup {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

// A TCP socket bound to 127.0.0.1 on a free port, listening or not.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listening) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    socklen_t length = sizeof(address);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    port_ = ntohs(address.sin_port);
    if (listening) {
      EXPECT_EQ(::listen(fd_, 4), 0);
    }
  }
  ~LoopbackSocket() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

S3Repository At(const std::string& endpoint) {
  S3Repository s3;
  s3.endpoint = endpoint;
  return s3;
}

TEST(ProbeEndpointTest, ListeningEndpointIsReachable) {
  const LoopbackSocket server(/*listening=*/true);
  EXPECT_TRUE(ProbeEndpoint(At("127.0.0.1:" + std::to_string(server.port())), milliseconds(5000)));
  EXPECT_TRUE(ProbeEndpoint(At("https://127.0.0.1:" + std::to_string(server.port()) + "/"),
                            milliseconds(5000)));
}

TEST(ProbeEndpointTest, StoppedEndpointFailsAtOnceAndIsNamed) {
  // Bound but not listening: connections are refused, as by a stopped server.
  const LoopbackSocket stopped(/*listening=*/false);
  const std::string endpoint = "127.0.0.1:" + std::to_string(stopped.port());
  const auto start = std::chrono::steady_clock::now();
  const Status probed = ProbeEndpoint(At(endpoint), milliseconds(5000));
  ASSERT_FALSE(probed);
  EXPECT_EQ(probed.error().kind(), ErrorKind::kIo);
  EXPECT_THAT(probed.error().message(), HasSubstr(endpoint + " is unreachable"));
  EXPECT_THAT(probed.error().message(), HasSubstr("Connection refused"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
}

TEST(ProbeEndpointTest, UnknownHostIsNamed) {
  const Status probed = ProbeEndpoint(At("no-such-host.invalid:443"), milliseconds(2000));
  ASSERT_FALSE(probed);
  EXPECT_THAT(probed.error().message(), HasSubstr("no-such-host.invalid:443 cannot be resolved"));
}

}  // namespace
}  // namespace kindling::pgbackup
