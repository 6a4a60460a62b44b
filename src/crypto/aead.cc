#include "crypto/aead.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace kindling::crypto {
namespace {

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

const unsigned char* U8(const char* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* U8(char* p) { return reinterpret_cast<unsigned char*>(p); }

CipherCtx NewCtx() {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) std::abort();
  return ctx;
}

}  // namespace

std::string_view KeyBytes(const Key& key) {
  return {reinterpret_cast<const char*>(key.data()), key.size()};
}

void RandomBytes(void* out, std::size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  while (size > 0) {  // RAND_bytes takes an int length
    const std::size_t n = std::min<std::size_t>(size, INT_MAX);
    if (RAND_bytes(p, static_cast<int>(n)) != 1) std::abort();
    p += n;
    size -= n;
  }
}

Key RandomKey() {
  Key key{};
  RandomBytes(key.data(), key.size());
  return key;
}

namespace {

constexpr std::size_t kMaxPiece = static_cast<std::size_t>(INT_MAX);

// EVP_{En,De}cryptUpdate over `in` in pieces of at most `piece` bytes; `out`
// null feeds associated data. GCM is a stream mode: each call writes exactly
// as many bytes as it reads.
template <typename UpdateFn>
bool UpdateInPieces(UpdateFn update, EVP_CIPHER_CTX* ctx, char* out, std::string_view in,
                    std::size_t piece) {
  for (std::size_t done = 0; done < in.size();) {
    const std::size_t n = std::min(piece, in.size() - done);
    int len = 0;
    if (update(ctx, out == nullptr ? nullptr : U8(out + done), &len, U8(in.data() + done),
               static_cast<int>(n)) != 1 ||
        (out != nullptr && static_cast<std::size_t>(len) != n))
      return false;
    done += n;
  }
  return true;
}

}  // namespace

namespace internal {

void SealAppendInPieces(const Key& key, std::string_view plaintext, std::string_view aad,
                        std::string& out, std::size_t piece) {
  const std::size_t start = out.size();
  out.resize(start + kNonceSize + plaintext.size() + kTagSize);
  char* nonce = out.data() + start;
  char* body = nonce + kNonceSize;
  RandomBytes(nonce, kNonceSize);

  auto ctx = NewCtx();
  int len = 0;
  // Failures below can only come from a broken OpenSSL (lengths are fed in
  // int-sized pieces, the key and nonce sizes are fixed).
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), U8(nonce)) != 1 ||
      !UpdateInPieces(EVP_EncryptUpdate, ctx.get(), nullptr, aad, piece) ||
      !UpdateInPieces(EVP_EncryptUpdate, ctx.get(), body, plaintext, piece) ||
      EVP_EncryptFinal_ex(ctx.get(), U8(body) + plaintext.size(), &len) != 1 || len != 0 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagSize),
                          body + plaintext.size()) != 1) {
    std::fputs("kindling: fatal: AES-256-GCM encryption failed inside OpenSSL\n", stderr);
    std::abort();
  }
}

Status OpenInPieces(const Key& key, std::string_view sealed, std::string_view aad, std::string& out,
                    std::size_t piece) {
  if (sealed.size() < kSealOverhead) return Corruption("sealed data too short");
  const char* nonce = sealed.data();
  const char* body = nonce + kNonceSize;
  const std::size_t body_size = sealed.size() - kSealOverhead;
  const char* tag = body + body_size;
  out.resize(body_size);

  auto ctx = NewCtx();
  int len = 0;
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), U8(nonce)) != 1 ||
      !UpdateInPieces(EVP_DecryptUpdate, ctx.get(), nullptr, aad, piece) ||
      !UpdateInPieces(EVP_DecryptUpdate, ctx.get(), out.data(), std::string_view(body, body_size),
                      piece) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagSize),
                          const_cast<char*>(tag)) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), U8(out.data()) + body_size, &len) != 1) {
    out.clear();
    return Corruption("authentication failed");
  }
  return OkStatus();
}

}  // namespace internal

void SealAppend(const Key& key, std::string_view plaintext, std::string_view aad,
                std::string& out) {
  internal::SealAppendInPieces(key, plaintext, aad, out, kMaxPiece);
}

Status Open(const Key& key, std::string_view sealed, std::string_view aad, std::string& out) {
  return internal::OpenInPieces(key, sealed, aad, out, kMaxPiece);
}

}  // namespace kindling::crypto
