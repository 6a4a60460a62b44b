#include "storage/s3/s3_store.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "common/scrub.h"
#include "common/secret.h"
#include "crypto/sha256.h"
#include "http/http_client.h"
#include "storage/s3/s3_xml.h"
#include "storage/s3/sigv4.h"

namespace kindling::storage {
namespace {

using http::HttpResponse;

// S3 allows at most 10,000 parts; bigger objects get bigger parts.
constexpr std::size_t kMaxParts = 10'000;
// An UploadPart is retried in place this many times before the whole Put fails
// (and the caller's RetryingStore starts over), so that one dropped connection
// does not cost re-sending every part.
constexpr int kPartAttempts = 3;

bool IsBucketChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool IsPrefixChar(char c) { return IsBucketChar(c) || c == '/'; }

// The endpoint as error messages may show it: without a "user:password@"
// that an operator may have typed into it.
std::string Shown(std::string_view endpoint) {
  const auto at = endpoint.find('@');
  if (at == std::string_view::npos) return std::string(endpoint);
  const auto scheme_end = endpoint.find("://");
  const std::size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  return std::string(endpoint.substr(0, start)) + "***" + std::string(endpoint.substr(at));
}

// Splits "http(s)://host[:port][/]" into the base URL and the Host header.
Result<std::pair<std::string, std::string>> ParseEndpoint(std::string_view endpoint) {
  std::string_view rest = endpoint;
  std::string_view scheme;
  if (rest.starts_with("http://")) {
    scheme = "http://";
  } else if (rest.starts_with("https://")) {
    scheme = "https://";
  } else {
    return InvalidArgument("S3 endpoint must start with http:// or https://: " + Shown(endpoint));
  }
  rest.remove_prefix(scheme.size());
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.empty() || rest.find_first_of("/?#@ ") != std::string_view::npos)
    return InvalidArgument("S3 endpoint must be http(s)://host[:port] (no path, no credentials): " +
                           Shown(endpoint));
  const auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.find(']') == std::string_view::npos) {
    const std::string_view port = rest.substr(colon + 1);
    if (colon == 0 || port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return InvalidArgument("S3 endpoint has a bad port: " + Shown(endpoint));
  }
  return std::pair{std::string(scheme) + std::string(rest), std::string(rest)};
}

}  // namespace

struct S3Store::Impl {
  // The signing credentials, built once: the secret is moved out of the
  // config (whose secret_access_key is then empty) rather than copied.
  sigv4::Credentials credentials;
  S3Config config;
  std::string base_url;  // "http://127.0.0.1:9000", no trailing '/'
  std::string host;      // the Host header: "127.0.0.1:9000"
  http::HttpClient http;

  // The credentials do not outlive the store in freed memory (the Secret
  // wipes itself).
  ~Impl() { WipeString(config.session_token); }

  Impl(S3Config c, std::string url, std::string host_header)
      : credentials{c.access_key_id, std::move(c.secret_access_key)},
        config(std::move(c)),
        base_url(std::move(url)),
        host(std::move(host_header)),
        http(http::HttpClientOptions{config.max_connections, config.connect_timeout_ms,
                                     config.request_timeout_ms}) {}

  std::string Describe() const { return "s3://" + config.bucket + " (" + base_url + ")"; }

