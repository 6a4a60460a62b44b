#include "crypto/sha256.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "common/hex.h"

namespace kindling::crypto {
namespace {

Digest OrDie(Result<Digest> digest) {
  if (!digest) {
    std::fprintf(stderr, "kindling: fatal: %s\n", digest.error().message().c_str());
    std::abort();
  }
  return *digest;
}

}  // namespace

std::string_view DigestBytes(const Digest& digest) {
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

std::string DigestHex(const Digest& digest) { return HexEncode(DigestBytes(digest)); }

struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  ok_ = impl_->ctx != nullptr && EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) == 1;
}

Sha256::~Sha256() = default;

void Sha256::Update(const void* data, std::size_t size) {
  if (!ok_ || finished_) {
    ok_ = false;
    return;
  }
  ok_ = EVP_DigestUpdate(impl_->ctx, data, size) == 1;
}

void Sha256::UpdateZeros(std::uint64_t count) {
  static const std::array<unsigned char, 1 << 16> kZeros{};
  while (count > 0) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(count, kZeros.size()));
    Update(kZeros.data(), n);
    count -= n;
  }
}

Result<Digest> Sha256::Finish() {
  Digest out{};
  unsigned int len = 0;
  const bool ok = ok_ && !finished_ && EVP_DigestFinal_ex(impl_->ctx, out.data(), &len) == 1 &&
                  len == out.size();
  finished_ = true;
  ok_ = ok_ && ok;
  if (!ok) return InternalError("SHA-256 failed (OpenSSL error or misuse)");
  return out;
}

Result<Digest> TrySha256Of(std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size())
    return InternalError("SHA-256 failed (OpenSSL error)");
  return out;
}

Result<Digest> TryHmacSha256(std::string_view key, std::string_view data) {
  // HMAC() takes the key length as an int.
  if (key.size() > static_cast<std::size_t>(INT_MAX))
    return InternalError("HMAC-SHA-256 key of " + std::to_string(key.size()) +
                         " bytes is longer than OpenSSL accepts");
  Digest out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
           &len) == nullptr ||
      len != out.size())
    return InternalError("HMAC-SHA-256 failed (OpenSSL error)");
  return out;
}

Digest Sha256Of(std::string_view data) { return OrDie(TrySha256Of(data)); }

Digest HmacSha256(std::string_view key, std::string_view data) {
  return OrDie(TryHmacSha256(key, data));
}

}  // namespace kindling::crypto
