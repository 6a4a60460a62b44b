#include "common/result.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <set>
#include <string>

namespace kindling {
namespace {

class ResultTest : public ::testing::Test {
 protected:
  static Result<int> Parse(int v) {
    if (v < 0) return InvalidArgument("negative");
    return v * 2;
  }
  static Result<int> Twice(int v) {
    KINDLING_ASSIGN_OR_RETURN(int doubled, Parse(v));
    KINDLING_ASSIGN_OR_RETURN(int again, Parse(doubled));
    return again;
  }
  static Status Check(int v) {
    KINDLING_RETURN_IF_ERROR(Parse(v));
    return OkStatus();
  }
};

TEST_F(ResultTest, KindNamesAreDistinct) {
  std::set<std::string_view> names;
  for (ErrorKind kind :
       {ErrorKind::kInvalidArgument, ErrorKind::kNotFound, ErrorKind::kAlreadyExists,
        ErrorKind::kCorruption, ErrorKind::kWrongKey, ErrorKind::kIo, ErrorKind::kTransient,
        ErrorKind::kPermissionDenied, ErrorKind::kFailedPrecondition, ErrorKind::kCancelled,
        ErrorKind::kInternal}) {
    EXPECT_NE(ErrorKindName(kind), "unknown");
    EXPECT_TRUE(names.insert(ErrorKindName(kind)).second) << ErrorKindName(kind);
  }
  EXPECT_EQ(ErrorKindName(ErrorKind::kCorruption), "corruption");
}

TEST_F(ResultTest, OnlyTransientIsRetryable) {
  EXPECT_TRUE(TransientError("x").error().retryable());
  EXPECT_FALSE(IoError("x").error().retryable());
  EXPECT_FALSE(Corruption("x").error().retryable());
  EXPECT_FALSE(NotFound("x").error().retryable());
  EXPECT_TRUE(NotFound("x").error().is_not_found());
  EXPECT_TRUE(Corruption("x").error().is_corruption());
  EXPECT_EQ(Cancelled().error().kind(), ErrorKind::kCancelled);
  EXPECT_EQ(InternalError("x").error().kind(), ErrorKind::kInternal);
}

TEST_F(ResultTest, WithContextKeepsKind) {
  const Error e = Corruption("bad tag").error().WithContext("chunk ab");
  EXPECT_EQ(e.kind(), ErrorKind::kCorruption);
  EXPECT_EQ(e.message(), "chunk ab: bad tag");
}

TEST_F(ResultTest, ErrnoErrorIsIoWithReason) {
  const Error e = ErrnoError("open /x", ENOENT).error();
  EXPECT_EQ(e.kind(), ErrorKind::kIo);
  EXPECT_EQ(e.message(), "open /x: No such file or directory");
}

TEST_F(ResultTest, MacrosPropagateErrors) {
  auto ok = Twice(3);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 12);
  auto bad = Twice(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_TRUE(Check(1));
  EXPECT_FALSE(Check(-1));
}

}  // namespace
}  // namespace kindling
