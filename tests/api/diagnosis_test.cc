// Request ids, the logging of 5xx answers and the access log.
#include <string>
#include <vector>

#include "api/api_context.h"
#include "api_test_fixture.h"
#include "log_capture.h"

namespace kindling::api {
namespace {

class DiagnosisTest : public ApiServerTest {
 protected:
  httplib::Result Get(const std::string& path, const std::string& key,
                      const std::string& request_id = "") {
    httplib::Headers headers;
    if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
    if (!request_id.empty()) headers.emplace(kRequestIdHeader, request_id);
    return client_->Get(path, headers);
  }

  // Every read of `table` fails with `message` (a PL/pgSQL exception, which
  // db/ reports as kInternal).
  void BreakTable(const std::string& table, const std::string& message) {
    Sql("ALTER TABLE " + table + " RENAME TO " + table + "_hidden");
    Sql("CREATE FUNCTION broken_" + table + "() RETURNS SETOF " + table +
        "_hidden LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '" + message + "'; END $$");
    Sql("CREATE VIEW " + table + " AS SELECT * FROM broken_" + table + "()");
  }

  LogCapture log_;
};

bool IsHex32(const std::string& id) {
  return id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

TEST_F(DiagnosisTest, InternalErrorIsLoggedWithItsCauseAndAnsweredGenerically) {
  // The cause quotes a DSN with its password and the caller's API key:
  // neither may reach the log.
  BreakTable("servers",
             "kaboom: cannot use postgresql://kindling:hunter2@db.internal/kindling "
             "for " +
                 admin_key_);
  for (const std::string path : {"/api/platform/servers", "/metrics"}) {
    SCOPED_TRACE(path);
    auto res = Get(path + "?token=query-secret", admin_key_);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 500);
    const std::string id = res->get_header_value(kRequestIdHeader);
    EXPECT_TRUE(IsHex32(id)) << id;
    const json body = json::parse(res->body, nullptr, false);
    EXPECT_EQ(body, (json{{"error", "internal error (request id " + id + ")"},
                          {"code", "internal_error"}}))
        << res->body;

    const auto errors = log_.LinesWith("request_id=" + id);
    ASSERT_FALSE(errors.empty());
    const std::string& line = errors.front();
    EXPECT_TRUE(line.starts_with("error request failed ")) << line;
    EXPECT_NE(line.find("method=GET path=" + path + " status=500 code=internal_error"),
              std::string::npos)
        << line;
    EXPECT_NE(line.find("kaboom: cannot use postgresql://kindling:***@db.internal/kindling"),
              std::string::npos)
        << line;
    EXPECT_NE(line.find("[api key]"), std::string::npos) << line;

    const auto access = log_.AwaitLinesWith("info request request_id=" + id);
    ASSERT_EQ(access.size(), 1u);
    EXPECT_NE(
        access[0].find("method=GET path=" + path + " route=" + path + " status=500 duration_ms="),
        std::string::npos)
        << access[0];
    EXPECT_NE(access[0].find(" user_id="), std::string::npos) << access[0];
    EXPECT_NE(access[0].find(" queued_ms="), std::string::npos) << access[0];
    EXPECT_NE(access[0].find("remote_addr=127.0.0.1"), std::string::npos) << access[0];
  }
  for (const std::string& line : log_.Lines()) {
    EXPECT_EQ(line.find("hunter2"), std::string::npos) << line;
    EXPECT_EQ(line.find(admin_key_), std::string::npos) << line;
    EXPECT_EQ(line.find("query-secret"), std::string::npos) << line;
  }
}

TEST_F(DiagnosisTest, ClientErrorsAreNotLoggedAsErrors) {
  auto unauthorised = Get("/api/projects", "");
  ASSERT_TRUE(unauthorised);
  EXPECT_EQ(unauthorised->status, 401);
  auto no_route = Get("/api/nothing-here", admin_key_);
  ASSERT_TRUE(no_route);
  EXPECT_EQ(no_route->status, 404);
  auto bad_id = Get("/api/projects/not-a-uuid", admin_key_);
  ASSERT_TRUE(bad_id);
  EXPECT_EQ(bad_id->status / 100, 4);
  for (const auto* res : {&unauthorised, &no_route, &bad_id}) {
    const std::string id = (*res)->get_header_value(kRequestIdHeader);
    EXPECT_TRUE(IsHex32(id)) << id;
    const auto access = log_.AwaitLinesWith("request_id=" + id);
    ASSERT_EQ(access.size(), 1u);
    EXPECT_TRUE(access[0].starts_with("info request ")) << access[0];
    EXPECT_NE(access[0].find(" status=" + std::to_string((*res)->status)), std::string::npos);
  }
  EXPECT_TRUE(log_.LinesWith("error ").empty());
}

TEST_F(DiagnosisTest, SaneClientRequestIdsAreEchoed) {
  auto res = Get("/api/projects", admin_key_, "trace-01_AB");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value(kRequestIdHeader), "trace-01_AB");
  EXPECT_EQ(log_.AwaitLinesWith("request_id=trace-01_AB").size(), 1u);

  // And on an error answer, in its message too.
  BreakTable("projects", "kaboom");
  res = Get("/api/projects", admin_key_, "trace-02");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 500);
  EXPECT_EQ(res->get_header_value(kRequestIdHeader), "trace-02");
  EXPECT_NE(res->body.find("(request id trace-02)"), std::string::npos) << res->body;

  for (const std::string& bad :
       std::vector<std::string>{"has space", "quote\"d", std::string(65, 'a'), "semi;colon"}) {
    res = Get("/healthz", "", bad);
    ASSERT_TRUE(res) << bad;
    EXPECT_TRUE(IsHex32(res->get_header_value(kRequestIdHeader))) << bad;
  }
  EXPECT_TRUE(IsSaneRequestId(std::string(64, 'a')));
  EXPECT_FALSE(IsSaneRequestId(""));
  EXPECT_NE(NewRequestId(), NewRequestId());
}

TEST(ScrubForLogTest, MasksDsnPasswordsAndTheApiKey) {
  EXPECT_EQ(ScrubForLog("connect host=db password=s3cret user=k: refused", ""),
            "connect host=db password=*** user=k: refused");
  EXPECT_EQ(ScrubForLog("key kdk_0123456789 rejected", "kdk_0123456789"), "key [api key] rejected");
  EXPECT_EQ(ScrubForLog("short abc", "abc"), "short abc");  // not a key: too short
  EXPECT_EQ(ScrubForLog(std::string(5000, 'x'), "").size(), 2003u);
}

}  // namespace
}  // namespace kindling::api
