// make_image: builds the side-by-side benchmark's test image, deterministic
// from a seed, and applies its "2% change" for the incremental step.
//
//   make_image create --out PATH --size BYTES --data BYTES [--seed N] [--binary-dir DIR]
//   make_image mutate --image PATH --fraction F [--block BYTES] [--seed N]
//
// create: a sparse file of apparent size --size holding about --data bytes in
// extents of 1-24 MiB (4 KiB aligned, so they straddle 4 MiB chunk
// boundaries) separated by holes. Each extent is one of: incompressible
// random bytes (30%), text-like words (30%), binary-like bytes (25%: the
// files of --binary-dir, default /usr/bin, concatenated in name order, so
// deterministic on one machine), written zeros (10%), or a copy of an earlier
// extent (5%: duplicate content at another offset).
//
// mutate: overwrites fraction F of the apparent size with random bytes, in
// blocks of --block bytes (default 1 MiB) at random 4 KiB-aligned offsets.
// Blocks landing in holes turn them into data, as new files do.
//
// Prints a one-line summary (apparent size, allocated bytes) on stdout.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "make_image: %s\n", what.c_str());
  std::exit(1);
}

[[noreturn]] void DieErrno(const std::string& what) { Die(what + ": " + std::strerror(errno)); }

void WriteAll(int fd, const char* data, std::size_t size, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      DieErrno("pwrite");
    }
    done += static_cast<std::size_t>(n);
  }
}

void ReadAll(int fd, char* data, std::size_t size, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      DieErrno("pread");
    }
    if (n == 0) {
      std::memset(data + done, 0, size - done);
      return;
    }
    done += static_cast<std::size_t>(n);
  }
}

void FillRandom(std::mt19937_64& rng, std::string& buf) {
  std::size_t i = 0;
  for (; i + 8 <= buf.size(); i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(buf.data() + i, &v, 8);
  }
  for (; i < buf.size(); ++i) buf[i] = static_cast<char>(rng());
}

constexpr std::string_view kWords[] = {
    "the",    "of",      "and",      "to",      "in",       "is",       "that",    "for",
    "volume", "backup",  "chunk",    "store",   "restore",  "image",    "block",   "inode",
    "extent", "journal", "kernel",   "device",  "sector",   "mount",    "write",   "read",
    "error",  "warning", "info",     "debug",   "request",  "response", "session", "worker",
    "lease",  "commit",  "digest",   "sparse",  "database", "postgres", "select",  "insert",
    "update", "where",   "from",     "table",   "index",    "column",   "value",   "null",
    "GET",    "POST",    "HTTP/1.1", "200",     "404",      "500",      "user",    "admin",
    "config", "server",  "client",   "timeout", "retry",    "failed",   "success", "done"};

void FillText(std::mt19937_64& rng, std::string& buf) {
  std::size_t pos = 0;
  std::uint64_t line = rng() % 100000;
  while (pos < buf.size()) {
    std::string piece;
    if (rng() % 10 == 0) {
      piece = "\n2024-01-" + std::to_string(1 + rng() % 28) + "T" + std::to_string(rng() % 24) +
              ":" + std::to_string(rng() % 60) + " line " + std::to_string(line++) + " ";
    } else {
      piece = std::string(kWords[rng() % std::size(kWords)]) + " ";
    }
    const std::size_t n = std::min(piece.size(), buf.size() - pos);
    std::memcpy(buf.data() + pos, piece.data(), n);
    pos += n;
  }
}

// The concatenation of the regular files of `dir` in name order, capped.
std::string LoadBinaryCorpus(const fs::path& dir, std::uint64_t cap) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file(ec) && !entry.is_symlink(ec)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  std::string corpus;
  for (const auto& path : files) {
    if (corpus.size() >= cap) break;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      const std::size_t size =
          std::min<std::uint64_t>(static_cast<std::uint64_t>(st.st_size), cap - corpus.size());
      const std::size_t start = corpus.size();
      corpus.resize(start + size);
      ReadAll(fd, corpus.data() + start, size, 0);
    }
    ::close(fd);
  }
  return corpus;
}

struct Args {
  std::map<std::string, std::string> values;
  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto it = values.find(name);
    if (it != values.end()) return it->second;
    if (fallback.empty()) Die("missing --" + name);
    return fallback;
  }
};

Args Parse(int argc, char** argv, int first) {
  Args args;
  for (int i = first; i < argc; i += 2) {
    std::string name = argv[i];
    if (!name.starts_with("--") || i + 1 >= argc) Die("bad argument: " + name);
    args.values[name.substr(2)] = argv[i + 1];
  }
  return args;
}

std::uint64_t AllocatedBytes(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) DieErrno("fstat");
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

