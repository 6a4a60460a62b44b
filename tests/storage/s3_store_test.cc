// S3Store against a real S3 server that verifies SigV4 (s3rver, started by
// S3TestServer in a temp dir on a free port), with and without injected faults.
#include "storage/s3/s3_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "storage/retrying_store.h"
#include "testutil/require.h"
#include "testutil/s3_test_server.h"

namespace kindling::storage {
namespace {

using testutil::S3TestServer;
using testutil::S3TestServerOptions;

// The one reason to skip: the npm packages of tests/s3 were never installed.
// (CI installs them, so there the S3 tests always run.)
#define SKIP_WITHOUT_S3_SERVER() KINDLING_REQUIRE_S3_TEST_SERVER()

S3Config ConfigFor(const S3TestServer& server) {
  S3Config config;
  config.bucket = server.options().bucket;
  config.endpoint = server.endpoint();
  config.access_key_id = server.options().access_key_id;
  config.secret_access_key = Secret::FromView(server.options().secret_access_key);
  config.connect_timeout_ms = 5'000;
  config.request_timeout_ms = 60'000;
  return config;
}

std::unique_ptr<S3Store> OpenOrDie(S3Config config) {
  auto store = S3Store::Open(std::move(config));
  if (!store) throw std::runtime_error(store.error().message());
  return std::move(*store);
}

// Deterministic pseudo-random bytes.
std::string RandomBytes(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t word = rng();
    for (std::size_t j = 0; j < 8 && i + j < size; ++j)
      out[i + j] = static_cast<char>((word >> (8 * j)) & 0xFF);
  }
  return out;
}

std::string KeyName(const char* prefix, int i) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%s%05d", prefix, i);
  return buffer;
}

std::vector<std::string> Keys(const std::vector<ObjectInfo>& objects) {
  std::vector<std::string> keys;
  for (const auto& object : objects) keys.push_back(object.key);
  return keys;
}

class S3StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_S3_SERVER();
    server_ = std::make_unique<S3TestServer>();
    store_ = OpenOrDie(ConfigFor(*server_));
  }

  std::unique_ptr<S3TestServer> server_;
  std::unique_ptr<S3Store> store_;
};

TEST_F(S3StoreTest, PutGetHeadDelete) {
  ASSERT_TRUE(store_->Put("dir/sub/object", "hello world"));
  auto data = store_->Get("dir/sub/object");
  ASSERT_TRUE(data) << data.error().message();
  EXPECT_EQ(*data, "hello world");
  auto size = store_->Head("dir/sub/object");
  ASSERT_TRUE(size) << size.error().message();
  EXPECT_EQ(*size, 11u);

  ASSERT_TRUE(store_->Delete("dir/sub/object"));
  auto gone = store_->Get("dir/sub/object");
  ASSERT_FALSE(gone);
  EXPECT_TRUE(gone.error().is_not_found()) << gone.error().message();
  // Deleting what is not there succeeds, as the contract says.
  EXPECT_TRUE(store_->Delete("dir/sub/object"));
}

TEST_F(S3StoreTest, PutOverwritesAndKeepsBinaryAndEmptyObjects) {
  std::string binary;
  for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
  binary += std::string(1000, '\0');
  ASSERT_TRUE(store_->Put("binary", "first version"));
  ASSERT_TRUE(store_->Put("binary", binary));
  EXPECT_EQ(store_->Get("binary").value_or("<error>"), binary);
  EXPECT_EQ(store_->Head("binary").value_or(0), binary.size());

  ASSERT_TRUE(store_->Put("empty", ""));
  EXPECT_EQ(store_->Get("empty").value_or("<error>"), "");
  EXPECT_EQ(store_->Head("empty").value_or(99), 0u);
}

TEST_F(S3StoreTest, MissingKeyIsNotFound) {
  auto get = store_->Get("no/such/key");
  ASSERT_FALSE(get);
  EXPECT_EQ(get.error().kind(), ErrorKind::kNotFound) << get.error().message();
  auto head = store_->Head("no/such/key");
  ASSERT_FALSE(head);
  EXPECT_EQ(head.error().kind(), ErrorKind::kNotFound) << head.error().message();
}

TEST_F(S3StoreTest, InvalidKeysAreRejectedBeforeAnyRequest) {
  for (const char* key : {"", "/abs", "a/../b", "a//b", "trailing/", "sp ace"}) {
    auto status = store_->Put(key, "x");
    ASSERT_FALSE(status) << key;
    EXPECT_EQ(status.error().kind(), ErrorKind::kInvalidArgument) << key;
  }
  auto list = store_->List("bad prefix");
  ASSERT_FALSE(list);
  EXPECT_EQ(list.error().kind(), ErrorKind::kInvalidArgument);
}

