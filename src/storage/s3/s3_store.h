// S3Store: an ObjectStore on any S3-compatible service (AWS S3, MinIO, Ceph RGW,
// the s3rver test server). Path-style addressing when an endpoint is given,
// AWS Signature Version 4 on every request, libcurl with a pool of reusable
// connections so that concurrent callers transfer in parallel.
//
// Thread-safe. Memory: at most one object body per in-flight call plus one part
// (multipart) buffer; objects above `multipart_threshold` go up in parts.
// Errors: 5xx, 429, timeouts and connection resets are kTransient (the caller's
// RetryingStore retries them); 403 is kPermissionDenied; 404 is kNotFound.
// The secret access key is a Secret (wiped with the config, and with the store
// that took it over), revealed only to sign requests and to mask it out of
// error messages.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "common/secret.h"
#include "storage/object_store.h"

namespace kindling::storage {

// Move-only because of the secret key: Clone() makes an explicit copy. A
// moved-from config holds an empty secret.
struct S3Config {
  std::string bucket;
  std::string region = "us-east-1";
  // "http(s)://host[:port]" for path-style access to a compatible service;
  // empty means AWS itself: https://s3.<region>.amazonaws.com, path-style.
  std::string endpoint;
  std::string access_key_id;  // not secret: S3 sends it with every request
  Secret secret_access_key;   // wiped with the config; the store keeps its own
  std::string session_token;  // optional (AWS_SESSION_TOKEN)
  std::size_t max_connections = 16;
  std::size_t multipart_threshold = 64u << 20;
  std::size_t multipart_part_size = 16u << 20;  // >= 5 MiB except in tests
  long connect_timeout_ms = 10'000;
  long request_timeout_ms = 300'000;

  // A copy of every field, the secret included (keep it in step with them).
  S3Config Clone() const;
};

class S3Store final : public ObjectStore {
 public:
  // kInvalidArgument for a malformed config (no bucket, bad endpoint, missing
  // credentials). Does not contact the service.
  [[nodiscard]] static Result<std::unique_ptr<S3Store>> Open(S3Config config);
  ~S3Store() override;

  Status Put(std::string_view key, std::string_view data) override;
  // A HEAD, then a PUT with If-None-Match: * (412 is kAlreadyExists). Atomic
  // on services that honour the header; on those that ignore it (the s3rver
  // test server), two creators racing between HEAD and PUT both succeed and
  // the later body wins. Objects above multipart_threshold are refused.
  Status PutIfAbsent(std::string_view key, std::string_view data) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::uint64_t> Head(std::string_view key) override;
  Status Delete(std::string_view key) override;
  Result<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  std::string Describe() const override;

 private:
  struct Impl;
  explicit S3Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kindling::storage
