// Deterministic test images: sparse files made of holes, written zeros,
// incompressible random bytes and compressible text, all derived from a seed
// so a failing test reproduces byte for byte.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace kindling::testutil {

enum class Fill : std::uint8_t {
  kZeros,   // zero bytes actually written (allocated, unlike a hole)
  kRandom,  // incompressible
  kText,    // text-like, compresses well
};

struct Extent {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  Fill fill = Fill::kRandom;
};

// `size` bytes of pseudo-random data; the same (size, seed) gives the same bytes.
std::string RandomData(std::size_t size, std::uint64_t seed);
// `size` bytes of space-separated words and newlines; compresses 3-5x with zstd.
std::string TextData(std::size_t size, std::uint64_t seed);
// The content `fill` describes for `size` bytes.
std::string FillData(Fill fill, std::size_t size, std::uint64_t seed);

// Creates (or replaces) `path` with apparent size `size`, a hole everywhere
// except `extents`, written in order (extent i uses seed + i). Throws on I/O
// errors (test set-up only).
void MakeSparseFile(const std::filesystem::path& path, std::uint64_t size,
                    const std::vector<Extent>& extents, std::uint64_t seed = 1);

// Overwrites [offset, offset + data.size()) of an existing file.
void PatchFile(const std::filesystem::path& path, std::uint64_t offset, const std::string& data);

// Bytes the file occupies on disk (st_blocks * 512).
std::uint64_t AllocatedBytes(const std::filesystem::path& path);

// Names in `dir` (not recursive), sorted.
std::vector<std::string> ListDir(const std::filesystem::path& dir);

}  // namespace kindling::testutil
