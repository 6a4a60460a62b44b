// `kindling serve` and the API's transport, through the binary: plain HTTP
// on an address other than loopback is refused unless --insecure-http;
// --tls-cert/--tls-key (or their environment variables) serve HTTPS, which
// the API commands verify with --ca-file (KINDLING_CA_FILE) or the system
// store.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "cli/cli_harness.h"
#include "testutil/postgres_server.h"
#include "testutil/test_certificate.h"

namespace kindling::clitest {
namespace {

class ServeTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_file_ = dir_.path() / "postgres.dsn";
    std::ofstream(dsn_file_) << database_.dsn() << "\n";
  }

  std::vector<std::string> Serve(const std::string& listen) const {
    return {"serve",
            "--components",
            "api",
            "--listen",
            listen,
            "--dsn-file",
            dsn_file_.string(),
            "--state-dir",
            (dir_.path() / "state").string(),
            "--hostname",
            "tls-test"};
  }

  // The port `child` reports listening on, once it does; -1 when it exits
  // or does not within a minute.
  static int WaitForPort(Child& child) {
    constexpr std::string_view kMark = "api listening on port ";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline && child.Running()) {
      const std::string err = child.StderrSoFar();
      if (const auto at = err.find(kMark); at != std::string::npos) {
        return std::stoi(err.substr(at + kMark.size()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }

  testutil::TempDir dir_;
  testutil::TestDatabase database_;
  fs::path dsn_file_;
};

TEST_F(ServeTlsTest, PlainHttpOnNonLoopbackIsRefused) {
  for (const std::string listen : {"0.0.0.0:0", "[::]:0", "192.0.2.1:8080"}) {
    const RunResult result = RunKindling(Serve(listen));
    EXPECT_NE(result.exit_code, 0) << listen;
    EXPECT_NE(result.err.find("refusing to serve the API over plain HTTP"), std::string::npos)
        << result.err;
    EXPECT_NE(result.err.find("--insecure-http"), std::string::npos) << result.err;
    EXPECT_NE(result.err.find("--tls-cert"), std::string::npos) << result.err;
  }
  // The same through the environment.
  const RunResult env = RunKindling({"serve", "--components", "api"},
                                    {{"KINDLING_LISTEN", "0.0.0.0:0"},
                                     {"KINDLING_DSN_FILE", dsn_file_.string()},
                                     {"KINDLING_STATE_DIR", (dir_.path() / "state").string()}});
  EXPECT_NE(env.exit_code, 0);
  EXPECT_NE(env.err.find("refusing to serve the API over plain HTTP"), std::string::npos)
      << env.err;
  // A process without the API component does not serve it: no refusal (it
  // then fails later, on the DSN file that does not exist).
  const RunResult worker = RunKindling({"serve", "--components", "worker", "--listen", "0.0.0.0:0",
                                        "--dsn-file", (dir_.path() / "missing.dsn").string(),
                                        "--state-dir", (dir_.path() / "state").string()});
  EXPECT_NE(worker.exit_code, 0);
  EXPECT_EQ(worker.err.find("refusing to serve the API"), std::string::npos) << worker.err;
  // Only one of the TLS files.
  std::vector<std::string> args = Serve("0.0.0.0:0");
  args.insert(args.end(), {"--tls-cert", (dir_.path() / "cert.pem").string()});
  const RunResult half = RunKindling(args);
  EXPECT_NE(half.exit_code, 0);
  EXPECT_NE(half.err.find("--tls-cert and --tls-key go together"), std::string::npos) << half.err;
}

TEST_F(ServeTlsTest, InsecureHttpStartsOnAnyAddress) {
  std::vector<std::string> args = Serve("0.0.0.0:0");
  args.push_back("--insecure-http");
  Child child(args, {});
  const int port = WaitForPort(child);
  ASSERT_GT(port, 0) << child.StderrSoFar();
  child.Signal(SIGTERM);
  const RunResult result = child.Wait(std::chrono::seconds(60));
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

TEST_F(ServeTlsTest, ServesTlsThatTheCliVerifies) {
  const RunResult boot = RunKindling(
      {"admin", "bootstrap", "--email", "admin@example.com", "--dsn-file", dsn_file_.string()});
  ASSERT_EQ(boot.exit_code, 0) << boot.err;
  const std::string prefix = "KINDLING_API_KEY=";
  const auto at = boot.out.find(prefix);
  ASSERT_NE(at, std::string::npos) << boot.out;
  const std::string key =
      boot.out.substr(at + prefix.size(), boot.out.find('\n', at) - at - prefix.size());

  const testutil::TlsFiles tls =
      testutil::MakeLocalhostCertificate(dir_.path() / "tls", "kindling serve test CA");
  // The certificate from the environment, the key from a flag.
  std::vector<std::string> args = Serve("0.0.0.0:0");
  args.insert(args.end(), {"--tls-key", tls.key.string()});
  Child child(args, {{"KINDLING_TLS_CERT", tls.cert.string()}});
  const int port = WaitForPort(child);
  ASSERT_GT(port, 0) << child.StderrSoFar();
  const std::string url = "https://localhost:" + std::to_string(port);
  const Env env = {{"KINDLING_API_KEY", key}};

  const RunResult trusted =
      RunKindling({"project", "list", "--url", url, "--ca-file", tls.ca.string()}, env);
  EXPECT_EQ(trusted.exit_code, 0) << trusted.err;

  const RunResult from_env =
      RunKindling({"project", "list", "--url", url},
                  {{"KINDLING_API_KEY", key}, {"KINDLING_CA_FILE", tls.ca.string()}});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;

  const RunResult untrusted = RunKindling({"project", "list", "--url", url}, env);
  EXPECT_EQ(untrusted.exit_code, 1);
  EXPECT_NE(untrusted.err.find("TLS certificate verification failed"), std::string::npos)
      << untrusted.err;
  EXPECT_NE(untrusted.err.find("--ca-file"), std::string::npos) << untrusted.err;
  EXPECT_EQ(untrusted.err.find(key), std::string::npos);

  const RunResult plain =
      RunKindling({"project", "list", "--url", "http://127.0.0.1:" + std::to_string(port)}, env);
  EXPECT_EQ(plain.exit_code, 1);
  EXPECT_NE(plain.err.find("cannot reach the API"), std::string::npos) << plain.err;

  child.Signal(SIGTERM);
  const RunResult result = child.Wait(std::chrono::seconds(60));
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

}  // namespace
}  // namespace kindling::clitest
