#include "engine/damage.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "engine/repository.h"
#include "repo/chunk_codec.h"

namespace kindling::engine {
namespace {

using nlohmann::json;

// Keeps records small whatever a message says.
constexpr std::size_t kMaxMessage = 400;

std::uint64_t NowUnixMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::optional<DamageProblem> ParseProblem(std::string_view name) {
  if (name == "missing") return DamageProblem::kMissing;
  if (name == "corrupt") return DamageProblem::kCorrupt;
  return std::nullopt;
}

}  // namespace

std::string_view DamageProblemName(DamageProblem problem) {
  switch (problem) {
    case DamageProblem::kMissing:
      return "missing";
    case DamageProblem::kCorrupt:
      return "corrupt";
  }
  return "unknown";
}

std::string EncodeDamageRecord(const DamageRecord& record) {
  const json document = {
      {"chunk_id", crypto::DigestHex(record.chunk_id)},
      {"problem", std::string(DamageProblemName(record.problem))},
      {"detected_unix_ms", record.detected_unix_ms},
      {"message", record.message.substr(0, kMaxMessage)},
      {"volume_id", record.volume_id},
      {"backup_id", record.backup_id},
  };
  return document.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<DamageRecord> DecodeDamageRecord(std::string_view document, const repo::ChunkId& id) {
  const std::string key = repo::DamagedChunkKey(id);
  const json parsed = json::parse(document, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object())
    return Corruption(key + " is not a JSON object");
  auto text = [&](const char* name) -> std::optional<std::string> {
    const auto it = parsed.find(name);
    if (it == parsed.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  DamageRecord record;
  record.chunk_id = id;
  const auto chunk_id = text("chunk_id");
  if (!chunk_id || *chunk_id != crypto::DigestHex(id))
    return Corruption(key + " does not name its own chunk");
  const auto problem = text("problem");
  const auto parsed_problem = problem ? ParseProblem(*problem) : std::nullopt;
  if (!parsed_problem) return Corruption(key + " has no valid problem");
  record.problem = *parsed_problem;
  const auto detected = parsed.find("detected_unix_ms");
  if (detected == parsed.end() || !detected->is_number_unsigned())
    return Corruption(key + " has no valid detected_unix_ms");
  record.detected_unix_ms = detected->get<std::uint64_t>();
  record.message = text("message").value_or("");
  record.volume_id = text("volume_id").value_or("");
  record.backup_id = text("backup_id").value_or("");
  return record;
}

Status WriteDamageRecord(const Repository& repository, const DamageRecord& record) {
  const std::string key = repo::DamagedChunkKey(record.chunk_id);
  auto put = repository.store().Put(key, EncodeDamageRecord(record));
  if (!put) return std::unexpected(put.error().WithContext("write " + key));
  return OkStatus();
}

Result<std::optional<DamageRecord>> RecordChunkDamage(const Repository& repository,
                                                      const repo::ChunkId& id,
                                                      std::string_view volume_id,
                                                      std::string_view backup_id) {
  DamageRecord record;
  record.chunk_id = id;
  record.volume_id = std::string(volume_id);
  record.backup_id = std::string(backup_id);
  // The second look: a backup that found the chunk recorded, or that simply
  // wrote it, may have replaced the object since the caller's fetch.
  const std::string key = repo::ChunkKey(id);
  auto object = repository.store().Get(key);
  if (!object) {
    if (!object.error().is_not_found())
      return std::unexpected(object.error().WithContext("read " + key + " again"));
    record.problem = DamageProblem::kMissing;
    record.message = "chunk " + crypto::DigestHex(id) + " is missing from the store (" + key + ")";
  } else {
    repo::ChunkCodec codec(repository.keys(), 1);
    std::string plaintext;
    auto decoded = codec.Decode(*object, id, plaintext);
    if (decoded) return std::nullopt;
    if (!decoded.error().is_corruption()) return std::unexpected(decoded.error());
    record.problem = DamageProblem::kCorrupt;
    record.message = decoded.error().message();
  }
  record.detected_unix_ms = NowUnixMs();
  KINDLING_RETURN_IF_ERROR(WriteDamageRecord(repository, record));
  return record;
}

void RecordChunkDamageOrWarn(const Repository& repository, const repo::ChunkId& id,
                             std::string_view volume_id, std::string_view backup_id) {
  auto recorded = RecordChunkDamage(repository, id, volume_id, backup_id);
  if (!recorded) {
    spdlog::warn("chunk {} looks damaged but could not be recorded as such: {}",
                 crypto::DigestHex(id), recorded.error().message());
  } else if (*recorded) {
    spdlog::info("chunk {} is {}: recorded in {}", crypto::DigestHex(id),
                 DamageProblemName((*recorded)->problem), repo::DamagedChunkKey(id));
  } else {
    spdlog::info("chunk {} is sound when read again (stored again meanwhile): not recorded",
                 crypto::DigestHex(id));
  }
}

Result<std::vector<repo::ChunkId>> ListDamagedChunks(const Repository& repository) {
  auto objects = repository.store().List(repo::kDamagedChunksPrefix);
  if (!objects)
    return std::unexpected(
        objects.error().WithContext("list " + std::string(repo::kDamagedChunksPrefix)));
  std::vector<repo::ChunkId> ids;
  for (const auto& object : *objects)
    if (auto id = repo::ParseDamagedChunkKey(object.key)) ids.push_back(*id);
  return ids;
}

Result<DamageMap> LoadDamage(const Repository& repository) {
  KINDLING_ASSIGN_OR_RETURN(std::vector<repo::ChunkId> ids, ListDamagedChunks(repository));
  DamageMap damage;
  for (const repo::ChunkId& id : ids) {
    const std::string key = repo::DamagedChunkKey(id);
    auto document = repository.store().Get(key);
    if (!document) {
      if (document.error().is_not_found()) continue;  // healed since the List
      return std::unexpected(document.error().WithContext("read " + key));
    }
    auto record = DecodeDamageRecord(*document, id);
    if (!record) {
      DamageRecord unreadable;
      unreadable.chunk_id = id;
      unreadable.problem = DamageProblem::kCorrupt;
      unreadable.message = record.error().message();
      damage.emplace(id, std::move(unreadable));
      continue;
    }
    damage.emplace(id, std::move(*record));
  }
  return damage;
}

Status ClearDamage(const Repository& repository, const repo::ChunkId& id) {
  const std::string key = repo::DamagedChunkKey(id);
  auto deleted = repository.store().Delete(key);
  if (!deleted) return std::unexpected(deleted.error().WithContext("delete " + key));
  return OkStatus();
}

std::vector<DamagedChunkUse> DamagedChunksOf(const repo::Manifest& manifest,
                                             const DamageMap& damage) {
  std::vector<DamagedChunkUse> uses;
  if (damage.empty()) return uses;
  std::map<repo::ChunkId, std::size_t> position;
  for (std::size_t i = 0; i < manifest.chunks.size(); ++i) {
    const repo::ChunkRef& chunk = manifest.chunks[i];
    if (chunk.is_hole) continue;
    const auto record = damage.find(chunk.id);
    if (record == damage.end()) continue;
    auto [it, inserted] = position.emplace(chunk.id, uses.size());
    if (inserted)
      uses.push_back(DamagedChunkUse{crypto::DigestHex(chunk.id), record->second.problem, {}});
    uses[it->second].offsets.push_back(manifest.ChunkOffset(i));
  }
  return uses;  // slots are visited in image order: first offsets ascend
}

Result<std::vector<BackupDamage>> FindDamagedBackups(const Repository& repository,
                                                     std::optional<std::string_view> volume_id) {
  KINDLING_ASSIGN_OR_RETURN(DamageMap damage, LoadDamage(repository));
  std::vector<BackupDamage> found;
  if (damage.empty()) return found;
  const std::string prefix =
      volume_id ? repo::VolumeBackupsPrefix(*volume_id) : std::string(repo::kVolumesPrefix);
  KINDLING_ASSIGN_OR_RETURN(auto objects, repository.store().List(prefix));
  for (const auto& object : objects) {
    auto name = repo::ParseManifestKey(object.key);
    if (!name) continue;
    KINDLING_ASSIGN_OR_RETURN(repo::Manifest manifest,
                              repository.LoadManifest(name->volume_id, name->backup_id));
    std::vector<DamagedChunkUse> uses = DamagedChunksOf(manifest, damage);
    if (uses.empty()) continue;
    found.push_back(BackupDamage{name->volume_id, name->backup_id, std::move(uses)});
  }
  return found;
}

}  // namespace kindling::engine