  // Sends one signed request for `key` (or for the bucket when `key` is empty)
  // and returns the response when its status is 2xx; other statuses become
  // errors by MapHttpError.
  // `extra_headers` ("Name: value") are sent unsigned.
  Result<HttpResponse> Call(std::string_view method, std::string_view key, sigv4::Params query,
                            std::string_view body = {},
                            const std::vector<std::string>& extra_headers = {}) {
    const std::string what = "S3 " + std::string(method) + " " + config.bucket +
                             (key.empty() ? "" : "/" + std::string(key));
    sigv4::Request request;
    request.method = std::string(method);
    // Bucket-level requests go to "/bucket" without a trailing slash: S3
    // accepts both, and s3rver only verifies signatures on this form.
    request.path = "/" + config.bucket + (key.empty() ? "" : "/" + std::string(key));
    request.query = std::move(query);
    request.payload_sha256 = body.empty() ? std::string(sigv4::kEmptyPayloadSha256)
                                          : crypto::DigestHex(crypto::Sha256Of(body));
    const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    request.headers = {{"host", host},
                       {"x-amz-content-sha256", request.payload_sha256},
                       {"x-amz-date", sigv4::FormatAmzDate(now)}};
    if (!config.session_token.empty())
      request.headers.emplace_back("x-amz-security-token", config.session_token);

    http::HttpRequest http_request;
    http_request.method = request.method;
    http_request.url = base_url + sigv4::UriEncode(request.path, true);
    const std::string query_string = sigv4::CanonicalQueryString(request.query);
    if (!query_string.empty()) http_request.url += "?" + query_string;
    for (const auto& [name, value] : request.headers)
      http_request.headers.push_back(name + ": " + value);
    http_request.headers.push_back(
        "Authorization: " + sigv4::Authorization(request, credentials, now, config.region, "s3"));
    if (method == "PUT" || method == "POST")
      http_request.headers.push_back("Content-Type: application/octet-stream");
    http_request.headers.insert(http_request.headers.end(), extra_headers.begin(),
                                extra_headers.end());
    http_request.body = body;

    auto response = http.Send(http_request, what);
    if (!response) return std::unexpected(Scrub(response.error()));
    if (response->status >= 200 && response->status < 300) return response;
    return std::unexpected(Scrub(MapHttpError(what, *response)));
  }

  Error MapHttpError(const std::string& what, const HttpResponse& response) const {
    const s3::ErrorBody body = s3::ParseErrorBody(response.body);
    const long status = response.status;
    std::string detail = "HTTP " + std::to_string(status);
    if (!body.code.empty()) detail += " " + body.code;
    if (!body.message.empty()) detail += ": " + body.message;

    if (status == 401 || status == 403 || body.code == "ExpiredToken" ||
        body.code == "InvalidToken" || body.code == "InvalidAccessKeyId") {
      return Error(ErrorKind::kPermissionDenied,
                   what + ": the service rejected the request signature or credentials (" + detail +
                       "); check the secret access key for access key id " + config.access_key_id +
                       ", the session token and the clock");
    }
    if (status == 404) {
      if (body.code == "NoSuchBucket")
        return Error(ErrorKind::kInvalidArgument,
                     what + ": the bucket does not exist (" + detail + ")");
      return Error(ErrorKind::kNotFound, what + ": not found (" + detail + ")");
    }
    if (status >= 500 || status == 429 || status == 408 || body.code == "RequestTimeout" ||
        body.code == "SlowDown")
      return Error(ErrorKind::kTransient, what + ": " + detail);
    if (status == 400) return Error(ErrorKind::kInvalidArgument, what + ": " + detail);
    // A conditional write lost: If-None-Match found an object (412), or
    // another conditional write of the key was in flight (409).
    if (status == 412 || (status == 409 && body.code == "ConditionalRequestConflict"))
      return Error(ErrorKind::kAlreadyExists,
                   what + ": the object already exists (" + detail + ")");
    return Error(ErrorKind::kInternal, what + ": unexpected answer (" + detail + ")");
  }

  // Defence in depth: no message is built from the credentials, but a
  // server may echo what it was sent.
  Error Scrub(const Error& error) const {
    return Error(error.kind(),
                 ScrubSecrets(error.message(),
                              {credentials.secret_access_key.Reveal(), config.session_token}));
  }

  Status PutMultipart(std::string_view key, std::string_view data);
  Result<std::string> UploadPart(std::string_view key, const std::string& upload_id, int number,
                                 std::string_view part);
};

Result<std::string> S3Store::Impl::UploadPart(std::string_view key, const std::string& upload_id,
                                              int number, std::string_view part) {
  for (int attempt = 1;; ++attempt) {
    auto response =
        Call("PUT", key, {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}}, part);
    if (response) {
      const std::string* etag = response->Header("etag");
      if (etag == nullptr || etag->empty())
        return InternalError("S3 UploadPart " + std::string(key) + ": response has no ETag");
      return *etag;
    }
    if (!response.error().retryable() || attempt >= kPartAttempts)
      return std::unexpected(response.error());
    std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));
  }
}

