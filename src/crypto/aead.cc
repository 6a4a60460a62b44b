#include "crypto/aead.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

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
  if (RAND_bytes(static_cast<unsigned char*>(out), static_cast<int>(size)) != 1) std::abort();
}

Key RandomKey() {
  Key key{};
  RandomBytes(key.data(), key.size());
  return key;
}

void SealAppend(const Key& key, std::string_view plaintext, std::string_view aad,
                std::string& out) {
  const std::size_t start = out.size();
  out.resize(start + kNonceSize + plaintext.size() + kTagSize);
  char* nonce = out.data() + start;
  char* body = nonce + kNonceSize;
  RandomBytes(nonce, kNonceSize);

  auto ctx = NewCtx();
  int len = 0;
  // Failures below can only come from programming errors (sizes are fixed).
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), U8(nonce)) != 1 ||
      (!aad.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, U8(aad.data()), static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), U8(body), &len, U8(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), U8(body) + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagSize),
                          body + plaintext.size()) != 1) {
    std::abort();
  }
}

Status Open(const Key& key, std::string_view sealed, std::string_view aad, std::string& out) {
  if (sealed.size() < kSealOverhead) return Corruption("sealed data too short");
  const char* nonce = sealed.data();
  const char* body = nonce + kNonceSize;
  const std::size_t body_size = sealed.size() - kSealOverhead;
  const char* tag = body + body_size;
  out.resize(body_size);

  auto ctx = NewCtx();
  int len = 0;
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), U8(nonce)) != 1 ||
      (!aad.empty() &&
       EVP_DecryptUpdate(ctx.get(), nullptr, &len, U8(aad.data()), static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx.get(), U8(out.data()), &len, U8(body), static_cast<int>(body_size)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagSize),
                          const_cast<char*>(tag)) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), U8(out.data()) + len, &len) != 1) {
    out.clear();
    return Corruption("authentication failed");
  }
  return OkStatus();
}

}  // namespace kindling::crypto