TEST_F(S3StoreTest, ListsByPrefixInLexicalOrder) {
  // Mixed depths on purpose: s3rver walks directories, which is not lexical
  // order ("p/a" < "p-b" < "p/z" is false for a walk); the store sorts.
  for (const char* key : {"p/z", "p/a", "p-b", "p/sub/c", "q/c", "p2/x"})
    ASSERT_TRUE(store_->Put(key, key));

  auto all = store_->List("");
  ASSERT_TRUE(all) << all.error().message();
  EXPECT_EQ(Keys(*all), (std::vector<std::string>{"p-b", "p/a", "p/sub/c", "p/z", "p2/x", "q/c"}));

  auto under_p = store_->List("p/");
  ASSERT_TRUE(under_p) << under_p.error().message();
  EXPECT_EQ(Keys(*under_p), (std::vector<std::string>{"p/a", "p/sub/c", "p/z"}));
  EXPECT_EQ((*under_p)[0].size, 3u);

  auto starting_with_p = store_->List("p");
  ASSERT_TRUE(starting_with_p);
  EXPECT_EQ(starting_with_p->size(), 5u);

  auto none = store_->List("nothing/");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(S3StoreTest, ListPaginatesPastOneThousandKeys) {
  constexpr int kKeys = 1100;
  std::atomic<int> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < kKeys; i = next++) {
        if (!store_->Put(KeyName("many/k-", i), std::to_string(i))) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_TRUE(store_->Put("other/x", "x"));

  auto listed = store_->List("many/");
  ASSERT_TRUE(listed) << listed.error().message();
  ASSERT_EQ(listed->size(), static_cast<std::size_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ((*listed)[i].key, KeyName("many/k-", i));
    EXPECT_EQ((*listed)[i].size, std::to_string(i).size());
  }
  auto everything = store_->List("");
  ASSERT_TRUE(everything);
  EXPECT_EQ(everything->size(), static_cast<std::size_t>(kKeys + 1));
}

TEST_F(S3StoreTest, WrongSecretIsPermissionDeniedAndNeverShown) {
  S3Config config = ConfigFor(*server_);
  config.secret_access_key = Secret::FromView("wrong-secret-Zq8v");
  auto store = OpenOrDie(std::move(config));

  auto put = store->Put("key", "data");
  ASSERT_FALSE(put);
  auto get = store->Get("key");
  ASSERT_FALSE(get);
  auto head = store->Head("key");
  ASSERT_FALSE(head);
  auto list = store->List("");
  ASSERT_FALSE(list);
  for (const Error& error : {put.error(), get.error(), head.error(), list.error()}) {
    EXPECT_EQ(error.kind(), ErrorKind::kPermissionDenied) << error.message();
    EXPECT_FALSE(error.retryable());
    EXPECT_NE(error.message().find("signature"), std::string::npos) << error.message();
    EXPECT_EQ(error.message().find("wrong-secret-Zq8v"), std::string::npos) << error.message();
    EXPECT_EQ(error.message().find("my-secret"), std::string::npos) << error.message();
  }
  EXPECT_EQ(store->Describe().find("wrong-secret"), std::string::npos);
}

TEST_F(S3StoreTest, UnknownAccessKeyIsPermissionDenied) {
  S3Config config = ConfigFor(*server_);
  config.access_key_id = "NOSUCHKEY";
  auto store = OpenOrDie(std::move(config));
  auto get = store->Get("key");
  ASSERT_FALSE(get);
  EXPECT_EQ(get.error().kind(), ErrorKind::kPermissionDenied) << get.error().message();
  EXPECT_EQ(get.error().message().find("my-secret"), std::string::npos);
}

TEST_F(S3StoreTest, MissingBucketIsAConfigurationError) {
  S3Config config = ConfigFor(*server_);
  config.bucket = "no-such-bucket";
  auto store = OpenOrDie(std::move(config));
  auto get = store->Get("key");
  ASSERT_FALSE(get);
  EXPECT_EQ(get.error().kind(), ErrorKind::kInvalidArgument) << get.error().message();
  EXPECT_NE(get.error().message().find("NoSuchBucket"), std::string::npos);
}

TEST_F(S3StoreTest, MultipartUploadRoundTripsBitIdentical) {
  S3Config config = ConfigFor(*server_);
  config.multipart_threshold = 6u << 20;
  config.multipart_part_size = 5u << 20;
  auto store = OpenOrDie(std::move(config));
  const std::string data = RandomBytes((13u << 20) + 12345, 42);

  ASSERT_TRUE(store->Put("big/object", data));
  auto back = store->Get("big/object");
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->size(), data.size());
  EXPECT_TRUE(*back == data);
  EXPECT_EQ(store->Head("big/object").value_or(0), data.size());
  auto listed = store->List("big/");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].size, data.size());

  // Just above the threshold: one full part and a small last one.
  const std::string small = RandomBytes((6u << 20) + 1, 7);
  ASSERT_TRUE(store->Put("big/small", small));
  EXPECT_TRUE(store->Get("big/small").value_or("") == small);
}

