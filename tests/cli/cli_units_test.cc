// Unit tests of the pieces of cli/ that do not need a store: flag parsing,
// exit codes, number formatting and the progress display.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/exit_codes.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "cli/progress_reporter.h"

namespace kindling::cli {
namespace {

TEST(CliFlagsTest, ParsesByteSizes) {
  EXPECT_EQ(ParseByteSize("65536").value(), 65536u);
  EXPECT_EQ(ParseByteSize("64K").value(), 65536u);
  EXPECT_EQ(ParseByteSize("64KiB").value(), 65536u);
  EXPECT_EQ(ParseByteSize("64KB").value(), 65536u);
  EXPECT_EQ(ParseByteSize("4M").value(), 4u << 20);
  EXPECT_EQ(ParseByteSize("4MiB").value(), 4u << 20);
  EXPECT_EQ(ParseByteSize("1G").value(), 1u << 30);
  EXPECT_FALSE(ParseByteSize(""));
  EXPECT_FALSE(ParseByteSize("abc"));
  EXPECT_FALSE(ParseByteSize("-1"));
  EXPECT_FALSE(ParseByteSize("4X"));
  EXPECT_FALSE(ParseByteSize("99999999999999999999"));
  EXPECT_FALSE(ParseByteSize("17179869184G"));
}

TEST(CliFlagsTest, ChunkSizeHasBounds) {
  EXPECT_EQ(ParseChunkSize("4K").value(), 4096u);
  EXPECT_EQ(ParseChunkSize("64M").value(), 64u << 20);
  EXPECT_EQ(ParseChunkSize("4095").error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(ParseChunkSize("65M").error().kind(), ErrorKind::kInvalidArgument);
}

TEST(CliFlagsTest, ValidatesIds) {
  EXPECT_TRUE(ValidateId("--volume-id", "vol-1"));
  EXPECT_TRUE(ValidateId("--volume-id", "0190a7e2-1b2c-7d3e-8f40-123456789abc"));
  for (const char* bad : {"", ".hidden", "a/b", "../x", "a b", "vol\n"}) {
    auto st = ValidateId("--volume-id", bad);
    ASSERT_FALSE(st) << bad;
    EXPECT_EQ(st.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(st.error().message().find("--volume-id"), std::string::npos);
  }
  EXPECT_FALSE(ValidateId("--volume-id", std::string(129, 'a')));
}

TEST(CliFlagsTest, ProgressModes) {
  EXPECT_EQ(ParseProgressMode("auto").value(), ProgressMode::kAuto);
  EXPECT_EQ(ParseProgressMode("bar").value(), ProgressMode::kBar);
  EXPECT_EQ(ParseProgressMode("json").value(), ProgressMode::kJson);
  EXPECT_EQ(ParseProgressMode("none").value(), ProgressMode::kNone);
  EXPECT_FALSE(ParseProgressMode("fancy"));
  CommonFlags common;
  common.threads = -1;
  EXPECT_FALSE(ValidateCommon(common));
}

TEST(CliExitCodesTest, MapsErrorKinds) {
  EXPECT_EQ(ExitCodeFor(Error(ErrorKind::kInvalidArgument, "")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(Error(ErrorKind::kAlreadyExists, "")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(Error(ErrorKind::kCorruption, "")), kExitIntegrity);
  EXPECT_EQ(ExitCodeFor(Error(ErrorKind::kWrongKey, "")), kExitWrongKey);
  EXPECT_EQ(ExitCodeFor(Error(ErrorKind::kCancelled, "")), kExitCancelled);
  for (ErrorKind kind :
       {ErrorKind::kNotFound, ErrorKind::kIo, ErrorKind::kTransient, ErrorKind::kPermissionDenied,
        ErrorKind::kFailedPrecondition, ErrorKind::kInternal}) {
    EXPECT_EQ(ExitCodeFor(Error(kind, "")), kExitFailed);
  }
}

TEST(CliOutputTest, FormatsFigures) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(1u << 30), "1.00 GiB");
  EXPECT_EQ(FormatRate(312.44e6), "312.4 MB/s");
  EXPECT_EQ(FormatEta(7), "0:07");
  EXPECT_EQ(FormatEta(754), "12:34");
  EXPECT_EQ(FormatEta(3723), "1:02:03");
  EXPECT_EQ(FormatDuration(850), "850 ms");
  EXPECT_EQ(FormatDuration(3210), "3.21 s");
  EXPECT_EQ(FormatDuration(125'000), "2 min 5 s");
  EXPECT_EQ(FormatUnixMs(1'714'564'800'123), "2024-05-01T12:00:00.123Z");
  EXPECT_DOUBLE_EQ(RateOf(1000, 500), 2000.0);
  EXPECT_DOUBLE_EQ(RateOf(1000, 0), 0.0);
}

TEST(CliOutputTest, JsonDumpSurvivesInvalidUtf8) {
  nlohmann::json value = {{"message", std::string("bad \xff byte")}};
  EXPECT_NE(DumpJson(value).find("message"), std::string::npos);
}

// A progress reporter writing to a memory stream, with a hand-driven clock.
class ProgressReporterTest : public ::testing::Test {
 protected:
  ProgressReporterTest() { out_ = ::open_memstream(&buffer_, &size_); }
  ~ProgressReporterTest() override {
    if (out_ != nullptr) std::fclose(out_);
    std::free(buffer_);
  }
  std::unique_ptr<ProgressReporter> Make(ProgressReporter::Style style) {
    return std::make_unique<ProgressReporter>(style, out_, [this] { return now_; });
  }
  std::string Output() {
    std::fflush(out_);
    return std::string(buffer_, size_);
  }
  std::vector<nlohmann::json> JsonLines() {
    std::vector<nlohmann::json> lines;
    std::istringstream in(Output());
    for (std::string line; std::getline(in, line);) {
      lines.push_back(nlohmann::json::parse(line));
    }
    return lines;
  }
  static engine::Progress At(std::string_view phase, std::uint64_t done, std::uint64_t total) {
    engine::Progress p;
    p.phase = phase;
    p.bytes_done = done;
    p.bytes_total = total;
    p.chunks_done = done / 10;
    p.chunks_total = total / 10;
    p.bytes_transferred = done / 2;
    return p;
  }

  std::chrono::steady_clock::time_point now_{};
  char* buffer_ = nullptr;
  std::size_t size_ = 0;
  std::FILE* out_ = nullptr;
};

TEST_F(ProgressReporterTest, JsonLinesCarryEveryField) {
  auto reporter = Make(ProgressReporter::Style::kJsonLines);
  now_ += std::chrono::seconds(2);
  reporter->Report(At("backup", 1000, 4000));
  const auto lines = JsonLines();
  ASSERT_EQ(lines.size(), 1u);
  const auto& line = lines[0];
  EXPECT_EQ(line["type"], "progress");
  EXPECT_EQ(line["phase"], "backup");
  EXPECT_EQ(line["bytes_done"], 1000);
  EXPECT_EQ(line["bytes_total"], 4000);
  EXPECT_EQ(line["chunks_done"], 100);
  EXPECT_EQ(line["chunks_total"], 400);
  EXPECT_EQ(line["bytes_transferred"], 500);
  EXPECT_DOUBLE_EQ(line["rate_bytes_per_second"].get<double>(), 500.0);
  EXPECT_DOUBLE_EQ(line["eta_seconds"].get<double>(), 6.0);
}

TEST_F(ProgressReporterTest, ThrottlesToTenPerSecondButKeepsPhaseEnds) {
  auto reporter = Make(ProgressReporter::Style::kJsonLines);
  reporter->Report(At("backup", 0, 1000));  // first: written
  for (int i = 1; i < 50; ++i) {
    now_ += std::chrono::milliseconds(10);
    reporter->Report(At("backup", static_cast<std::uint64_t>(i), 1000));
  }                                            // 490 ms: about 4 more
  reporter->Report(At("backup", 1000, 1000));  // phase complete: written
  reporter->Report(At("commit", 1000, 1000));  // new phase: written
  const auto lines = JsonLines();
  EXPECT_GE(lines.size(), 6u);
  EXPECT_LE(lines.size(), 8u);
  EXPECT_EQ(lines[lines.size() - 2]["bytes_done"], 1000);
  EXPECT_EQ(lines.back()["phase"], "commit");
}

TEST_F(ProgressReporterTest, RateSpansPhasesOfOnePass) {
  auto reporter = Make(ProgressReporter::Style::kJsonLines);
  now_ += std::chrono::seconds(1);
  reporter->Report(At("backup", 500, 1000));
  now_ += std::chrono::seconds(1);
  reporter->Report(At("backup", 1000, 1000));
  now_ += std::chrono::milliseconds(500);
  reporter->Report(At("commit", 1000, 1000));  // same pass: 1000 bytes in 2.5 s
  now_ += std::chrono::seconds(1);
  reporter->Report(At("digest", 250, 1000));  // a new pass over the image
  const auto lines = JsonLines();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_DOUBLE_EQ(lines[1]["rate_bytes_per_second"].get<double>(), 500.0);
  EXPECT_DOUBLE_EQ(lines[2]["rate_bytes_per_second"].get<double>(), 400.0);
  EXPECT_DOUBLE_EQ(lines[3]["rate_bytes_per_second"].get<double>(), 250.0);
  EXPECT_DOUBLE_EQ(lines[3]["eta_seconds"].get<double>(), 3.0);
}

TEST_F(ProgressReporterTest, BarRedrawsInPlaceAndEndsItsLine) {
  auto reporter = Make(ProgressReporter::Style::kBar);
  reporter->Report(At("restore", 0, 1u << 20));
  now_ += std::chrono::seconds(1);
  reporter->Report(At("restore", 1u << 19, 1u << 20));
  reporter->Finish();
  const std::string out = Output();
  EXPECT_EQ(out.front(), '\r');
  EXPECT_NE(out.find("restore"), std::string::npos);
  EXPECT_NE(out.find("50.0%"), std::string::npos);
  EXPECT_NE(out.find("MB/s"), std::string::npos);
  EXPECT_NE(out.find("ETA"), std::string::npos);
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
}

TEST_F(ProgressReporterTest, NoneAndQuietPrintNothing) {
  EXPECT_EQ(ProgressReporter::StyleFor(ProgressMode::kAuto, true, true),
            ProgressReporter::Style::kNone);
  EXPECT_EQ(ProgressReporter::StyleFor(ProgressMode::kAuto, false, true),
            ProgressReporter::Style::kBar);
  EXPECT_EQ(ProgressReporter::StyleFor(ProgressMode::kAuto, false, false),
            ProgressReporter::Style::kJsonLines);
  EXPECT_EQ(ProgressReporter::StyleFor(ProgressMode::kBar, false, false),
            ProgressReporter::Style::kBar);
  auto reporter = Make(ProgressReporter::Style::kNone);
  EXPECT_FALSE(reporter->Callback());
  reporter->Report(At("backup", 1, 2));
  EXPECT_EQ(Output(), "");
}

}  // namespace
}  // namespace kindling::cli
