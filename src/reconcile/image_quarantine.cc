#include "reconcile/image_quarantine.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/ids.h"

namespace kindling::reconcile {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using SysClock = std::chrono::system_clock;

constexpr char kEntryFile[] = "entry.json";
constexpr char kImageFile[] = "image.img";

std::int64_t UnixMs(SysClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
SysClock::time_point FromUnixMs(std::int64_t ms) {
  return SysClock::time_point(std::chrono::milliseconds(ms));
}

json ToJson(const QuarantinedImage& e) {
  json j = {{"id", e.id},
            {"volume_id", e.volume_id},
            {"reason", std::string(db::Name(e.reason))},
            {"detail", e.detail},
            {"size_bytes", e.size_bytes},
            {"allocated_bytes", e.allocated_bytes},
            {"mtime_unix_ms", UnixMs(e.mtime)},
            {"quarantined_unix_ms", UnixMs(e.quarantined_at)},
            {"purge_after_unix_ms", e.purge_after ? json(UnixMs(*e.purge_after)) : json(nullptr)},
            {"image_sha256", e.image_sha256},
            {"digest_chunk_size", e.digest_chunk_size},
            {"adopted_into", e.adopted_into ? json(*e.adopted_into) : json(nullptr)}};
  return j;
}

Result<QuarantinedImage> FromJson(const json& j, const fs::path& entry_dir) {
  try {
    QuarantinedImage e;
    e.id = j.at("id").get<std::string>();
    e.volume_id = j.at("volume_id").get<std::string>();
    auto reason = db::ParseEnum<db::QuarantineReason>(j.at("reason").get<std::string>());
    if (!reason) return Corruption("unknown reason in " + (entry_dir / kEntryFile).string());
    e.reason = *reason;
    e.detail = j.value("detail", "");
    e.image = entry_dir / kImageFile;
    e.size_bytes = j.value("size_bytes", std::uint64_t{0});
    e.allocated_bytes = j.value("allocated_bytes", std::uint64_t{0});
    e.mtime = FromUnixMs(j.value("mtime_unix_ms", std::int64_t{0}));
    e.quarantined_at = FromUnixMs(j.value("quarantined_unix_ms", std::int64_t{0}));
    if (j.contains("purge_after_unix_ms") && j["purge_after_unix_ms"].is_number())
      e.purge_after = FromUnixMs(j["purge_after_unix_ms"].get<std::int64_t>());
    e.image_sha256 = j.value("image_sha256", "");
    e.digest_chunk_size = j.value("digest_chunk_size", std::uint32_t{0});
    if (j.contains("adopted_into") && j["adopted_into"].is_string())
      e.adopted_into = j["adopted_into"].get<std::string>();
    return e;
  } catch (const json::exception& ex) {
    return Corruption("unreadable " + (entry_dir / kEntryFile).string() + ": " + ex.what());
  }
}

}  // namespace

ImageQuarantine::ImageQuarantine(fs::path state_dir) : dir_(std::move(state_dir) / "quarantine") {}

Status ImageQuarantine::WriteEntry(const QuarantinedImage& entry) {
  return WriteFileAtomic(EntryDir(entry.id) / kEntryFile, ToJson(entry).dump(2) + "\n", 0600);
}

Result<QuarantinedImage> ImageQuarantine::ReadEntry(const std::string& id) {
  auto text = ReadFile(EntryDir(id) / kEntryFile);
  if (!text) return std::unexpected(text.error());
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Corruption("unreadable " + (EntryDir(id) / kEntryFile).string());
  return FromJson(j, EntryDir(id));
}

Result<QuarantinedImage> ImageQuarantine::Take(const fs::path& image, const std::string& volume_id,
                                               db::QuarantineReason reason, std::string detail,
                                               std::optional<SysClock::time_point> purge_after) {
  struct stat st {};
  if (::stat(image.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("image " + image.string() + " does not exist");
    return ErrnoError("stat " + image.string(), errno);
  }
  std::error_code ec;
  const bool new_dir = !fs::exists(dir_, ec);
  fs::create_directories(dir_, ec);
  if (ec) return IoError("create " + dir_.string() + ": " + ec.message());
  if (new_dir) KINDLING_RETURN_IF_ERROR(FsyncDirectory(dir_.parent_path()));

  QuarantinedImage entry;
  entry.id = NewUuidV4();
  entry.volume_id = volume_id;
  entry.reason = reason;
  entry.detail = std::move(detail);
  entry.image = EntryDir(entry.id) / kImageFile;
  entry.size_bytes = static_cast<std::uint64_t>(st.st_size);
  entry.allocated_bytes = static_cast<std::uint64_t>(st.st_blocks) * 512;
  entry.mtime = SysClock::time_point(std::chrono::duration_cast<SysClock::duration>(
      std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
  entry.quarantined_at = SysClock::now();
  entry.purge_after = purge_after;

  fs::create_directory(EntryDir(entry.id), ec);
  if (ec) return IoError("create " + EntryDir(entry.id).string() + ": " + ec.message());
  KINDLING_RETURN_IF_ERROR(FsyncDirectory(dir_));
  // The description first: an entry with an image always says what it is.
  KINDLING_RETURN_IF_ERROR(WriteEntry(entry));
  if (auto moved = RenameNoReplaceDurably(image, entry.image); !moved) {
    // Nothing was moved in (or the move is not durable yet: the image then
    // stays in the entry, which List reports).
    if (!fs::exists(entry.image, ec)) fs::remove_all(EntryDir(entry.id), ec);
    return std::unexpected(moved.error());
  }
  return entry;
}

Result<std::vector<QuarantinedImage>> ImageQuarantine::List() {
  std::vector<QuarantinedImage> out;
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return out;
  for (const auto& dirent : fs::directory_iterator(dir_, ec)) {
    const std::string id = dirent.path().filename().string();
    if (!IsUuid(id) || !dirent.is_directory()) continue;
    auto entry = ReadEntry(id);
    if (!entry) continue;  // a Take in progress, or unreadable: kept for an operator
    std::error_code exists_ec;
    const bool has_image = fs::exists(EntryDir(id) / kImageFile, exists_ec);
    // Without an image and not adopted: a Take that has not moved the image
    // in yet (or never will). Deleting it here could delete an image that
    // Take moves in right after the check.
    if (!has_image && !entry->adopted_into) continue;
    out.push_back(std::move(*entry));
  }
  if (ec) return IoError("list " + dir_.string() + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const QuarantinedImage& a, const QuarantinedImage& b) {
    return a.quarantined_at != b.quarantined_at ? a.quarantined_at < b.quarantined_at : a.id < b.id;
  });
  return out;
}

void ImageQuarantine::RemoveInterruptedTakes() {
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return;
  for (const auto& dirent : fs::directory_iterator(dir_, ec)) {
    const std::string id = dirent.path().filename().string();
    if (!IsUuid(id) || !dirent.is_directory()) continue;
    std::error_code entry_ec;
    if (fs::exists(EntryDir(id) / kImageFile, entry_ec)) continue;
    auto entry = ReadEntry(id);
    // An unreadable entry.json is kept for an operator; a missing one, or
    // one without adopted_into, is a Take that never moved the image in.
    if (!entry && !entry.error().is_not_found()) continue;
    if (entry && entry->adopted_into) continue;
    fs::remove_all(EntryDir(id), entry_ec);
  }
}

Result<QuarantinedImage> ImageQuarantine::Get(const std::string& id) {
  if (!IsUuid(id)) return InvalidArgument("quarantine entry id is not a UUID: " + id);
  auto entry = ReadEntry(id);
  if (!entry && entry.error().is_not_found())
    return NotFound("no quarantined image " + id + " on this server");
  return entry;
}

Status ImageQuarantine::SetDigest(const std::string& id, const std::string& digest_hex,
                                  std::uint32_t chunk_size) {
  KINDLING_ASSIGN_OR_RETURN(QuarantinedImage entry, Get(id));
  entry.image_sha256 = digest_hex;
  entry.digest_chunk_size = chunk_size;
  return WriteEntry(entry);
}

Status ImageQuarantine::GiveBack(const std::string& id, const std::string& volume_id,
                                 const fs::path& destination) {
  KINDLING_ASSIGN_OR_RETURN(QuarantinedImage entry, Get(id));
  std::error_code ec;
  const bool has_image = fs::exists(entry.image, ec);
  if (!has_image) {
    if (entry.adopted_into == volume_id && fs::exists(destination, ec)) return OkStatus();
    return NotFound("quarantined image " + id + " has no image any more");
  }
  if (entry.adopted_into && *entry.adopted_into != volume_id)
    return InvalidArgument("quarantined image " + id + " is being adopted by volume " +
                           *entry.adopted_into);
  entry.adopted_into = volume_id;
  KINDLING_RETURN_IF_ERROR(WriteEntry(entry));
  return RenameNoReplaceDurably(entry.image, destination);
}

Status ImageQuarantine::Purge(const std::string& id) {
  if (!IsUuid(id)) return InvalidArgument("quarantine entry id is not a UUID: " + id);
  std::error_code ec;
  fs::remove_all(EntryDir(id), ec);
  if (ec) return IoError("remove " + EntryDir(id).string() + ": " + ec.message());
  return FsyncDirectory(dir_);
}

}  // namespace kindling::reconcile
