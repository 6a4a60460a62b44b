// ApiContext::Wrap and Body: what a request brought that may be secret (its
// body, the API key in its Authorization header) is gone once handled.
#include "api/api_context.h"

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "api_test_fixture.h"

namespace kindling::api {
namespace {

constexpr char kSecretValue[] = "s3-secret-value-0123456789abcdefghij";

class ApiContextTest : public ApiServerTest {
 protected:
  // A request as httplib hands it to a handler: a backup-settings body with
  // the S3 secret, and `key` as the bearer.
  static httplib::Request SecretRequest(const std::string& key) {
    httplib::Request req;
    req.method = "PUT";
    req.body = std::string(R"({"s3_secret_access_key":")") + kSecretValue + R"("})";
    req.headers.emplace("Authorization", "Bearer " + key);
    return req;
  }

  static void ExpectWiped(const httplib::Request& req) {
    EXPECT_TRUE(req.body.empty()) << req.body;
    EXPECT_EQ(req.get_header_value("Authorization"), "");
  }

  void SetUp() override {
    ApiServerTest::SetUp();
    api_ = std::make_unique<ApiContext>(db(), master_key_, ApiServerOptions{}, http_);
  }

  httplib::Server http_;
  std::unique_ptr<ApiContext> api_;
};

TEST_F(ApiContextTest, AHandledRequestKeepsNeitherItsBodyNorItsKey) {
  std::optional<Secret> taken;
  std::string left_in_body = "unread";
  auto handler = api_->Wrap([&](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(Body body, Body::Parse(call.req, {"s3_secret_access_key"}));
    API_ASSIGN_OR_RETURN(taken, body.TakeSecret("s3_secret_access_key"));
    API_ASSIGN_OR_RETURN(auto rest, body.String("s3_secret_access_key"));
    left_in_body = rest.value_or("(null)");
    return Reply{};
  });
  httplib::Request req = SecretRequest(admin_key_);
  httplib::Response res;
  handler(req, res);
  EXPECT_EQ(res.status, 200) << res.body;
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->Reveal(), kSecretValue);
  EXPECT_EQ(left_in_body, "");  // taken out of the parsed body, not copied
  ExpectWiped(req);
}

TEST_F(ApiContextTest, ARefusedOrFailedRequestIsWipedToo) {
  auto refuse = api_->Wrap([](Call&) -> ControlResult<Reply> { return Invalid("no"); });
  auto fail = api_->Wrap([](Call&) -> ControlResult<Reply> { throw std::runtime_error("boom"); });
  struct Case {
    const char* name;
    httplib::Server::Handler* handler;
    std::string key;
    int status;
  };
  for (const Case& c :
       {Case{"handler error", &refuse, admin_key_, 400}, Case{"exception", &fail, admin_key_, 500},
        Case{"unknown key", &refuse, "kdl_" + std::string(64, '0'), 401}}) {
    SCOPED_TRACE(c.name);
    httplib::Request req = SecretRequest(c.key);
    httplib::Response res;
    (*c.handler)(req, res);
    EXPECT_EQ(res.status, c.status) << res.body;
    EXPECT_EQ(res.body.find(kSecretValue), std::string::npos) << res.body;
    ExpectWiped(req);
  }
}

TEST_F(ApiContextTest, TakeSecretRefusesANonString) {
  httplib::Request req;
  req.body = R"({"s3_secret_access_key": 42})";
  auto body = Body::Parse(req, {"s3_secret_access_key"});
  ASSERT_TRUE(body);
  auto taken = body->TakeSecret("s3_secret_access_key");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().http_status, 400);
  req.body = R"({"s3_secret_access_key": null})";
  body = Body::Parse(req, {"s3_secret_access_key"});
  ASSERT_TRUE(body);
  auto absent = body->TakeSecret("s3_secret_access_key");
  ASSERT_TRUE(absent);
  EXPECT_FALSE(absent->has_value());
}

}  // namespace
}  // namespace kindling::api
