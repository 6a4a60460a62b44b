// Opening a store from the URL operators type:
//   file:///absolute/dir            a LocalStore
//   s3://bucket[/prefix]            an S3Store (endpoint/region/credentials from
//                                   StoreOptions, which FromEnvironment fills
//                                   from the usual AWS_* variables)
// The returned S3 store retries transient failures and applies the prefix.
// A batch (NewBatch) of either kind of returned store is its base store's
// own: a local store's stages its objects and syncs them at Commit.
// StoreOptions holds the secret access key as a Secret (move-only); the S3
// store opened from it takes its own copy.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/secret.h"
#include "storage/object_store.h"
#include "storage/retrying_store.h"
#include "storage/s3/s3_store.h"

namespace kindling::storage {

struct StoreOptions {
  std::string s3_endpoint;  // AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3
  std::string s3_region;    // AWS_REGION / AWS_DEFAULT_REGION, else us-east-1
  std::string access_key_id;
  Secret secret_access_key;
  std::string session_token;
  std::size_t max_connections = 16;
  RetryPolicy retry;

  // Fills every empty field from the environment.
  void FillFromEnvironment();
};

// A parsed store URL.
struct StoreUrl {
  enum class Scheme { kFile, kS3 } scheme = Scheme::kFile;
  std::string path;    // file: the directory
  std::string bucket;  // s3
  std::string prefix;  // s3: optional, without leading/trailing '/'
};

[[nodiscard]] Result<StoreUrl> ParseStoreUrl(std::string_view url);

// Opens the store a URL names. Does not contact the service.
[[nodiscard]] Result<std::unique_ptr<ObjectStore>> OpenStore(std::string_view url,
                                                             const StoreOptions& options);

}  // namespace kindling::storage
