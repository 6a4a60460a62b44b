#include "cli/demo_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/files.h"

namespace kindling::cli {
namespace {

constexpr std::size_t kPiece = 1u << 20;

bool IsCancelled(const engine::CancelFlag* cancel) { return cancel != nullptr && cancel->load(); }

void FillRandom(std::mt19937_64& rng, char* out, std::size_t size) {
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(out + i, &v, 8);
  }
  if (i < size) {
    const std::uint64_t v = rng();
    std::memcpy(out + i, &v, size - i);
  }
}

// A few MiB of log-like lines; text regions copy from it at random offsets so
// they compress well but do not deduplicate against each other.
std::string MakeTextPool(std::mt19937_64& rng) {
  static constexpr std::array<const char*, 12> kWords = {
      "ext4",  "inode", "journal", "commit", "block",  "extent",
      "flush", "dirty", "mounted", "worker", "kernel", "checkpoint"};
  static constexpr std::array<const char*, 4> kLevels = {"INFO", "DEBUG", "WARN", "INFO"};
  std::string pool;
  pool.reserve(4 * kPiece + 256);
  char line[256];
  while (pool.size() < 4 * kPiece) {
    const std::uint64_t r = rng();
    const int n = std::snprintf(
        line, sizeof line,
        "2024-%02u-%02uT%02u:%02u:%02u.%03uZ %s host-%02u %s: %s %s %u of %s (%u ms)\n",
        static_cast<unsigned>(r % 12 + 1), static_cast<unsigned>((r >> 4) % 28 + 1),
        static_cast<unsigned>((r >> 9) % 24), static_cast<unsigned>((r >> 14) % 60),
        static_cast<unsigned>((r >> 20) % 60), static_cast<unsigned>((r >> 26) % 1000),
        kLevels[(r >> 36) % kLevels.size()], static_cast<unsigned>((r >> 38) % 16),
        kWords[(r >> 42) % kWords.size()], kWords[(r >> 46) % kWords.size()],
        kWords[(r >> 50) % kWords.size()], static_cast<unsigned>((r >> 20) % 100000),
        kWords[(r >> 54) % kWords.size()], static_cast<unsigned>((r >> 58) % 64));
    pool.append(line, static_cast<std::size_t>(std::max(n, 0)));
  }
  return pool;
}

}  // namespace

Result<DemoImageLayout> WriteDemoImage(const std::filesystem::path& path, std::uint64_t size,
                                       std::uint64_t seed, const engine::CancelFlag* cancel) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoError("create " + path.string(), errno);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
    return ErrnoError("truncate " + path.string(), errno);

  std::mt19937_64 rng(seed);
  const std::string pool = MakeTextPool(rng);
  std::vector<char> buffer(kPiece);
  const std::vector<char> zeros(kPiece, 0);
  DemoImageLayout layout;
  layout.size = size;

  enum class Kind { kRandom, kText, kZeros, kHole };
  std::uint64_t offset = 0;
  while (offset < size) {
    if (IsCancelled(cancel)) return kindling::Cancelled();
    // Regions of 1-16 MiB, so some chunks are all one kind and some mixed.
    const std::uint64_t length = std::min<std::uint64_t>((rng() % 16 + 1) * kPiece, size - offset);
    const std::uint64_t roll = rng() % 100;
    const Kind kind = roll < 30   ? Kind::kRandom
                      : roll < 60 ? Kind::kText
                      : roll < 70 ? Kind::kZeros
                                  : Kind::kHole;
    for (std::uint64_t done = 0; done < length && kind != Kind::kHole;) {
      const std::size_t piece =
          static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, length - done));
      const char* data = buffer.data();
      if (kind == Kind::kRandom) {
        FillRandom(rng, buffer.data(), piece);
      } else if (kind == Kind::kText) {
        data = pool.data() + rng() % (pool.size() - kPiece);
      } else {
        data = zeros.data();
      }
      KINDLING_RETURN_IF_ERROR(PwriteFull(fd.get(), data, piece, offset + done));
      done += piece;
    }
    switch (kind) {
      case Kind::kRandom:
        layout.random_bytes += length;
        break;
      case Kind::kText:
        layout.text_bytes += length;
        break;
      case Kind::kZeros:
        layout.zero_bytes += length;
        break;
      case Kind::kHole:
        layout.hole_bytes += length;
        break;
    }
    offset += length;
  }
  if (::close(fd.Release()) != 0) return ErrnoError("close " + path.string(), errno);
  return layout;
}

Result<ImageChange> ChangeImage(const std::filesystem::path& path, std::uint32_t chunk_size,
                                double fraction, std::uint64_t seed) {
  if (chunk_size == 0) return InvalidArgument("chunk size 0");
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + path.string(), errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + path.string(), errno);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  ImageChange change;
  if (size == 0) return change;

  const std::uint64_t chunks = (size + chunk_size - 1) / chunk_size;
  const auto wanted = std::clamp<std::uint64_t>(
      static_cast<std::uint64_t>(std::llround(static_cast<double>(chunks) * fraction)), 1, chunks);
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> indexes(chunks);
  for (std::uint64_t i = 0; i < chunks; ++i) indexes[i] = i;
  std::shuffle(indexes.begin(), indexes.end(), rng);
  indexes.resize(wanted);

  std::vector<char> buffer;
  for (const std::uint64_t index : indexes) {
    const std::uint64_t chunk_start = index * chunk_size;
    const std::uint64_t chunk_length = std::min<std::uint64_t>(chunk_size, size - chunk_start);
    const std::uint64_t half = (chunk_length + 1) / 2;
    const std::uint64_t run = half + rng() % (chunk_length - half + 1);
    const std::uint64_t start = chunk_start + rng() % (chunk_length - run + 1);
    buffer.resize(static_cast<std::size_t>(run));
    FillRandom(rng, buffer.data(), buffer.size());
    KINDLING_RETURN_IF_ERROR(PwriteFull(fd.get(), buffer.data(), buffer.size(), start));
    change.bytes_written += run;
    ++change.chunks_touched;
  }
  if (::close(fd.Release()) != 0) return ErrnoError("close " + path.string(), errno);
  return change;
}

Result<crypto::Digest> Sha256OfFile(const std::filesystem::path& path,
                                    const engine::CancelFlag* cancel) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + path.string(), errno);
  crypto::Sha256 sha;
  std::vector<char> buffer(kPiece);
  for (std::uint64_t offset = 0;;) {
    if (IsCancelled(cancel)) return kindling::Cancelled();
    KINDLING_ASSIGN_OR_RETURN(std::size_t got,
                              PreadFull(fd.get(), buffer.data(), buffer.size(), offset));
    if (got == 0) break;
    sha.Update(buffer.data(), got);
    offset += got;
  }
  return sha.Finish();
}

}  // namespace kindling::cli
