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

}  // namespace kindling::testutil
