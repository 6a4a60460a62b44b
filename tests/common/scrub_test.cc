// ScrubSecrets: every occurrence masked, in one pass; the inputs that made
// the scrubbers it replaced loop forever (a mark that holds the secret, a
// secret that holds the mark); overlaps, short secrets, several secrets.
#include "common/scrub.h"

#include <gtest/gtest.h>

#include <string>

namespace kindling {
namespace {

TEST(ScrubSecretsTest, MasksEveryOccurrence) {
  EXPECT_EQ(ScrubSecrets("key kdl_0123456789 rejected; kdl_0123456789 again", {"kdl_0123456789"}),
            "key [redacted] rejected; [redacted] again");
  EXPECT_EQ(ScrubSecrets("kdl_0123456789kdl_0123456789", {"kdl_0123456789"}, "*"), "**");
  EXPECT_EQ(ScrubSecrets("nothing here", {"kdl_0123456789"}), "nothing here");
  EXPECT_EQ(ScrubSecrets("", {"kdl_0123456789"}), "");
  EXPECT_EQ(ScrubSecrets("abc", {}), "abc");
}

TEST(ScrubSecretsTest, IgnoresEmptyAndShortSecrets) {
  EXPECT_EQ(ScrubSecrets("a key in a box", {"", "a", "key"}), "a key in a box");
  EXPECT_EQ(ScrubSecrets("abcd", {"abcd"}), "[redacted]");  // kMinScrubbedSecretSize
  static_assert(kMinScrubbedSecretSize == 4);
}

// The old API-key scrubber searched on from where it had written its mark:
// a key that the mark "[api key]" holds was found in the mark again, forever.
TEST(ScrubSecretsTest, MarkHoldingTheSecretDoesNotLoop) {
  EXPECT_EQ(ScrubSecrets("Bearer [api key rejected", {"[api key"}, "[api key]"),
            "Bearer [api key] rejected");
  EXPECT_EQ(ScrubSecrets("x api key] y", {"api key]"}, "[api key]"), "x [api key] y");
  EXPECT_EQ(ScrubSecrets("[api key]", {"[api key]"}, "[api key]"), "[api key]");
}

// The old backup-store scrubber replaced a secret with "***" and searched on
// from the same place: a secret "***" (or any that "***" holds) never ended.
TEST(ScrubSecretsTest, SecretEqualToTheMarkDoesNotLoop) {
  EXPECT_EQ(ScrubSecrets("a****b", {"****"}, "***"), "a***b");
  EXPECT_EQ(ScrubSecrets("x ****** y", {"****"}, "****"), "x ****** y");
  EXPECT_EQ(ScrubSecrets("[redacted] [redacted]", {"[redacted]"}), "[redacted] [redacted]");
}

TEST(ScrubSecretsTest, OverlapsAndSeveralSecrets) {
  // Overlapping occurrences of one secret: the first is masked, the rest of
  // it is no longer an occurrence.
  EXPECT_EQ(ScrubSecrets("abababab", {"abab"}, "#"), "##");
  EXPECT_EQ(ScrubSecrets("ababab", {"abab"}, "#"), "#ab");
  // A secret inside a longer one: the longer is masked whole.
  EXPECT_EQ(ScrubSecrets("id AKIAEXAMPLE1 and AKIA0", {"AKIA", "AKIAEXAMPLE1"}, "#"),
            "id # and #0");
  // Two secrets, earliest first.
  EXPECT_EQ(ScrubSecrets("secret=wJalrXUtnFEMI id=AKIAIOSFODNN7",
                         {"AKIAIOSFODNN7", "wJalrXUtnFEMI"}, "***"),
            "secret=*** id=***");
  // Secrets given twice, or one equal to the text.
  EXPECT_EQ(ScrubSecrets("token", {"token", "token"}), "[redacted]");
}

TEST(ScrubSecretsTest, LongTextWithManyOccurrencesIsLinearish) {
  std::string text;
  for (int i = 0; i < 10000; ++i) text += "s3cr3t-value ";
  const std::string out = ScrubSecrets(text, {"s3cr3t-value"}, "*");
  EXPECT_EQ(out.size(), 20000u);
  EXPECT_EQ(out.find("s3cr3t"), std::string::npos);
}

}  // namespace
}  // namespace kindling
