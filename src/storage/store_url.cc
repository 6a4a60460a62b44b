#include "storage/store_url.h"

#include <cstdlib>
#include <vector>

#include "storage/local_store.h"
#include "storage/prefixed_store.h"

namespace kindling::storage {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

void FillIfEmpty(std::string& field, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (!field.empty()) return;
    field = Env(name);
  }
}

void FillIfEmpty(Secret& field, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (!field.empty()) return;
    if (const char* value = std::getenv(name)) field = Secret::FromView(value);
  }
}

// Owns a chain of stores (base first) and forwards to the outermost one.
class StoreChain final : public ObjectStoreWrapper {
 public:
  explicit StoreChain(std::vector<std::unique_ptr<ObjectStore>> chain)
      : ObjectStoreWrapper(*chain.back()), chain_(std::move(chain)) {}
  Result<std::unique_ptr<PutBatch>> NewBatch() override { return base().NewBatch(); }

 private:
  std::vector<std::unique_ptr<ObjectStore>> chain_;
};

}  // namespace

void StoreOptions::FillFromEnvironment() {
  FillIfEmpty(s3_endpoint, {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"});
  FillIfEmpty(s3_region, {"AWS_REGION", "AWS_DEFAULT_REGION"});
  FillIfEmpty(access_key_id, {"AWS_ACCESS_KEY_ID"});
  FillIfEmpty(secret_access_key, {"AWS_SECRET_ACCESS_KEY"});
  FillIfEmpty(session_token, {"AWS_SESSION_TOKEN"});
}

Result<StoreUrl> ParseStoreUrl(std::string_view url) {
  StoreUrl out;
  if (url.starts_with("file://")) {
    out.scheme = StoreUrl::Scheme::kFile;
    out.path = std::string(url.substr(7));
    if (out.path.empty() || out.path.front() != '/')
      return InvalidArgument("store URL must be file:///absolute/path, got: " + std::string(url));
    return out;
  }
  if (url.starts_with("s3://")) {
    out.scheme = StoreUrl::Scheme::kS3;
    std::string_view rest = url.substr(5);
    while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    const auto slash = rest.find('/');
    out.bucket = std::string(rest.substr(0, slash));
    if (slash != std::string_view::npos) out.prefix = std::string(rest.substr(slash + 1));
    if (out.bucket.empty()) return InvalidArgument("store URL has no bucket: " + std::string(url));
    if (!out.prefix.empty() && !IsValidObjectKey(out.prefix))
      return InvalidArgument("store URL has an invalid prefix: " + std::string(url));
    return out;
  }
  return InvalidArgument("store URL must start with file:// or s3://, got: " + std::string(url));
}

Result<std::unique_ptr<ObjectStore>> OpenStore(std::string_view url, const StoreOptions& options) {
  KINDLING_ASSIGN_OR_RETURN(StoreUrl parsed, ParseStoreUrl(url));
  std::vector<std::unique_ptr<ObjectStore>> chain;
  if (parsed.scheme == StoreUrl::Scheme::kFile) {
    KINDLING_ASSIGN_OR_RETURN(auto local, LocalStore::Open(parsed.path));
    chain.push_back(std::move(local));
    return std::make_unique<StoreChain>(std::move(chain));
  }
  S3Config config;
  config.bucket = parsed.bucket;
  config.endpoint = options.s3_endpoint;
  if (!options.s3_region.empty()) config.region = options.s3_region;
  config.access_key_id = options.access_key_id;
  config.secret_access_key = options.secret_access_key.Clone();  // the store's own copy
  config.session_token = options.session_token;
  config.max_connections = options.max_connections;
  KINDLING_ASSIGN_OR_RETURN(auto s3, S3Store::Open(std::move(config)));
  chain.push_back(std::move(s3));
  chain.push_back(std::make_unique<RetryingStore>(*chain.back(), options.retry));
  if (!parsed.prefix.empty())
    chain.push_back(std::make_unique<PrefixedStore>(*chain.back(), parsed.prefix));
  return std::make_unique<StoreChain>(std::move(chain));
}

}  // namespace kindling::storage
