// A fresh directory under $TMPDIR for one test, removed with its content.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace kindling::testutil {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Writes a file of `size` bytes; `fill(offset)` gives each byte. Convenience
// for tests; sparse images use MakeSparseFile.
void WriteFile(const std::filesystem::path& path, const std::string& content);
std::string ReadFileOrDie(const std::filesystem::path& path);
// Hex SHA-256 of a file's content.
std::string Sha256OfFile(const std::filesystem::path& path);
// Hex image digest of a file (the chunk-tree digest of repo/image_digest.h),
// computed here from its definition, independently of the engine's code.
std::string ImageDigestOfFile(const std::filesystem::path& path,
                              std::uint32_t chunk_size = 4u << 20);

}  // namespace kindling::testutil