Status S3Store::Impl::PutMultipart(std::string_view key, std::string_view data) {
  const std::size_t part_size =
      std::max(config.multipart_part_size, (data.size() + kMaxParts - 1) / kMaxParts);
  KINDLING_ASSIGN_OR_RETURN(HttpResponse created, Call("POST", key, {{"uploads", ""}}));
  KINDLING_ASSIGN_OR_RETURN(std::string upload_id, s3::ParseUploadId(created.body));

  auto upload = [&]() -> Status {
    std::vector<std::string> etags;
    for (std::size_t offset = 0; offset < data.size(); offset += part_size) {
      const std::string_view part = data.substr(offset, part_size);
      KINDLING_ASSIGN_OR_RETURN(
          std::string etag, UploadPart(key, upload_id, static_cast<int>(etags.size() + 1), part));
      etags.push_back(std::move(etag));
    }
    const std::string body = s3::CompleteMultipartBody(etags);
    KINDLING_ASSIGN_OR_RETURN(HttpResponse completed,
                              Call("POST", key, {{"uploadId", upload_id}}, body));
    // CompleteMultipartUpload may fail after its 200 header was sent: the
    // error then arrives as the body.
    const s3::ErrorBody error = s3::ParseErrorBody(completed.body);
    if (!error.code.empty()) {
      const std::string message = "S3 CompleteMultipartUpload " + std::string(key) + ": " +
                                  error.code + ": " + error.message;
      if (error.code == "InternalError" || error.code == "SlowDown") return TransientError(message);
      return InternalError(message);
    }
    return OkStatus();
  };
  Status status = upload();
  if (!status) {
    // Best effort: an upload left behind only costs storage until the
    // bucket's lifecycle rule for incomplete uploads removes it.
    IgnoreError(Call("DELETE", key, {{"uploadId", upload_id}}),
                "the lifecycle rule removes an upload the abort missed");
  }
  return status;
}

S3Config S3Config::Clone() const {
  S3Config copy;
  copy.bucket = bucket;
  copy.region = region;
  copy.endpoint = endpoint;
  copy.access_key_id = access_key_id;
  copy.secret_access_key = secret_access_key.Clone();
  copy.session_token = session_token;
  copy.max_connections = max_connections;
  copy.multipart_threshold = multipart_threshold;
  copy.multipart_part_size = multipart_part_size;
  copy.connect_timeout_ms = connect_timeout_ms;
  copy.request_timeout_ms = request_timeout_ms;
  return copy;
}

S3Store::S3Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
S3Store::~S3Store() = default;

Result<std::unique_ptr<S3Store>> S3Store::Open(S3Config config) {
  if (config.bucket.empty()) return InvalidArgument("S3 config has no bucket");
  if (!std::all_of(config.bucket.begin(), config.bucket.end(), IsBucketChar))
    return InvalidArgument("S3 bucket name has invalid characters: " + config.bucket);
  if (config.region.empty()) return InvalidArgument("S3 config has no region");
  if (config.access_key_id.empty() || config.secret_access_key.empty())
    return InvalidArgument(
        "S3 config has no credentials (access key id and secret access key, e.g. "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
  if (config.max_connections == 0) return InvalidArgument("S3 max_connections must be >= 1");
  if (config.multipart_part_size == 0) return InvalidArgument("S3 multipart_part_size must be > 0");
  const std::string endpoint =
      config.endpoint.empty() ? "https://s3." + config.region + ".amazonaws.com" : config.endpoint;
  KINDLING_ASSIGN_OR_RETURN(auto parsed, ParseEndpoint(endpoint));
  try {
    return std::unique_ptr<S3Store>(new S3Store(std::make_unique<Impl>(
        std::move(config), std::move(parsed.first), std::move(parsed.second))));
  } catch (const std::exception& e) {
    return InternalError(std::string("S3 store: ") + e.what());
  }
}

namespace {

// Library exceptions (std::bad_alloc from a huge body, mostly) stop here.
template <typename Fn>
auto Guard(std::string_view what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return InternalError(std::string(what) + ": " + e.what());
  }
}

Status CheckKey(std::string_view key) {
  if (!IsValidObjectKey(key)) return InvalidArgument("invalid object key: " + std::string(key));
  return OkStatus();
}

}  // namespace

Status S3Store::Put(std::string_view key, std::string_view data) {
  KINDLING_RETURN_IF_ERROR(CheckKey(key));
  return Guard("S3 PUT", [&]() -> Status {
    if (data.size() > impl_->config.multipart_threshold) return impl_->PutMultipart(key, data);
    KINDLING_RETURN_IF_ERROR(impl_->Call("PUT", key, {}, data));
    return OkStatus();
  });
}

