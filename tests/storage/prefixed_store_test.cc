#include "storage/prefixed_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "storage/local_store.h"
#include "testutil/temp_dir.h"

namespace kindling::storage {
namespace {

std::vector<std::string> Keys(const std::vector<ObjectInfo>& objects) {
  std::vector<std::string> keys;
  for (const auto& object : objects) keys.push_back(object.key);
  return keys;
}

class PrefixedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto local = LocalStore::Open(dir_.path());
    ASSERT_TRUE(local) << local.error().message();
    base_ = std::move(*local);
  }

  testutil::TempDir dir_;
  std::unique_ptr<LocalStore> base_;
};

TEST_F(PrefixedStoreTest, PutsEveryKeyUnderThePrefix) {
  PrefixedStore store(*base_, "tenant/one");
  ASSERT_TRUE(store.Put("chunks/a", "data"));
  EXPECT_EQ(base_->Get("tenant/one/chunks/a").value_or(""), "data");
  EXPECT_EQ(store.Get("chunks/a").value_or(""), "data");
  EXPECT_EQ(store.Head("chunks/a").value_or(0), 4u);
  ASSERT_TRUE(store.Delete("chunks/a"));
  EXPECT_TRUE(base_->Get("tenant/one/chunks/a").error().is_not_found());
}

TEST_F(PrefixedStoreTest, ListSeesOnlyItsOwnKeysWithThePrefixStripped) {
  PrefixedStore store(*base_, "pre");
  ASSERT_TRUE(store.Put("a", "1"));
  ASSERT_TRUE(store.Put("dir/b", "22"));
  ASSERT_TRUE(base_->Put("other/c", "x"));
  ASSERT_TRUE(base_->Put("pre2/d", "x"));  // shares the letters, not the prefix
  ASSERT_TRUE(base_->Put("prefix-like", "x"));

  auto all = store.List("");
  ASSERT_TRUE(all);
  EXPECT_EQ(Keys(*all), (std::vector<std::string>{"a", "dir/b"}));
  EXPECT_EQ((*all)[1].size, 2u);
  auto dir = store.List("dir/");
  ASSERT_TRUE(dir);
  EXPECT_EQ(Keys(*dir), (std::vector<std::string>{"dir/b"}));
}

TEST_F(PrefixedStoreTest, MissingKeysStayNotFound) {
  PrefixedStore store(*base_, "pre");
  ASSERT_TRUE(base_->Put("k", "outside the prefix"));
  auto get = store.Get("k");
  ASSERT_FALSE(get);
  EXPECT_TRUE(get.error().is_not_found());
}

TEST_F(PrefixedStoreTest, EmptyPrefixIsTransparent) {
  PrefixedStore store(*base_, "");
  ASSERT_TRUE(store.Put("k", "v"));
  EXPECT_EQ(base_->Get("k").value_or(""), "v");
  EXPECT_EQ(Keys(store.List("").value()), (std::vector<std::string>{"k"}));
  EXPECT_EQ(store.Describe(), base_->Describe());
}

TEST_F(PrefixedStoreTest, DescribeAppendsThePrefix) {
  PrefixedStore store(*base_, "a/b");
  EXPECT_EQ(store.Describe(), base_->Describe() + ", prefix a/b");
}

TEST_F(PrefixedStoreTest, ABatchPutsUnderThePrefixThroughTheBasesBatch) {
  PrefixedStore store(*base_, "tenant/one");
  auto batch = store.NewBatch();
  ASSERT_TRUE(batch) << batch.error().message();
  ASSERT_TRUE((*batch)->Put("chunks/a", "data"));
  // The local store's batch: nothing visible before the commit.
  EXPECT_TRUE(base_->Get("tenant/one/chunks/a").error().is_not_found());
  ASSERT_TRUE((*batch)->Commit());
  EXPECT_EQ(base_->Get("tenant/one/chunks/a").value_or(""), "data");
  EXPECT_EQ(store.Get("chunks/a").value_or(""), "data");
}

}  // namespace
}  // namespace kindling::storage
