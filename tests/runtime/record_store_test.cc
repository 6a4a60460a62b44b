#include "runtime/canary/record_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "testutil/sparse_image.h"
#include "testutil/temp_dir.h"

namespace kindling::canary {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class RecordStoreTest : public ::testing::Test {
 protected:
  std::filesystem::path dir() const { return temp_ / "canary"; }
  testutil::TempDir temp_;
};

TEST_F(RecordStoreTest, AddAssignsSequentialIdsAndVerifiesIntact) {
  auto store = RecordStore::Open(dir());
  ASSERT_TRUE(store) << store.error().message();
  for (std::uint64_t expected = 1; expected <= 3; ++expected) {
    auto id = store->Add("record " + std::to_string(expected));
    ASSERT_TRUE(id) << id.error().message();
    EXPECT_EQ(*id, expected);
  }
  auto report = store->Verify();
  ASSERT_TRUE(report);
  EXPECT_EQ(*report, (VerifyReport{.records = 3, .intact = 3, .damaged = {}}));
  EXPECT_THAT(testutil::ListDir(dir()),
              ElementsAre("0000000000000001.rec", "0000000000000002.rec", "0000000000000003.rec"));
}

TEST_F(RecordStoreTest, ReopenContinuesAfterTheHighestIdAndDropsTempFiles) {
  {
    auto store = RecordStore::Open(dir());
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->Add("a"));
    ASSERT_TRUE(store->Add("b"));
  }
  // What a crash between create and rename leaves behind.
  testutil::WriteFile(dir() / ".tmp-3", "half a record");
  auto store = RecordStore::Open(dir());
  ASSERT_TRUE(store);
  auto id = store->Add("c");
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, 3u);
  EXPECT_THAT(testutil::ListDir(dir()),
              ElementsAre("0000000000000001.rec", "0000000000000002.rec", "0000000000000003.rec"));
}

TEST_F(RecordStoreTest, EmptyAndBinaryBodiesRoundTrip) {
  const std::string binary = testutil::RandomData(70'000, 7) + std::string("\0\n\r", 3);
  for (const std::string& body : {std::string(), binary}) {
    auto decoded = DecodeRecord(EncodeRecord(body));
    ASSERT_TRUE(decoded) << decoded.error().message();
    EXPECT_TRUE(*decoded == body);
  }
}

TEST_F(RecordStoreTest, VerifyNamesEveryKindOfDamage) {
  auto store = RecordStore::Open(dir());
  ASSERT_TRUE(store);
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(store->Add("body number " + std::to_string(i)));
  // 2: a flipped body byte; 3: truncated; 4: header gone; 5 untouched.
  std::string two = testutil::ReadFileOrDie(dir() / RecordFileName(2));
  two.back() ^= 0x01;
  testutil::WriteFile(dir() / RecordFileName(2), two);
  const std::string three = testutil::ReadFileOrDie(dir() / RecordFileName(3));
  testutil::WriteFile(dir() / RecordFileName(3), three.substr(0, three.size() - 1));
  testutil::WriteFile(dir() / RecordFileName(4), "");
  auto report = store->Verify();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->records, 5u);
  EXPECT_EQ(report->intact, 2u);
  EXPECT_THAT(report->damaged, ElementsAre(2, 3, 4));
}

TEST_F(RecordStoreTest, DecodeRejectsMalformedHeaders) {
  const std::string good = EncodeRecord("payload");
  EXPECT_TRUE(DecodeRecord(good));
  for (const std::string& bad :
       {std::string("payload"), std::string("kindling-canary-record v1 sha256=00 size=7\npayload"),
        good.substr(0, good.find('\n')),  // no body separator
        std::string("kindling-canary-record v1 sha256=x size=-1\n")}) {
    auto decoded = DecodeRecord(bad);
    ASSERT_FALSE(decoded) << bad;
    EXPECT_TRUE(decoded.error().is_corruption());
  }
}

TEST_F(RecordStoreTest, VerifyOfAMissingDirectoryFindsNoRecords) {
  auto report = VerifyRecordDir(temp_ / "never-made");
  ASSERT_TRUE(report);
  EXPECT_EQ(report->records, 0u);
  EXPECT_THAT(report->damaged, IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(temp_ / "never-made"));
}

TEST_F(RecordStoreTest, OtherFilesAreNotRecords) {
  auto store = RecordStore::Open(dir());
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->Add("x"));
  testutil::WriteFile(dir() / "notes.txt", "not a record");
  testutil::WriteFile(dir() / "12.rec", "short name");
  auto report = store->Verify();
  ASSERT_TRUE(report);
  EXPECT_EQ(*report, (VerifyReport{.records = 1, .intact = 1, .damaged = {}}));
}

}  // namespace
}  // namespace kindling::canary
