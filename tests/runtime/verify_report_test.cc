#include "runtime/canary/verify_report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kindling::canary {
namespace {

TEST(VerifyReportTest, JsonHasTheDocumentedShape) {
  const VerifyReport report{.records = 3, .intact = 1, .damaged = {2, 3}};
  EXPECT_EQ(VerifyReportJson(report), R"({"records":3,"intact":1,"damaged":[2,3]})");
  auto back = ParseVerifyReportJson(VerifyReportJson(report));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, report);
}

TEST(VerifyReportTest, ParseRejectsOtherShapes) {
  for (const char* bad :
       {"", "[]", R"({"records":1,"intact":1})", R"({"records":-1,"intact":0,"damaged":[]})",
        R"({"records":1,"intact":1,"damaged":["x"]})", "{not json"}) {
    auto parsed = ParseVerifyReportJson(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_TRUE(parsed.error().is_corruption()) << bad;
  }
}

TEST(VerifyReportTest, FindsTheLastResultInAConsoleLog) {
  const std::string log =
      "[    0.000000] Linux version 6.1.0\r\n"
      "kindling-init [1.2]: volume mounted on /data\r\n" +
      VerifyConsoleLine({.records = 1, .intact = 1, .damaged = {}}) + "\r\n" +
      // A kernel message written into the middle of a line garbles it.
      "kindling-canary-verify: {\"records\":9,[   3.1] EXT4-fs\r\n" +
      VerifyConsoleLine({.records = 4, .intact = 3, .damaged = {4}}) + "\r\n" +
      "[    2.500000] reboot: Power down\r\n";
  auto report = FindVerifyReport(log);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(*report, (VerifyReport{.records = 4, .intact = 3, .damaged = {4}}));
}

TEST(VerifyReportTest, NoResultIsNotFound) {
  auto report = FindVerifyReport("[ 0.1] booting\nkindling-canary-verify-error: EIO\n");
  ASSERT_FALSE(report);
  EXPECT_TRUE(report.error().is_not_found());
}

}  // namespace
}  // namespace kindling::canary
