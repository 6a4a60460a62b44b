// The SigV4 signer against AWS's published vectors (tests/golden/sigv4/README.md):
// a signer that is nearly right is rejected by every S3 service, so the canonical
// request, the string to sign and the header are each compared byte for byte.
#include "storage/s3/sigv4.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "crypto/sha256.h"

namespace kindling::storage::sigv4 {
namespace {

namespace fs = std::filesystem;

const fs::path kGoldenDir = fs::path(KINDLING_SOURCE_DIR) / "tests/golden/sigv4";

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

struct Vector {
  std::string suite;
  std::string name;
};

std::ostream& operator<<(std::ostream& out, const Vector& vector) {
  return out << vector.suite << "/" << vector.name;
}

std::vector<Vector> ListVectors() {
  std::vector<Vector> out;
  std::error_code ec;
  for (const char* suite : {"aws-sig-v4-test-suite", "s3-examples"}) {
    for (const auto& entry : fs::directory_iterator(kGoldenDir / suite, ec)) {
      if (entry.is_directory()) out.push_back({suite, entry.path().filename().string()});
    }
  }
  std::sort(out.begin(), out.end(), [](const Vector& a, const Vector& b) {
    return std::tie(a.suite, a.name) < std::tie(b.suite, b.name);
  });
  return out;
}

// What a .req file describes: "METHOD /path?query HTTP/1.1", header lines
// "Name:value", a blank line, the body. Paths and queries are raw (unencoded).
struct ParsedRequest {
  Request request;
  std::string amz_date;
};

ParsedRequest ParseReq(const std::string& text) {
  ParsedRequest out;
  const auto body_at = text.find("\n\n");
  const std::string head = text.substr(0, body_at);
  const std::string body = body_at == std::string::npos ? "" : text.substr(body_at + 2);
  const auto lines = SplitLines(head);
  const std::string& request_line = lines.at(0);
  const auto method_end = request_line.find(' ');
  const auto target_end = request_line.rfind(" HTTP/1.1");
  out.request.method = request_line.substr(0, method_end);
  const std::string target = request_line.substr(method_end + 1, target_end - method_end - 1);
  const auto question = target.find('?');
  out.request.path = target.substr(0, question);
  if (question != std::string::npos) {
    std::istringstream query(target.substr(question + 1));
    for (std::string param; std::getline(query, param, '&');) {
      const auto eq = param.find('=');
      if (eq == std::string::npos) {
        out.request.query.emplace_back(param, "");
      } else {
        out.request.query.emplace_back(param.substr(0, eq), param.substr(eq + 1));
      }
    }
  }
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto colon = lines[i].find(':');
    std::string name = lines[i].substr(0, colon);
    std::string value = lines[i].substr(colon + 1);
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower == "x-amz-date") out.amz_date = value;
    out.request.headers.emplace_back(std::move(name), std::move(value));
  }
  out.request.payload_sha256 = crypto::DigestHex(crypto::Sha256Of(body));
  return out;
}