TEST_F(S3StoreTest, ConcurrentPutsFromEightThreads) {
  S3Config config = ConfigFor(*server_);
  config.max_connections = 4;  // fewer handles than threads: callers wait for one
  auto store = OpenOrDie(std::move(config));
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        if (!store->Put(key, RandomBytes(1000 + 977 * i, t * 100 + i))) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
      auto data = store->Get(key);
      ASSERT_TRUE(data) << key << ": " << data.error().message();
      EXPECT_TRUE(*data == RandomBytes(1000 + 977 * i, t * 100 + i)) << key;
    }
  }
}

TEST_F(S3StoreTest, DescribeNamesBucketAndEndpointOnly) {
  EXPECT_EQ(store_->Describe(), "s3://bucket (" + server_->endpoint() + ")");
  EXPECT_EQ(store_->Describe().find("my-secret"), std::string::npos);
}

// s3rver ignores If-None-Match on PUT, so the HEAD before the conditional
// PUT is what refuses here; services that honour the header refuse at the
// PUT itself (412, mapped to kAlreadyExists).
TEST_F(S3StoreTest, PutIfAbsentNeverReplaces) {
  ASSERT_TRUE(store_->PutIfAbsent("kindling-store/config", "first"));
  auto again = store_->PutIfAbsent("kindling-store/config", "second");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kAlreadyExists) << again.error().message();
  EXPECT_EQ(*store_->Get("kindling-store/config"), "first");
}

