// Preconditions a test needs from the machine (a tool, an npm package, root).
//
// KINDLING_REQUIRE(condition, what) in a test body or SetUp: when the
// condition does not hold, the test is skipped on a developer's machine, and
// fails under CI (environment CI=true), where scripts/install-deps.sh
// provides everything and a skip would let the test pass unchecked.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string_view>

namespace kindling::testutil {

inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

// tests/s3/node_modules holds the S3 test server (npm ci in tests/s3).
inline bool S3TestServerInstalled() {
  return std::filesystem::exists(std::filesystem::path(KINDLING_SOURCE_DIR) /
                                 "tests/s3/node_modules/@20minutes/s3rver");
}

}  // namespace kindling::testutil

#define KINDLING_REQUIRE(condition, what)                                              \
  if (!(condition)) {                                                                  \
    if (::kindling::testutil::InCi()) {                                                \
      FAIL() << (what) << " is missing, and CI=true (run scripts/install-deps.sh)";    \
    } else {                                                                           \
      GTEST_SKIP() << (what) << " is missing (run scripts/install-deps.sh); skipping"; \
    }                                                                                  \
  }

#define KINDLING_REQUIRE_S3_TEST_SERVER() \
  KINDLING_REQUIRE(::kindling::testutil::S3TestServerInstalled(), "tests/s3/node_modules")