std::map<std::string, std::string> ReadContext(const fs::path& path) {
  std::map<std::string, std::string> out;
  for (const auto& line : SplitLines(ReadText(path))) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

std::string WithoutSpaceAfterCommas(std::string text) {
  for (std::size_t at; (at = text.find(", ")) != std::string::npos;) text.erase(at + 1, 1);
  return text;
}

class SigV4GoldenTest : public ::testing::TestWithParam<Vector> {};

TEST_P(SigV4GoldenTest, MatchesPublishedVector) {
  const Vector& vector = GetParam();
  const fs::path dir = kGoldenDir / vector.suite / vector.name;
  const fs::path base = dir / vector.name;
  auto context = ReadContext(kGoldenDir / vector.suite / "context");
  ParsedRequest parsed = ParseReq(ReadText(base.string() + ".req"));
  const auto time = ParseAmzDate(parsed.amz_date);
  ASSERT_TRUE(time.has_value()) << parsed.amz_date;

  const std::string canonical = CanonicalRequest(parsed.request);
  EXPECT_EQ(canonical, ReadText(base.string() + ".creq"));
  EXPECT_EQ(StringToSign(*time, context["region"], context["service"], canonical),
            ReadText(base.string() + ".sts"));

  const Credentials credentials{context["access_key_id"],
                                Secret::FromView(context["secret_access_key"])};
  const std::string authorization =
      Authorization(parsed.request, credentials, *time, context["region"], context["service"]);
  const std::string expected = ReadText(base.string() + ".authz");
  if (expected.find(", ") == std::string::npos) {
    EXPECT_EQ(WithoutSpaceAfterCommas(authorization), expected);
  } else {
    EXPECT_EQ(authorization, expected);
  }
  EXPECT_EQ(authorization.find(credentials.secret_access_key.Reveal()), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Published, SigV4GoldenTest, ::testing::ValuesIn(ListVectors()),
                         [](const ::testing::TestParamInfo<Vector>& param_info) {
                           std::string name = param_info.param.suite + "_" + param_info.param.name;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

TEST(SigV4Test, FindsTheGoldenVectors) {
  // A missing or moved golden directory must fail, not pass with zero cases.
  EXPECT_GE(ListVectors().size(), 20u);
}

TEST(SigV4Test, UriEncodeFollowsAwsNotJavaScript) {
  EXPECT_EQ(UriEncode("a-b_c.d~e", false), "a-b_c.d~e");
  EXPECT_EQ(UriEncode("a b+c*d!e'(f)", false), "a%20b%2Bc%2Ad%21e%27%28f%29");
  EXPECT_EQ(UriEncode("dir/sub/key", true), "dir/sub/key");
  EXPECT_EQ(UriEncode("dir/sub/key", false), "dir%2Fsub%2Fkey");
  EXPECT_EQ(UriEncode("=&%", false), "%3D%26%25");
  EXPECT_EQ(UriEncode("\xE1\x88\xB4", false), "%E1%88%B4");
}

TEST(SigV4Test, CanonicalQueryStringSortsByEncodedNameThenValue) {
  EXPECT_EQ(CanonicalQueryString({}), "");
  EXPECT_EQ(CanonicalQueryString({{"prefix", "a/b"}, {"list-type", "2"}}),
            "list-type=2&prefix=a%2Fb");
  EXPECT_EQ(CanonicalQueryString({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(CanonicalQueryString({{"b", "2"}, {"a", "z"}, {"a", "y"}}), "a=y&a=z&b=2");
  // A base64 continuation token keeps its '+', '/' and '=' only as escapes.
  EXPECT_EQ(CanonicalQueryString({{"continuation-token", "1+2/3="}}),
            "continuation-token=1%2B2%2F3%3D");
}

TEST(SigV4Test, SignedHeadersAreLowerCaseSortedAndUnique) {
  EXPECT_EQ(SignedHeaders({{"X-Amz-Date", "x"}, {"Host", "h"}, {"host", "h2"}}), "host;x-amz-date");
}

TEST(SigV4Test, AmzDateRoundTrips) {
  const auto time = ParseAmzDate("20150830T123600Z");
  ASSERT_TRUE(time.has_value());
  EXPECT_EQ(FormatAmzDate(*time), "20150830T123600Z");
  EXPECT_EQ(time->time_since_epoch().count(), 1440938160);
  EXPECT_EQ(CredentialScope(*time, "eu-west-1", "s3"), "20150830/eu-west-1/s3/aws4_request");
  EXPECT_FALSE(ParseAmzDate("20150830T123600").has_value());
  EXPECT_FALSE(ParseAmzDate("2015-08-30T12:36:00Z").has_value());
  EXPECT_FALSE(ParseAmzDate("20151330T123600Z").has_value());
  EXPECT_FALSE(ParseAmzDate("20150830T246000Z").has_value());
}

TEST(SigV4Test, SignatureDependsOnSecretAndPayload) {
  const auto time = *ParseAmzDate("20130524T000000Z");
  Request request{"PUT",
                  "/bucket/key",
                  {},
                  {{"host", "h"}, {"x-amz-date", "20130524T000000Z"}},
                  std::string(kEmptyPayloadSha256)};
  const Credentials secret_a{"id", Secret::FromView("secret-a")};
  const Credentials secret_b{"id", Secret::FromView("secret-b")};
  const std::string a = Authorization(request, secret_a, time, "us-east-1", "s3");
  const std::string b = Authorization(request, secret_b, time, "us-east-1", "s3");
  request.payload_sha256 = crypto::DigestHex(crypto::Sha256Of("x"));
  const std::string c = Authorization(request, secret_a, time, "us-east-1", "s3");
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.find("secret-a"), std::string::npos);
}

// The secret is held as a Secret: credentials move but never copy, and
// signing leaves them as they were.
static_assert(!std::is_copy_constructible_v<Credentials>);
static_assert(!std::is_copy_assignable_v<Credentials>);
static_assert(std::is_nothrow_move_constructible_v<Credentials>);

TEST(SigV4Test, MovedCredentialsSignTheSame) {
  const auto time = *ParseAmzDate("20130524T000000Z");
  const Request request{"GET",
                        "/bucket/key",
                        {},
                        {{"host", "h"}, {"x-amz-date", "20130524T000000Z"}},
                        std::string(kEmptyPayloadSha256)};
  Credentials original{"AKIDEXAMPLE", Secret::FromView("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")};
  const std::string before = Authorization(request, original, time, "us-east-1", "s3");
  EXPECT_EQ(original.secret_access_key.Reveal(), "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");

  const Credentials moved = std::move(original);
  EXPECT_TRUE(original.secret_access_key.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(Authorization(request, moved, time, "us-east-1", "s3"), before);
}

}  // namespace
}  // namespace kindling::storage::sigv4
