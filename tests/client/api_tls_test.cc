// The API over TLS: ApiServer with a throwaway CA's certificate for
// localhost, and ApiClient verifying it with --ca-file's CA (succeeds),
// with the system store only (fails at once with a certificate error that
// says what to do), and over plain HTTP against the TLS port (fails, no
// hang). Also the server's refusal of TLS files it cannot use.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "api/api_server.h"
#include "client/api_client.h"
#include "db/auth.h"
#include "db/db_test_util.h"
#include "testutil/temp_dir.h"
#include "testutil/test_certificate.h"

namespace kindling::client {
namespace {

class ApiTlsTest : public db::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    if (HasFatalFailure()) return;
    auto boot = Must([&](db::Tx& tx) {
      return db::BootstrapPlatformAdmin(tx, "admin@example.com", "Admin", "acme");
    });
    ASSERT_TRUE(boot);
    admin_key_ = std::string(boot->api_key.secret.Reveal());
    tls_ = testutil::MakeLocalhostCertificate(dir_.path() / "tls", "kindling API test CA");
    api::ApiServerOptions options;
    options.tls_cert_file = tls_.cert.string();
    options.tls_key_file = tls_.key.string();
    server_ = std::make_unique<api::ApiServer>(db(), master_key_, options);
    ASSERT_TRUE(server_->Start());
  }
  void TearDown() override { server_.reset(); }

  std::unique_ptr<ApiClient> Client(const std::string& scheme, const std::string& ca_file) {
    auto client = ApiClient::Create(
        ApiClientOptions{.base_url = scheme + "://localhost:" + std::to_string(server_->port()),
                         .api_key = Secret::FromView(admin_key_),
                         .connect_timeout_ms = 5'000,
                         .request_timeout_ms = 20'000,
                         .ca_file = ca_file});
    EXPECT_TRUE(client) << client.error().message();
    return client ? std::move(*client) : nullptr;
  }

  testutil::TempDir dir_;
  testutil::TlsFiles tls_;
  crypto::Key master_key_ = crypto::RandomKey();
  std::string admin_key_;
  std::unique_ptr<api::ApiServer> server_;
};

TEST_F(ApiTlsTest, ClientWithCaFileSucceeds) {
  auto client = Client("https", tls_.ca.string());
  ASSERT_NE(client, nullptr);
  auto projects = client->ListProjects();
  ASSERT_TRUE(projects) << projects.error().message();
  EXPECT_TRUE(projects->is_array());
  auto created = client->CreateProject("web");
  ASSERT_TRUE(created) << created.error().message();
}

TEST_F(ApiTlsTest, ClientWithoutCaFileFailsWithCertificateError) {
  auto client = Client("https", "");
  ASSERT_NE(client, nullptr);
  const auto start = std::chrono::steady_clock::now();
  auto projects = client->ListProjects();
  ASSERT_FALSE(projects);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(projects.error().kind(), ErrorKind::kPermissionDenied);
  const std::string& message = projects.error().message();
  EXPECT_NE(message.find("TLS certificate verification failed"), std::string::npos) << message;
  EXPECT_NE(message.find("--ca-file"), std::string::npos) << message;
  EXPECT_EQ(message.find(admin_key_), std::string::npos) << message;
}

TEST_F(ApiTlsTest, ClientWithAnotherCaFails) {
  const auto other = testutil::MakeLocalhostCertificate(dir_.path() / "other", "another CA");
  auto client = Client("https", other.ca.string());
  ASSERT_NE(client, nullptr);
  auto projects = client->ListProjects();
  ASSERT_FALSE(projects);
  EXPECT_EQ(projects.error().kind(), ErrorKind::kPermissionDenied) << projects.error().message();
}

TEST_F(ApiTlsTest, PlainHttpClientToTlsPortFails) {
  auto client = Client("http", "");
  ASSERT_NE(client, nullptr);
  const auto start = std::chrono::steady_clock::now();
  auto projects = client->ListProjects();
  ASSERT_FALSE(projects);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_NE(projects.error().message().find("cannot reach the API"), std::string::npos)
      << projects.error().message();
  // The server still serves TLS clients afterwards.
  auto tls_client = Client("https", tls_.ca.string());
  ASSERT_NE(tls_client, nullptr);
  EXPECT_TRUE(tls_client->ListProjects());
}

TEST_F(ApiTlsTest, UnusableTlsFilesRefuseToStart) {
  const auto other = testutil::MakeLocalhostCertificate(dir_.path() / "other", "another CA");
  const std::string garbage = (dir_.path() / "garbage.pem").string();
  std::ofstream(garbage) << "not a certificate\n";
  struct Case {
    std::string cert, key, expected;
  };
  for (const Case& c :
       {Case{tls_.cert.string(), other.key.string(), "is not the key of the certificate"},
        Case{garbage, tls_.key.string(), "cannot load the TLS certificate"},
        Case{tls_.cert.string(), (dir_.path() / "missing.key").string(), "cannot load the TLS key"},
        Case{tls_.cert.string(), "", "both a certificate file and a key file"}}) {
    api::ApiServerOptions options;
    options.tls_cert_file = c.cert;
    options.tls_key_file = c.key;
    api::ApiServer server(db(), master_key_, options);
    auto started = server.Start();
    ASSERT_FALSE(started) << c.cert << " " << c.key;
    EXPECT_EQ(started.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(started.error().message().find(c.expected), std::string::npos)
        << started.error().message();
  }
}

}  // namespace
}  // namespace kindling::client
