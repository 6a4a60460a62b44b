#include "storage/s3/sigv4.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "common/hex.h"
#include "crypto/sha256.h"

namespace kindling::storage::sigv4 {
namespace {

using std::chrono::sys_seconds;

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = ToLower(c);
  return out;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Trims the value and folds every run of whitespace into one space, as the
// specification asks (get-header-value-trim).
std::string CanonicalHeaderValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (IsSpace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

// Lower-cased name -> values joined with ',' in the order given; std::map
// keeps the names sorted as the canonical form needs.
std::map<std::string, std::string> CanonicalHeaders(const Params& headers) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : headers) {
    auto [it, inserted] = out.try_emplace(Lower(name), CanonicalHeaderValue(value));
    if (!inserted) {
      it->second += ',';
      it->second += CanonicalHeaderValue(value);
    }
  }
  return out;
}

std::string Date(sys_seconds time) { return FormatAmzDate(time).substr(0, 8); }

}  // namespace

std::string FormatAmzDate(sys_seconds time) {
  const auto day = std::chrono::floor<std::chrono::days>(time);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss hms{time - day};
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buffer;
}

std::optional<sys_seconds> ParseAmzDate(std::string_view text) {
  if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') return std::nullopt;
  auto number = [&](std::size_t pos, std::size_t len) -> std::optional<int> {
    int value = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      value = value * 10 + (text[i] - '0');
    }
    return value;
  };
  const auto year = number(0, 4), month = number(4, 2), day = number(6, 2);
  const auto hour = number(9, 2), minute = number(11, 2), second = number(13, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{*year},
                                        std::chrono::month{static_cast<unsigned>(*month)},
                                        std::chrono::day{static_cast<unsigned>(*day)}};
  if (!ymd.ok() || *hour > 23 || *minute > 59 || *second > 59) return std::nullopt;
  return std::chrono::sys_days{ymd} + std::chrono::hours{*hour} + std::chrono::minutes{*minute} +
         std::chrono::seconds{*second};
}

std::string UriEncode(std::string_view text, bool keep_slash) {
  return PercentEncode(text, keep_slash);
}

std::string CanonicalQueryString(const Params& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query)
    encoded.emplace_back(UriEncode(name, false), UriEncode(value, false));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string SignedHeaders(const Params& headers) {
  std::string out;
  for (const auto& [name, value] : CanonicalHeaders(headers)) {
    if (!out.empty()) out += ';';
    out += name;
  }
  return out;
}

std::string CanonicalRequest(const Request& request) {
  std::string out = request.method;
  out += '\n';
  out += UriEncode(request.path.empty() ? "/" : request.path, true);
  out += '\n';
  out += CanonicalQueryString(request.query);
  out += '\n';
  for (const auto& [name, value] : CanonicalHeaders(request.headers)) {
    out += name;
    out += ':';
    out += value;
    out += '\n';
  }
  out += '\n';
  out += SignedHeaders(request.headers);
  out += '\n';
  out += request.payload_sha256;
  return out;
}

std::string CredentialScope(sys_seconds time, std::string_view region, std::string_view service) {
  std::string out = Date(time);
  out += '/';
  out += region;
  out += '/';
  out += service;
  out += "/aws4_request";
  return out;
}

std::string StringToSign(sys_seconds time, std::string_view region, std::string_view service,
                         std::string_view canonical_request) {
  std::string out = "AWS4-HMAC-SHA256\n";
  out += FormatAmzDate(time);
  out += '\n';
  out += CredentialScope(time, region, service);
  out += '\n';
  out += crypto::DigestHex(crypto::Sha256Of(canonical_request));
  return out;
}

std::string Authorization(const Request& request, const Credentials& credentials, sys_seconds time,
                          std::string_view region, std::string_view service) {
  const std::string string_to_sign = StringToSign(time, region, service, CanonicalRequest(request));
  // The signing key is derived from the secret and the scope; both the key and
  // the secret's copy stay in this function's locals and are wiped here.
  std::string seed;
  seed.reserve(4 + credentials.secret_access_key.size());  // one buffer: no stale copy
  seed += "AWS4";
  seed += credentials.secret_access_key.Reveal();
  crypto::Digest key = crypto::HmacSha256(seed, Date(time));
  WipeString(seed);
  const WipeOnExit wipe_key(key);
  key = crypto::HmacSha256(crypto::DigestBytes(key), region);
  key = crypto::HmacSha256(crypto::DigestBytes(key), service);
  key = crypto::HmacSha256(crypto::DigestBytes(key), "aws4_request");
  const auto signature = crypto::HmacSha256(crypto::DigestBytes(key), string_to_sign);

  std::string out = "AWS4-HMAC-SHA256 Credential=";
  out += credentials.access_key_id;
  out += '/';
  out += CredentialScope(time, region, service);
  out += ", SignedHeaders=";
  out += SignedHeaders(request.headers);
  out += ", Signature=";
  out += crypto::DigestHex(signature);
  return out;
}

}  // namespace kindling::storage::sigv4
