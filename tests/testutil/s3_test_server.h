// S3TestServer: starts the @20minutes/s3rver S3 server (checks SigV4) on
// 127.0.0.1 with a free port and a temp directory, optionally behind a
// fault-injecting HTTP proxy, or over HTTPS with a throwaway CA; stops both
// on destruction. Requires node, tests/s3/node_modules and, for HTTPS, the
// openssl command (scripts/install-deps.sh installs them).
#pragma once

#include <string>

namespace kindling::testutil {

struct S3TestServerOptions {
  std::string bucket = "bucket";
  std::string access_key_id = "MYACCESSKEY";
  std::string secret_access_key = "my-secret";
  // Fraction of requests the proxy answers with 500/503 or drops (0 = no proxy).
  double fault_rate = 0.0;
  // HTTPS with a certificate for the DNS name `localhost` (also served on
  // ::1 when there is IPv6 loopback), signed by a CA made for this server
  // (ca_file()). pgBackRest needs this. Excludes fault_rate > 0 (the proxy
  // speaks plain HTTP).
  bool tls = false;
};

class S3TestServer {
 public:
  explicit S3TestServer(S3TestServerOptions options = {});
  ~S3TestServer();
  S3TestServer(const S3TestServer&) = delete;
  S3TestServer& operator=(const S3TestServer&) = delete;

  // "http://127.0.0.1:<port>" (the proxy's, when fault_rate > 0), or with
  // tls "https://localhost:<port>".
  const std::string& endpoint() const { return endpoint_; }
  // "127.0.0.1:<port>", or with tls "localhost:<port>".
  const std::string& host_port() const { return host_port_; }
  // With tls: the CA certificate (PEM) to verify the server with, readable
  // by every user (pgBackRest runs as postgres); empty without tls.
  const std::string& ca_file() const { return ca_file_; }
  const S3TestServerOptions& options() const { return options_; }
  // Where the server keeps the buckets' objects (a file per object, under
  // <data_dir>/<bucket>/, named after its key), for tests that look at
  // what was stored without a client.
  std::string data_dir() const;
  // Number of requests the proxy sabotaged so far (0 without proxy).
  int faults_injected() const;
  // Stops the server (and the proxy) now: its port refuses connections from
  // then on, as an unreachable repository's would. The data stays until
  // destruction. Idempotent.
  void Stop();

 private:
  S3TestServerOptions options_;
  std::string endpoint_;
  std::string host_port_;
  std::string ca_file_;
  std::string dir_;
  int server_pid_ = -1;
  std::string proxy_stats_path_;
};

}  // namespace kindling::testutil
