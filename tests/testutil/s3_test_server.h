// S3TestServer: starts the @20minutes/s3rver S3 server (checks SigV4) on
// 127.0.0.1 with a free port and a temp directory, optionally behind a
// fault-injecting HTTP proxy; stops both on destruction. Requires node and
// tests/s3/node_modules (scripts/install-deps.sh installs them).
#pragma once

#include <string>

namespace kindling::testutil {

struct S3TestServerOptions {
  std::string bucket = "bucket";
  std::string access_key_id = "MYACCESSKEY";
  std::string secret_access_key = "my-secret";
  // Fraction of requests the proxy answers with 500/503 or drops (0 = no proxy).
  double fault_rate = 0.0;
};

class S3TestServer {
 public:
  explicit S3TestServer(S3TestServerOptions options = {});
  ~S3TestServer();
  S3TestServer(const S3TestServer&) = delete;
  S3TestServer& operator=(const S3TestServer&) = delete;

  // "http://127.0.0.1:<port>" (the proxy's, when fault_rate > 0).
  const std::string& endpoint() const { return endpoint_; }
  const S3TestServerOptions& options() const { return options_; }
  // Number of requests the proxy sabotaged so far (0 without proxy).
  int faults_injected() const;

 private:
  S3TestServerOptions options_;
  std::string endpoint_;
  std::string dir_;
  int server_pid_ = -1;
  std::string proxy_stats_path_;
};

}  // namespace kindling::testutil
