// AWS Signature Version 4 (header-based) as pure functions: no clock, no I/O,
// no state, so that AWS's published vectors pin it down byte for byte
// (tests/golden/sigv4/). The S3 client builds a SigV4Request for each HTTP request
// and sends exactly the path, query and headers it signed.
//
// Canonicalisation follows the S3 flavour of the algorithm: the path is
// URI-encoded once per segment and never normalised ("." and ".." and "//" are
// kept), because S3 object keys may legitimately contain them.
//
// Thread-safe (pure functions).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/secret.h"

namespace kindling::storage::sigv4 {

// Hex SHA-256 of an empty payload.
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

using Params = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;  // "GET", "PUT", ...
  // The raw (not yet encoded) absolute path, e.g. "/bucket/dir/key".
  std::string path;
  // Raw (decoded) query parameter names and values, in any order; a
  // parameter without a value ("?uploads") has an empty value.
  Params query;
  // Every header to sign, names in any case, duplicates allowed (their values
  // are joined with ',' in the order given). Must include "host" and
  // "x-amz-date"; S3 also requires "x-amz-content-sha256".
  Params headers;
  // Lower-case hex SHA-256 of the body (or "UNSIGNED-PAYLOAD").
  std::string payload_sha256;
};

// Move-only: the secret is wiped when the credentials go. Here only
// Authorization reveals it, to derive the signing key.
struct Credentials {
  std::string access_key_id;  // not secret: it is sent in every Authorization header
  Secret secret_access_key;
};

// "20150830T123600Z" for a time point (UTC), the form of x-amz-date.
std::string FormatAmzDate(std::chrono::sys_seconds time);
// The inverse; nullopt unless `text` is exactly YYYYMMDDTHHMMSSZ.
std::optional<std::chrono::sys_seconds> ParseAmzDate(std::string_view text);

// Percent-encodes every byte except the unreserved set A-Z a-z 0-9 - . _ ~
// (upper-case hex), and '/' too unless `keep_slash`. This is AWS's UriEncode,
// which differs from JavaScript's encodeURIComponent for !'()*.
std::string UriEncode(std::string_view text, bool keep_slash);

// "a=1&b=" from the query parameters: names and values encoded, sorted by
// encoded name then encoded value. Also the form to put on the wire.
std::string CanonicalQueryString(const Params& query);

// "host;x-amz-content-sha256;x-amz-date": lower-cased, sorted, unique names.
std::string SignedHeaders(const Params& headers);

// The six-line canonical request of the SigV4 specification.
std::string CanonicalRequest(const Request& request);

// "20150830/us-east-1/service/aws4_request".
std::string CredentialScope(std::chrono::sys_seconds time, std::string_view region,
                            std::string_view service);

// "AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of canonical request>".
std::string StringToSign(std::chrono::sys_seconds time, std::string_view region,
                         std::string_view service, std::string_view canonical_request);

// The value of the Authorization header:
// "AWS4-HMAC-SHA256 Credential=<id>/<scope>, SignedHeaders=<...>, Signature=<hex>".
// Its copy of the secret ("AWS4" + secret) and the signing key derived from it
// are wiped before it returns.
// REQUIRES: `time` equals the request's x-amz-date header.
std::string Authorization(const Request& request, const Credentials& credentials,
                          std::chrono::sys_seconds time, std::string_view region,
                          std::string_view service);

}  // namespace kindling::storage::sigv4
