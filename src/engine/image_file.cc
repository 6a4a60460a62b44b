#include "engine/image_file.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common/aligned_buffer.h"
#include "engine/pipeline.h"
#include "repo/image_digest.h"

namespace kindling::engine {

Result<ImageFile> OpenImage(const std::filesystem::path& path) {
  ImageFile image;
  image.fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!image.fd.valid()) {
    if (errno == ENOENT) return NotFound("image not found: " + path.string());
    return ErrnoError("open image " + path.string(), errno);
  }
  if (::fstat(image.fd.get(), &image.st) != 0)
    return ErrnoError("stat image " + path.string(), errno);
  if (S_ISREG(image.st.st_mode)) {
    image.size = static_cast<std::uint64_t>(image.st.st_size);
  } else if (S_ISBLK(image.st.st_mode)) {
    if (::ioctl(image.fd.get(), BLKGETSIZE64, &image.size) != 0)
      return ErrnoError("size of block device " + path.string(), errno);
  } else {
    return InvalidArgument("image is not a regular file or block device: " + path.string());
  }
  ::posix_fadvise(image.fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  image.direct = OpenDirect(path, O_RDONLY);
  return image;
}

Result<crypto::Digest> DigestImageFile(const std::filesystem::path& path, std::uint32_t chunk_size,
                                       int threads) {
  if (chunk_size == 0 || chunk_size % 4096 != 0)
    return InvalidArgument("chunk size must be a positive multiple of 4096");
  if (threads < 0 || threads > 256) return InvalidArgument("threads must be 0-256");
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  KINDLING_ASSIGN_OR_RETURN(ImageFile image, OpenImage(path));
  repo::ImageDigest digest(image.size, chunk_size);
  const DirectIo io(image.fd.get(), image.direct.get());
  std::atomic<std::size_t> next{0};
  FirstError error;
  {
    WorkerGroup workers(threads, [&](int) {
      AlignedBuffer buffer(chunk_size);
      while (!error.failed()) {
        const std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
        if (i >= digest.chunk_count()) break;
        const std::uint64_t offset = std::uint64_t{chunk_size} * i;
        const auto length = static_cast<std::size_t>(digest.ChunkLength(i));
        auto is_hole = RangeIsHole(image.fd.get(), offset, length);
        if (!is_hole) {
          error.Set(is_hole.error().WithContext("image " + path.string()));
          break;
        }
        if (*is_hole) {
          digest.SetZeroChunk(i);
          continue;
        }
        auto got = PreadSparse(io, buffer.data(), length, offset);
        if (!got) {
          error.Set(got.error().WithContext("read image " + path.string()));
          break;
        }
        auto sha = crypto::TrySha256Of(std::string_view(buffer.data(), length));
        if (!sha) {
          error.Set(sha.error());
          break;
        }
        digest.SetChunk(i, *sha);
      }
    });
    workers.Join();
  }
  if (error.failed()) return std::unexpected(error.Take());
  return digest.Finish();
}

}  // namespace kindling::engine
