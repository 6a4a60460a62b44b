#include "storage/store_url.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <utility>

#include "testutil/require.h"
#include "testutil/s3_test_server.h"
#include "testutil/temp_dir.h"

namespace kindling::storage {
namespace {

TEST(ParseStoreUrlTest, FileUrl) {
  auto url = ParseStoreUrl("file:///var/lib/kindling/store");
  ASSERT_TRUE(url) << url.error().message();
  EXPECT_EQ(url->scheme, StoreUrl::Scheme::kFile);
  EXPECT_EQ(url->path, "/var/lib/kindling/store");
}

TEST(ParseStoreUrlTest, S3UrlWithAndWithoutPrefix) {
  auto bare = ParseStoreUrl("s3://my-bucket");
  ASSERT_TRUE(bare) << bare.error().message();
  EXPECT_EQ(bare->scheme, StoreUrl::Scheme::kS3);
  EXPECT_EQ(bare->bucket, "my-bucket");
  EXPECT_EQ(bare->prefix, "");

  auto with_slash = ParseStoreUrl("s3://my-bucket/");
  ASSERT_TRUE(with_slash);
  EXPECT_EQ(with_slash->bucket, "my-bucket");
  EXPECT_EQ(with_slash->prefix, "");

  auto prefixed = ParseStoreUrl("s3://my-bucket/backups/host-1/");
  ASSERT_TRUE(prefixed);
  EXPECT_EQ(prefixed->bucket, "my-bucket");
  EXPECT_EQ(prefixed->prefix, "backups/host-1");
}

TEST(ParseStoreUrlTest, BadUrlsAreInvalidArgument) {
  for (const char* url : {"", "/plain/path", "file://relative/dir", "file://", "s3://", "s3:///x",
                          "http://host/bucket", "S3://bucket", "s3://bucket/../up",
                          "s3://bucket/a//b", "s3://bucket/sp ace"}) {
    auto parsed = ParseStoreUrl(url);
    ASSERT_FALSE(parsed) << url;
    EXPECT_EQ(parsed.error().kind(), ErrorKind::kInvalidArgument) << url;
  }
}

TEST(OpenStoreTest, FileUrlOpensALocalStoreThatRoundTrips) {
  testutil::TempDir dir;
  const std::string root = (dir.path() / "store").string();
  auto store = OpenStore("file://" + root, StoreOptions{});
  ASSERT_TRUE(store) << store.error().message();
  ASSERT_TRUE((*store)->Put("a/b", "data"));
  EXPECT_EQ((*store)->Get("a/b").value_or(""), "data");
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "store/a/b"));
  EXPECT_EQ((*store)->Describe(), "file://" + root);
}

TEST(OpenStoreTest, AFileUrlStoresBatchIsTheLocalStores) {
  testutil::TempDir dir;
  auto store = OpenStore("file://" + (dir.path() / "store").string(), StoreOptions{});
  ASSERT_TRUE(store) << store.error().message();
  auto batch = (*store)->NewBatch();
  ASSERT_TRUE(batch) << batch.error().message();
  ASSERT_TRUE((*batch)->Put("a/b", "data"));
  EXPECT_TRUE((*store)->Get("a/b").error().is_not_found());  // staged until the commit
  ASSERT_TRUE((*batch)->Commit());
  EXPECT_EQ((*store)->Get("a/b").value_or(""), "data");
}

TEST(OpenStoreTest, BadUrlOrMissingCredentialsAreInvalidArgument) {
  auto bad = OpenStore("ftp://x", StoreOptions{});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind(), ErrorKind::kInvalidArgument);

  StoreOptions no_credentials;
  no_credentials.s3_endpoint = "http://127.0.0.1:9";
  auto s3 = OpenStore("s3://bucket", no_credentials);
  ASSERT_FALSE(s3);
  EXPECT_EQ(s3.error().kind(), ErrorKind::kInvalidArgument);
}

TEST(OpenStoreTest, S3UrlAppliesThePrefix) {
  KINDLING_REQUIRE_S3_TEST_SERVER();
  testutil::S3TestServer server;
  StoreOptions options;
  options.s3_endpoint = server.endpoint();
  options.access_key_id = server.options().access_key_id;
  options.secret_access_key = Secret::FromView(server.options().secret_access_key);
  auto store = OpenStore("s3://bucket/backups/host-1", options);
  // The store took its own copy: the options keep theirs.
  EXPECT_EQ(options.secret_access_key.Reveal(), server.options().secret_access_key);
  ASSERT_TRUE(store) << store.error().message();
  ASSERT_TRUE((*store)->Put("chunks/x", "payload"));
  EXPECT_EQ((*store)->Get("chunks/x").value_or(""), "payload");
  auto listed = (*store)->List("");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].key, "chunks/x");

  // The same object, seen from the bucket root.
  S3Config config;
  config.bucket = "bucket";
  config.endpoint = server.endpoint();
  config.access_key_id = options.access_key_id;
  config.secret_access_key = options.secret_access_key.Clone();
  auto root = S3Store::Open(std::move(config));
  ASSERT_TRUE(root);
  EXPECT_EQ((*root)->Get("backups/host-1/chunks/x").value_or(""), "payload");
  EXPECT_EQ((*store)->Describe().find(options.secret_access_key.Reveal()), std::string::npos);
}

TEST(StoreOptionsTest, FillFromEnvironmentFillsOnlyEmptyFields) {
  ::setenv("AWS_ENDPOINT_URL", "http://generic:9000", 1);
  ::setenv("AWS_ENDPOINT_URL_S3", "http://s3-specific:9000", 1);
  ::setenv("AWS_REGION", "eu-central-1", 1);
  ::setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
  ::setenv("AWS_SESSION_TOKEN", "env-token", 1);
  StoreOptions options;
  options.access_key_id = "EXPLICIT";
  options.FillFromEnvironment();
  EXPECT_EQ(options.s3_endpoint, "http://s3-specific:9000");
  EXPECT_EQ(options.s3_region, "eu-central-1");
  EXPECT_EQ(options.access_key_id, "EXPLICIT");
  EXPECT_EQ(options.secret_access_key.Reveal(), "env-secret");
  EXPECT_EQ(options.session_token, "env-token");

  StoreOptions explicit_secret;
  explicit_secret.secret_access_key = Secret::FromView("explicit-secret");
  explicit_secret.FillFromEnvironment();
  EXPECT_EQ(explicit_secret.secret_access_key.Reveal(), "explicit-secret");
  EXPECT_EQ(explicit_secret.access_key_id, "ENVKEY");
  for (const char* name : {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
                           "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})
    ::unsetenv(name);

  StoreOptions unset;
  unset.FillFromEnvironment();
  EXPECT_TRUE(unset.secret_access_key.empty());
}

}  // namespace
}  // namespace kindling::storage
