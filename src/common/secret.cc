#include "common/secret.h"

#include <openssl/crypto.h>

namespace kindling {

void WipeBytes(void* data, std::size_t size) { OPENSSL_cleanse(data, size); }

void WipeString(std::string& text) {
  // The whole capacity: a shorter value may have been assigned over a longer
  // one, whose tail is still in the buffer.
  text.resize(text.capacity());
  if (!text.empty()) WipeBytes(text.data(), text.size());
  text.clear();
}

}  // namespace kindling
