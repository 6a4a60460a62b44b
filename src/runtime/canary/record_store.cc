#include "runtime/canary/record_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <system_error>

#include "common/files.h"
#include "common/hex.h"

namespace kindling::canary {
namespace {

constexpr std::string_view kHeaderStart = "kindling-canary-record v1 sha256=";
constexpr std::string_view kSizeField = " size=";
constexpr std::string_view kRecordSuffix = ".rec";
constexpr std::string_view kTempPrefix = ".tmp-";
constexpr std::size_t kIdDigits = 16;

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  // EVP_Digest fails only when OpenSSL cannot allocate; the empty result
  // then matches no record, which reads as damage rather than passing.
  if (EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr) != 1) return {};
  return HexEncode({reinterpret_cast<const char*>(digest), size});
}

// The id of a record file name, or nullopt for anything else.
std::optional<std::uint64_t> RecordIdOf(std::string_view name) {
  if (name.size() != kIdDigits + kRecordSuffix.size() || !name.ends_with(kRecordSuffix))
    return std::nullopt;
  std::uint64_t id = 0;
  const char* end = name.data() + kIdDigits;
  auto [ptr, ec] = std::from_chars(name.data(), end, id);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return id;
}

Result<std::vector<std::uint64_t>> ListRecordIds(const std::filesystem::path& dir) {
  std::vector<std::uint64_t> ids;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec == std::errc::no_such_file_or_directory) return ids;
  if (ec) return IoError("list " + dir.string() + ": " + ec.message());
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (auto id = RecordIdOf(it->path().filename().string())) ids.push_back(*id);
  }
  if (ec) return IoError("list " + dir.string() + ": " + ec.message());
  std::sort(ids.begin(), ids.end());
  return ids;
}

Status WriteAll(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write " + path.string(), errno);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return OkStatus();
}

}  // namespace

std::string RecordFileName(std::uint64_t id) {
  char name[32];
  std::snprintf(name, sizeof name, "%016llu", static_cast<unsigned long long>(id));
  return std::string(name) + std::string(kRecordSuffix);
}

std::string EncodeRecord(std::string_view body) {
  std::string out(kHeaderStart);
  out += Sha256Hex(body);
  out += kSizeField;
  out += std::to_string(body.size());
  out += '\n';
  out += body;
  return out;
}

Result<std::string> DecodeRecord(std::string_view content) {
  const std::size_t newline = content.find('\n');
  if (newline == std::string_view::npos || !content.starts_with(kHeaderStart))
    return Corruption("record header missing");
  std::string_view header = content.substr(kHeaderStart.size(), newline - kHeaderStart.size());
  const std::string_view body = content.substr(newline + 1);
  const std::size_t size_at = header.find(kSizeField);
  if (size_at == std::string_view::npos) return Corruption("record header lacks a size");
  const std::string_view checksum = header.substr(0, size_at);
  const std::string_view size_text = header.substr(size_at + kSizeField.size());
  std::uint64_t size = 0;
  auto [ptr, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size);
  if (ec != std::errc() || ptr != size_text.data() + size_text.size())
    return Corruption("record header has a malformed size");
  if (size != body.size())
    return Corruption("record body is " + std::to_string(body.size()) + " bytes, header says " +
                      std::to_string(size));
  if (Sha256Hex(body) != checksum) return Corruption("record checksum mismatch");
  return std::string(body);
}

Result<VerifyReport> VerifyRecordDir(const std::filesystem::path& dir) {
  KINDLING_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, ListRecordIds(dir));
  VerifyReport report;
  for (std::uint64_t id : ids) {
    ++report.records;
    auto content = ReadFile(dir / RecordFileName(id));
    if (content && DecodeRecord(*content)) {
      ++report.intact;
    } else {
      report.damaged.push_back(id);
    }
  }
  return report;
}

Result<RecordStore> RecordStore::Open(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return IoError("create " + dir.string() + ": " + ec.message());
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().starts_with(kTempPrefix)) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
  KINDLING_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, ListRecordIds(dir));
  return RecordStore(dir, ids.empty() ? 1 : ids.back() + 1);
}

RecordStore::RecordStore(RecordStore&& other) noexcept
    : dir_(std::move(other.dir_)), next_id_(other.next_id_) {}

Result<std::uint64_t> RecordStore::Add(std::string_view body) {
  const std::lock_guard lock(mutex_);
  const std::uint64_t id = next_id_;
  const std::string content = EncodeRecord(body);
  const std::filesystem::path temp = dir_ / (std::string(kTempPrefix) + std::to_string(id));
  const std::filesystem::path final_path = dir_ / RecordFileName(id);
  {
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoError("create " + temp.string(), errno);
    auto fail = [&](std::string_view what, int err) {
      ::unlink(temp.c_str());
      return ErrnoError(std::string(what) + " " + temp.string(), err);
    };
    if (auto st = WriteAll(fd.get(), content, temp); !st) {
      ::unlink(temp.c_str());
      return std::unexpected(st.error());
    }
    if (::fsync(fd.get()) != 0) return fail("fsync", errno);
    if (::close(fd.Release()) != 0) return fail("close", errno);
  }
  if (::rename(temp.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return ErrnoError("rename " + temp.string(), err);
  }
  // The name is taken from here on, even if the fsync below fails.
  ++next_id_;
  KINDLING_RETURN_IF_ERROR(FsyncDirectory(dir_));
  return id;
}

Result<VerifyReport> RecordStore::Verify() const { return VerifyRecordDir(dir_); }

}  // namespace kindling::canary
