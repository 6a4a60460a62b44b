#include "storage/retrying_store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/local_store.h"
#include "testutil/fault_injecting_store.h"
#include "testutil/temp_dir.h"

namespace kindling::storage {
namespace {

using std::chrono::milliseconds;
using testutil::FaultInjectingStore;
using testutil::StoreOp;

class RetryingStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto local = LocalStore::Open(dir_.path());
    ASSERT_TRUE(local) << local.error().message();
    local_ = std::move(*local);
    faults_ = std::make_unique<FaultInjectingStore>(*local_);
    policy_.max_attempts = 5;
    policy_.initial_backoff = milliseconds(100);
    policy_.max_backoff = milliseconds(1000);
    store_ = std::make_unique<RetryingStore>(*faults_, policy_,
                                             [this](milliseconds d) { sleeps_.push_back(d); });
  }

  // Fails the first `n` calls of `op` with `kind`, then lets calls through.
  void FailFirst(StoreOp op, int n, ErrorKind kind) {
    auto remaining = std::make_shared<int>(n);
    faults_->SetRule([=](StoreOp o, std::string_view) -> std::optional<Error> {
      if (o != op || *remaining <= 0) return std::nullopt;
      --*remaining;
      return Error(kind, "injected");
    });
  }

  testutil::TempDir dir_;
  std::unique_ptr<LocalStore> local_;
  std::unique_ptr<FaultInjectingStore> faults_;
  RetryPolicy policy_;
  std::vector<milliseconds> sleeps_;
  std::unique_ptr<RetryingStore> store_;
};

// A wrapper's batch is the default one: each Put goes through the wrapper's
// own Put (here: retried) at once, and Commit has nothing left to do.
TEST_F(RetryingStoreTest, ABatchPutsEachObjectAtOnceThroughTheRetries) {
  FailFirst(StoreOp::kPut, 2, ErrorKind::kTransient);
  auto batch = store_->NewBatch();
  ASSERT_TRUE(batch) << batch.error().message();
  ASSERT_TRUE((*batch)->Put("k", "v"));
  EXPECT_EQ(faults_->calls(StoreOp::kPut), 3);
  EXPECT_EQ(local_->Get("k").value_or(""), "v");
  ASSERT_TRUE((*batch)->Commit());
  EXPECT_EQ(faults_->calls(StoreOp::kPut), 3);
}

TEST_F(RetryingStoreTest, RetriesTransientFailuresUntilSuccess) {
  FailFirst(StoreOp::kPut, 2, ErrorKind::kTransient);
  ASSERT_TRUE(store_->Put("k", "v"));
  EXPECT_EQ(faults_->calls(StoreOp::kPut), 3);
  EXPECT_EQ(sleeps_.size(), 2u);
  EXPECT_EQ(local_->Get("k").value_or(""), "v");

  FailFirst(StoreOp::kGet, 3, ErrorKind::kTransient);
  EXPECT_EQ(store_->Get("k").value_or(""), "v");
  FailFirst(StoreOp::kHead, 1, ErrorKind::kTransient);
  EXPECT_EQ(store_->Head("k").value_or(0), 1u);
  FailFirst(StoreOp::kList, 1, ErrorKind::kTransient);
  EXPECT_EQ(store_->List("").value_or(std::vector<ObjectInfo>{}).size(), 1u);
  FailFirst(StoreOp::kDelete, 1, ErrorKind::kTransient);
  EXPECT_TRUE(store_->Delete("k"));
  EXPECT_EQ(sleeps_.size(), 2u + 3u + 1u + 1u + 1u);
}

TEST_F(RetryingStoreTest, DoesNotRetryNotFound) {
  auto get = store_->Get("missing");
  ASSERT_FALSE(get);
  EXPECT_TRUE(get.error().is_not_found());
  EXPECT_EQ(faults_->calls(StoreOp::kGet), 1);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(RetryingStoreTest, DoesNotRetryPermanentErrors) {
  for (ErrorKind kind : {ErrorKind::kCorruption, ErrorKind::kPermissionDenied,
                         ErrorKind::kInvalidArgument, ErrorKind::kInternal, ErrorKind::kIo}) {
    faults_->FailMatching(StoreOp::kGet, "k", kind);
    const int before = faults_->calls(StoreOp::kGet);
    auto get = store_->Get("k");
    ASSERT_FALSE(get);
    EXPECT_EQ(get.error().kind(), kind);
    EXPECT_EQ(get.error().message(), "injected fault on k");
    EXPECT_EQ(faults_->calls(StoreOp::kGet), before + 1);
  }
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(RetryingStoreTest, GivesUpAfterMaxAttempts) {
  faults_->FailMatching(StoreOp::kPut, "", ErrorKind::kTransient);
  auto put = store_->Put("k", "v");
  ASSERT_FALSE(put);
  EXPECT_TRUE(put.error().retryable());
  EXPECT_NE(put.error().message().find("gave up after 5 attempts"), std::string::npos)
      << put.error().message();
  EXPECT_EQ(faults_->calls(StoreOp::kPut), policy_.max_attempts);
  EXPECT_EQ(sleeps_.size(), static_cast<std::size_t>(policy_.max_attempts - 1));
  EXPECT_FALSE(local_->Get("k"));
}

TEST_F(RetryingStoreTest, BackoffIsExponentialWithFullJitterAndCapped) {
  policy_.max_attempts = 12;
  store_ = std::make_unique<RetryingStore>(*faults_, policy_,
                                           [this](milliseconds d) { sleeps_.push_back(d); });
  faults_->FailMatching(StoreOp::kHead, "", ErrorKind::kTransient);
  ASSERT_FALSE(store_->Head("k"));
  ASSERT_EQ(sleeps_.size(), 11u);
  for (std::size_t i = 0; i < sleeps_.size(); ++i) {
    const auto cap =
        std::min<long long>(policy_.max_backoff.count(), policy_.initial_backoff.count() << i);
    EXPECT_GE(sleeps_[i].count(), 0);
    EXPECT_LE(sleeps_[i].count(), cap) << "attempt " << i;
  }
}

TEST_F(RetryingStoreTest, SingleAttemptPolicyNeverSleeps) {
  policy_.max_attempts = 1;
  store_ = std::make_unique<RetryingStore>(*faults_, policy_,
                                           [this](milliseconds d) { sleeps_.push_back(d); });
  faults_->FailMatching(StoreOp::kPut, "", ErrorKind::kTransient);
  ASSERT_FALSE(store_->Put("k", "v"));
  EXPECT_EQ(faults_->calls(StoreOp::kPut), 1);
  EXPECT_TRUE(sleeps_.empty());
}

}  // namespace
}  // namespace kindling::storage