TEST(S3StoreOpenTest, RejectsMalformedConfig) {
  S3Config good;
  good.bucket = "bucket";
  good.endpoint = "http://127.0.0.1:9000";
  good.access_key_id = "id";
  good.secret_access_key = Secret::FromView("super-secret-value");
  ASSERT_TRUE(S3Store::Open(good.Clone()));

  auto expect_invalid = [](S3Config config) {
    auto store = S3Store::Open(std::move(config));
    ASSERT_FALSE(store);
    EXPECT_EQ(store.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_EQ(store.error().message().find("super-secret-value"), std::string::npos);
  };
  S3Config c = good.Clone();
  c.bucket = "";
  expect_invalid(std::move(c));
  c = good.Clone();
  c.bucket = "a/b";
  expect_invalid(std::move(c));
  c = good.Clone();
  c.secret_access_key = Secret();
  expect_invalid(std::move(c));
  c = good.Clone();
  c.access_key_id = "";
  expect_invalid(std::move(c));
  for (const char* endpoint : {"ftp://host", "127.0.0.1:9000", "http://", "http://host/path",
                               "http://user:super-secret-value@host", "http://host:port"}) {
    c = good.Clone();
    c.endpoint = endpoint;
    expect_invalid(std::move(c));
  }
  c = good.Clone();
  c.multipart_part_size = 0;
  expect_invalid(std::move(c));
}

// The secret access key is a Secret: a config moves (leaving an empty secret
// behind) and copies only through Clone().
static_assert(!std::is_copy_constructible_v<S3Config>);
static_assert(!std::is_copy_assignable_v<S3Config>);
static_assert(std::is_nothrow_move_constructible_v<S3Config>);

TEST(S3ConfigTest, MovedFromConfigHoldsAnEmptySecret) {
  S3Config config;
  config.access_key_id = "AKIDEXAMPLE";
  config.secret_access_key = Secret::FromView("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  S3Config moved = std::move(config);
  EXPECT_EQ(moved.secret_access_key.Reveal(), "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  EXPECT_TRUE(config.secret_access_key.empty());  // NOLINT(bugprone-use-after-move)

  S3Config assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned.secret_access_key.Reveal(), "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  EXPECT_TRUE(moved.secret_access_key.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(S3ConfigTest, CloneCopiesEveryField) {
  S3Config config;
  config.bucket = "bucket";
  config.region = "eu-west-1";
  config.endpoint = "http://127.0.0.1:9000";
  config.access_key_id = "AKIDEXAMPLE";
  config.secret_access_key = Secret::FromView("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  config.session_token = "token";
  config.max_connections = 3;
  config.multipart_threshold = 7;
  config.multipart_part_size = 5;
  config.connect_timeout_ms = 11;
  config.request_timeout_ms = 13;
  const S3Config copy = config.Clone();
  EXPECT_EQ(copy.bucket, "bucket");
  EXPECT_EQ(copy.region, "eu-west-1");
  EXPECT_EQ(copy.endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(copy.access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(copy.secret_access_key, config.secret_access_key);
  EXPECT_NE(copy.secret_access_key.Reveal().data(), config.secret_access_key.Reveal().data());
  EXPECT_EQ(copy.session_token, "token");
  EXPECT_EQ(copy.max_connections, 3u);
  EXPECT_EQ(copy.multipart_threshold, 7u);
  EXPECT_EQ(copy.multipart_part_size, 5u);
  EXPECT_EQ(copy.connect_timeout_ms, 11);
  EXPECT_EQ(copy.request_timeout_ms, 13);
}

TEST(S3StoreOpenTest, DefaultEndpointIsAwsForTheRegion) {
  S3Config config;
  config.bucket = "my-bucket";
  config.region = "eu-west-1";
  config.access_key_id = "id";
  config.secret_access_key = Secret::FromView("secret");
  auto store = S3Store::Open(std::move(config));
  ASSERT_TRUE(store);
  EXPECT_EQ((*store)->Describe(), "s3://my-bucket (https://s3.eu-west-1.amazonaws.com)");
}

TEST(S3StoreOpenTest, UnreachableEndpointIsTransient) {
  S3Config config;
  config.bucket = "bucket";
  config.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  config.access_key_id = "id";
  config.secret_access_key = Secret::FromView("secret");
  config.connect_timeout_ms = 2'000;
  auto store = S3Store::Open(std::move(config));
  ASSERT_TRUE(store);
  auto get = (*store)->Get("key");
  ASSERT_FALSE(get);
  EXPECT_EQ(get.error().kind(), ErrorKind::kTransient) << get.error().message();
  EXPECT_TRUE(get.error().retryable());
}

TEST(S3StoreFaultTest, RetryingStoreRidesOutInjectedFaults) {
  SKIP_WITHOUT_S3_SERVER();
  S3TestServerOptions options;
  options.fault_rate = 0.3;
  S3TestServer server(options);
  S3Config config = ConfigFor(server);
  config.multipart_threshold = 6u << 20;
  config.multipart_part_size = 5u << 20;
  auto s3 = OpenOrDie(std::move(config));
  RetryPolicy policy;
  policy.max_attempts = 12;
  policy.initial_backoff = std::chrono::milliseconds(1);
  policy.max_backoff = std::chrono::milliseconds(5);
  std::atomic<int> sleeps{0};
  RetryingStore store(*s3, policy, [&](std::chrono::milliseconds) { ++sleeps; });

  constexpr int kObjects = 200;
  for (int i = 0; i < kObjects; ++i) {
    auto status = store.Put(KeyName("f/", i), RandomBytes(100 + 37 * i, i));
    ASSERT_TRUE(status) << i << ": " << status.error().message();
  }
  for (int i = 0; i < kObjects; ++i) {
    auto data = store.Get(KeyName("f/", i));
    ASSERT_TRUE(data) << i << ": " << data.error().message();
    EXPECT_TRUE(*data == RandomBytes(100 + 37 * i, i)) << i;
  }
  auto listed = store.List("f/");
  ASSERT_TRUE(listed) << listed.error().message();
  EXPECT_EQ(listed->size(), static_cast<std::size_t>(kObjects));

  // A multipart upload survives failed parts and a lost CompleteMultipartUpload.
  const std::string big = RandomBytes((11u << 20) + 3, 99);
  ASSERT_TRUE(store.Put("f-big", big));
  EXPECT_TRUE(store.Get("f-big").value_or("") == big);

  RecordProperty("faults_injected", server.faults_injected());
  RecordProperty("retries", sleeps.load());
  EXPECT_GT(server.faults_injected(), 0);
  EXPECT_GT(sleeps.load(), 0);
}

}  // namespace
}  // namespace kindling::storage
