// A volume image opened for reading (a regular file, often sparse, or a block
// device), and its image digest computed straight from the file.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <filesystem>

#include "common/files.h"
#include "common/result.h"
#include "crypto/sha256.h"

namespace kindling::engine {

struct ImageFile {
  UniqueFd fd;
  UniqueFd direct;  // O_DIRECT; invalid when the filesystem has none
  std::uint64_t size = 0;
  struct stat st {};
};

// kNotFound when `path` does not exist; kInvalidArgument when it is neither a
// regular file nor a block device.
[[nodiscard]] Result<ImageFile> OpenImage(const std::filesystem::path& path);

// The image digest (repo/image_digest.h) of the file at `path`, as a backup
// with `chunk_size` records it: holes are not read, data chunks are hashed on
// `threads` threads (0 = one per core). This is how an operator checks a
// restored image against a backup's image_sha256.
[[nodiscard]] Result<crypto::Digest> DigestImageFile(const std::filesystem::path& path,
                                                     std::uint32_t chunk_size, int threads = 0);

}  // namespace kindling::engine