int Create(const Args& args) {
  const fs::path out = args.Get("out");
  const std::uint64_t size = std::stoull(args.Get("size"));
  const std::uint64_t data = std::stoull(args.Get("data"));
  const std::uint64_t seed = std::stoull(args.Get("seed", "1"));
  const fs::path binary_dir = args.Get("binary-dir", "/usr/bin");
  if (data > size) Die("--data exceeds --size");

  std::mt19937_64 rng(seed);
  const std::string corpus = LoadBinaryCorpus(binary_dir, 256 * kMiB);

  // Extent lengths first (1-24 MiB, 4 KiB aligned) until they cover `data`,
  // then the hole budget is split at random between them.
  std::vector<std::uint64_t> lengths;
  std::uint64_t total = 0;
  while (total < data) {
    std::uint64_t len = (kMiB + rng() % (23 * kMiB)) / (4 * kKiB) * (4 * kKiB);
    len = std::min(len, data - total);
    lengths.push_back(len);
    total += len;
  }
  const std::uint64_t holes = size - total;
  std::vector<std::uint64_t> cuts;
  for (std::size_t i = 0; i < lengths.size(); ++i)
    cuts.push_back(holes == 0 ? 0 : (rng() % holes) / (4 * kKiB) * (4 * kKiB));
  std::sort(cuts.begin(), cuts.end());

  const int fd = ::open(out.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) DieErrno("create " + out.string());
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) DieErrno("ftruncate");

  struct Written {
    std::uint64_t offset, length;
  };
  std::vector<Written> written;
  std::uint64_t offset = 0;
  std::uint64_t previous_cut = 0;
  std::uint64_t by_kind[5] = {};
  std::string buf;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    offset += cuts[i] - previous_cut;
    previous_cut = cuts[i];
    const std::uint64_t len = lengths[i];
    const unsigned roll = static_cast<unsigned>(rng() % 100);
    int kind = roll < 30 ? 0 : roll < 60 ? 1 : roll < 85 ? 2 : roll < 95 ? 3 : 4;
    if (kind == 4 && written.empty()) kind = 0;
    if (kind == 2 && corpus.empty()) kind = 1;
    buf.assign(len, '\0');
    switch (kind) {
      case 0:
        FillRandom(rng, buf);
        break;
      case 1:
        FillText(rng, buf);
        break;
      case 2: {
        std::size_t pos = static_cast<std::size_t>(rng() % corpus.size());
        for (std::size_t done = 0; done < len;) {
          const std::size_t n = std::min<std::size_t>(len - done, corpus.size() - pos);
          std::memcpy(buf.data() + done, corpus.data() + pos, n);
          done += n;
          pos = 0;
        }
        break;
      }
      case 3:
        break;  // zeros, written out
      case 4: {
        const Written& src = written[rng() % written.size()];
        const std::uint64_t n = std::min(len, src.length);
        ReadAll(fd, buf.data(), n, src.offset);
        if (n < len) FillRandom(rng, buf);  // rare: keep the length, vary the tail
        break;
      }
    }
    WriteAll(fd, buf.data(), buf.size(), offset);
    written.push_back({offset, len});
    by_kind[kind] += len;
    offset += len;
  }
  if (::fsync(fd) != 0) DieErrno("fsync");
  std::printf(
      "image %s: apparent %llu bytes, allocated %llu bytes, %zu extents; random %llu, text %llu, "
      "binary %llu, zeros %llu, duplicate %llu bytes\n",
      out.c_str(), static_cast<unsigned long long>(size),
      static_cast<unsigned long long>(AllocatedBytes(fd)), lengths.size(),
      static_cast<unsigned long long>(by_kind[0]), static_cast<unsigned long long>(by_kind[1]),
      static_cast<unsigned long long>(by_kind[2]), static_cast<unsigned long long>(by_kind[3]),
      static_cast<unsigned long long>(by_kind[4]));
  ::close(fd);
  return 0;
}

int Mutate(const Args& args) {
  const fs::path image = args.Get("image");
  const double fraction = std::stod(args.Get("fraction"));
  const std::uint64_t block = std::stoull(args.Get("block", std::to_string(kMiB)));
  const std::uint64_t seed = std::stoull(args.Get("seed", "2"));
  const int fd = ::open(image.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) DieErrno("open " + image.string());
  struct stat st {};
  if (::fstat(fd, &st) != 0) DieErrno("fstat");
  const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  if (block == 0 || block > size) Die("bad --block");
  const std::uint64_t target = static_cast<std::uint64_t>(fraction * static_cast<double>(size));
  std::mt19937_64 rng(seed * 7919 + 17);
  std::string buf(block, '\0');
  std::uint64_t done = 0;
  std::size_t writes = 0;
  while (done < target) {
    const std::uint64_t len = std::min(block, target - done);
    const std::uint64_t offset = (rng() % (size - len + 1)) / (4 * kKiB) * (4 * kKiB);
    buf.resize(len);
    FillRandom(rng, buf);
    WriteAll(fd, buf.data(), len, offset);
    done += len;
    ++writes;
  }
  if (::fsync(fd) != 0) DieErrno("fsync");
  std::printf("mutated %s: %llu bytes in %zu writes of up to %llu bytes; allocated now %llu\n",
              image.c_str(), static_cast<unsigned long long>(done), writes,
              static_cast<unsigned long long>(block),
              static_cast<unsigned long long>(AllocatedBytes(fd)));
  ::close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Die("usage: make_image create|mutate --flag value ...");
  const std::string command = argv[1];
  const Args args = Parse(argc, argv, 2);
  if (command == "create") return Create(args);
  if (command == "mutate") return Mutate(args);
  Die("unknown command " + command);
}
