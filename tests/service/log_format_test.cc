// The JSON log format: one parseable object a line, fields from key=value.
#include "service/log_format.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common/log_fields.h"

namespace kindling::service {
namespace {

using nlohmann::json;

json LineFor(spdlog::level::level_enum level, const std::string& text) {
  const spdlog::details::log_msg msg(spdlog::source_loc{}, "kindling", level, text);
  const std::string line = JsonLogLine(msg);
  EXPECT_TRUE(line.ends_with("\n")) << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  json parsed = json::parse(line, nullptr, false);
  EXPECT_TRUE(parsed.is_object()) << line;
  return parsed;
}

TEST(LogFormatTest, JsonLinesEscapeQuotesNewlinesAndControlCharacters) {
  const std::string text = "said \"hi\"\nthen\t\x01left\\";
  const json line = LineFor(spdlog::level::warn, text);
  EXPECT_EQ(line["message"], text);
  EXPECT_EQ(line["level"], "warning");
  const std::string time = line.value("time", "");
  ASSERT_EQ(time.size(), 24u) << time;  // 2024-05-01T12:00:00.123Z
  EXPECT_EQ(time[10], 'T');
  EXPECT_EQ(time[19], '.');
  EXPECT_EQ(time.back(), 'Z');
  EXPECT_TRUE(line["thread"].is_number());
  // Invalid UTF-8 does not throw.
  EXPECT_TRUE(LineFor(spdlog::level::info, "bad \xff\xfe bytes").contains("message"));
}

TEST(LogFormatTest, KeyValueFieldsBecomeMembers) {
  const std::string text = "request failed" + LogField("request_id", "ab12") +
                           LogField("path", "/a b\"c") + LogField("status", "500") +
                           LogField("error", "x \"y\"\nz") + LogField("level", "forged") +
                           LogField("empty", "");
  EXPECT_EQ(text,
            "request failed request_id=ab12 path=\"/a b\\\"c\" status=500 "
            "error=\"x \\\"y\\\"\\nz\" level=forged empty=\"\"");
  const json line = LineFor(spdlog::level::err, text);
  EXPECT_EQ(line["message"], text);
  EXPECT_EQ(line["level"], "error");  // not the forged field
  EXPECT_EQ(line["request_id"], "ab12");
  EXPECT_EQ(line["path"], "/a b\"c");
  EXPECT_EQ(line["status"], 500);
  EXPECT_EQ(line["error"], "x \"y\"\nz");
  EXPECT_EQ(line["empty"], "");

  // Text that only looks like fields in part gets none.
  const json partial = LineFor(spdlog::level::info, "moved a=1 then b");
  EXPECT_FALSE(partial.contains("a"));
  EXPECT_FALSE(ParseLogFields("no fields here").has_value());
  auto parsed = ParseLogFields("event k=v other=\"q q\"");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->message, "event");
  ASSERT_EQ(parsed->fields.size(), 2u);
  EXPECT_EQ(parsed->fields[1].second, "q q");
  EXPECT_FALSE(ParseLogFields("event k=\"unterminated").has_value());
}

TEST(LogFormatTest, FormatterWritesOneObjectPerLine) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("test", sink);
  logger.set_formatter(NewJsonLogFormatter());
  logger.info("first \"one\"");
  logger.error("second\nline");
  std::istringstream lines(out.str());
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    const json parsed = json::parse(line, nullptr, false);
    ASSERT_TRUE(parsed.is_object()) << line;
    EXPECT_EQ(parsed["message"], count == 0 ? "first \"one\"" : "second\nline");
    ++count;
  }
  EXPECT_EQ(count, 2);
}

TEST(LogFormatTest, ParsesFormatNames) {
  EXPECT_EQ(ParseLogFormat("json").value(), LogFormat::kJson);
  EXPECT_EQ(ParseLogFormat("text").value(), LogFormat::kText);
  EXPECT_FALSE(ParseLogFormat("xml").has_value());
  EXPECT_EQ(LogFormatName(LogFormat::kJson), "json");
}

}  // namespace
}  // namespace kindling::service
