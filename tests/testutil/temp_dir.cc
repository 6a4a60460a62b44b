#include "testutil/temp_dir.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>

#include "common/files.h"
#include "crypto/sha256.h"

namespace kindling::testutil {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/kindling-test-XXXXXX";
  char* made = ::mkdtemp(tmpl.data());
  if (made == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void WriteFile(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("write failed: " + path.string());
}

std::string ReadFileOrDie(const std::filesystem::path& path) {
  auto data = ReadFile(path);
  if (!data) throw std::runtime_error(data.error().message());
  return *data;
}

std::string Sha256OfFile(const std::filesystem::path& path) {
  return crypto::DigestHex(crypto::Sha256Of(ReadFileOrDie(path)));
}

std::string ImageDigestOfFile(const std::filesystem::path& path, std::uint32_t chunk_size) {
  const std::string data = ReadFileOrDie(path);
  std::string input("kindling image digest v1", 24);
  input.push_back('\0');
  const std::uint64_t size = data.size();
  for (int i = 0; i < 8; ++i) input.push_back(static_cast<char>((size >> (8 * i)) & 0xff));
  for (int i = 0; i < 4; ++i) input.push_back(static_cast<char>((chunk_size >> (8 * i)) & 0xff));
  for (std::uint64_t offset = 0; offset < size; offset += chunk_size)
    input +=
        crypto::DigestBytes(crypto::Sha256Of(std::string_view(data).substr(offset, chunk_size)));
  return crypto::DigestHex(crypto::Sha256Of(input));
}

}  // namespace kindling::testutil