Status S3Store::PutIfAbsent(std::string_view key, std::string_view data) {
  KINDLING_RETURN_IF_ERROR(CheckKey(key));
  return Guard("S3 PUT", [&]() -> Status {
    if (data.size() > impl_->config.multipart_threshold)
      return InvalidArgument("S3 conditional PUT " + std::string(key) + ": " +
                             std::to_string(data.size()) + " bytes is over the single-PUT size");
    // Services that ignore If-None-Match on PUT (s3rver, older MinIO and
    // Ceph) would overwrite: the HEAD turns away every creator but one that
    // races within the HEAD-to-PUT window. Where the header is honoured
    // (AWS S3 since 2024, recent MinIO), the PUT itself decides.
    auto head = impl_->Call("HEAD", key, {});
    if (head)
      return MakeError(ErrorKind::kAlreadyExists, "S3 PUT " + impl_->config.bucket + "/" +
                                                      std::string(key) +
                                                      ": the object already exists");
    if (!head.error().is_not_found()) return std::unexpected(head.error());
    KINDLING_RETURN_IF_ERROR(impl_->Call("PUT", key, {}, data, {"If-None-Match: *"}));
    return OkStatus();
  });
}

Result<std::string> S3Store::Get(std::string_view key) {
  KINDLING_RETURN_IF_ERROR(CheckKey(key));
  return Guard("S3 GET", [&]() -> Result<std::string> {
    KINDLING_ASSIGN_OR_RETURN(HttpResponse response, impl_->Call("GET", key, {}));
    const auto length = response.ContentLength();
    if (length && *length != response.body.size())
      return TransientError("S3 GET " + impl_->config.bucket + "/" + std::string(key) +
                            ": body has " + std::to_string(response.body.size()) +
                            " bytes, Content-Length says " + std::to_string(*length));
    return std::move(response.body);
  });
}

Result<std::uint64_t> S3Store::Head(std::string_view key) {
  KINDLING_RETURN_IF_ERROR(CheckKey(key));
  return Guard("S3 HEAD", [&]() -> Result<std::uint64_t> {
    KINDLING_ASSIGN_OR_RETURN(HttpResponse response, impl_->Call("HEAD", key, {}));
    const auto length = response.ContentLength();
    if (!length)
      return InternalError("S3 HEAD " + impl_->config.bucket + "/" + std::string(key) +
                           ": response has no Content-Length");
    return *length;
  });
}

Status S3Store::Delete(std::string_view key) {
  KINDLING_RETURN_IF_ERROR(CheckKey(key));
  return Guard("S3 DELETE", [&]() -> Status {
    auto response = impl_->Call("DELETE", key, {});
    if (!response && !response.error().is_not_found()) return std::unexpected(response.error());
    return OkStatus();
  });
}

Result<std::vector<ObjectInfo>> S3Store::List(std::string_view prefix) {
  if (!std::all_of(prefix.begin(), prefix.end(), IsPrefixChar))
    return InvalidArgument("invalid list prefix: " + std::string(prefix));
  return Guard("S3 LIST", [&]() -> Result<std::vector<ObjectInfo>> {
    std::vector<ObjectInfo> out;
    std::string token;
    std::set<std::string> seen_tokens;
    while (true) {
      sigv4::Params query = {{"list-type", "2"}};
      if (!prefix.empty()) query.emplace_back("prefix", std::string(prefix));
      if (!token.empty()) query.emplace_back("continuation-token", token);
      KINDLING_ASSIGN_OR_RETURN(HttpResponse response, impl_->Call("GET", "", std::move(query)));
      auto page = s3::ParseListObjectsV2(response.body);
      if (!page)
        return std::unexpected(page.error().WithContext("S3 LIST " + impl_->config.bucket));
      for (ObjectInfo& info : page->objects) {
        // A service that ignored the prefix must not leak other keys.
        if (info.key.starts_with(prefix)) out.push_back(std::move(info));
      }
      if (!page->truncated) break;
      token = std::move(page->next_continuation_token);
      if (!seen_tokens.insert(token).second)
        return InternalError("S3 LIST " + impl_->config.bucket + ": continuation token repeats");
    }
    // The contract is lexical order; not every compatible service keeps it
    // (s3rver walks directories), and sorting a list we hold anyway is cheap.
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return out;
  });
}

std::string S3Store::Describe() const { return impl_->Describe(); }

}  // namespace kindling::storage
