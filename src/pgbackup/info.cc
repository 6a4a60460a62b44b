#include "pgbackup/info.h"

#include <nlohmann/json.hpp>

namespace kindling::pgbackup {
namespace {

using nlohmann::json;

// Reads `object[key]` as T when present and of the right kind.
template <typename T>
T Get(const json& object, const char* key, T fallback = T()) {
  if (!object.is_object()) return fallback;
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    return fallback;
  }
}

const json& Child(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

}  // namespace

const BackupSet* StanzaInfo::NewestStoppedBy(std::int64_t unix_seconds) const {
  for (auto it = backups.rbegin(); it != backups.rend(); ++it)
    if (it->stop_time <= unix_seconds) return &*it;
  return nullptr;
}

std::string StanzaInfo::Problem() const {
  if (ok()) return "";
  std::string problem =
      status_message.empty() ? "status " + std::to_string(status_code) : status_message;
  if (!repo_message.empty() && repo_message != status_message) problem += ": " + repo_message;
  return problem;
}

Result<StanzaInfo> ParseInfo(std::string_view text, std::string_view stanza) {
  json document;
  try {
    document = json::parse(text);
  } catch (const json::exception& e) {
    return InternalError(std::string("pgbackrest info printed no JSON: ") + e.what());
  }
  if (!document.is_array())
    return InternalError("pgbackrest info printed JSON that is not a list of stanzas");
  StanzaInfo info;
  info.name = std::string(stanza);
  const json* entry = nullptr;
  for (const json& candidate : document)
    if (Get<std::string>(candidate, "name") == stanza) entry = &candidate;
  if (entry == nullptr) {
    info.status_code = kStanzaMissing;
    info.status_message = "missing stanza";
    return info;
  }
  const json& status = Child(*entry, "status");
  if (!status.is_object() || !status.contains("code"))
    return InternalError("pgbackrest info: stanza " + info.name + " has no status code");
  info.status_code = Get<int>(status, "code", kOtherError);
  info.status_message = Get<std::string>(status, "message");
  info.backup_running = Get<bool>(Child(Child(status, "lock"), "backup"), "held");
  for (const json& repo : Child(*entry, "repo")) {
    const json& repo_status = Child(repo, "status");
    if (Get<int>(repo_status, "code") != kStanzaOk && info.repo_message.empty())
      info.repo_message = Get<std::string>(repo_status, "message");
  }
  // The archive of the newest database (the last one listed).
  const json& archives = Child(*entry, "archive");
  if (archives.is_array() && !archives.empty()) {
    const json& archive = archives.back();
    if (auto min = Get<std::string>(archive, "min"); !min.empty()) info.wal_min = min;
    if (auto max = Get<std::string>(archive, "max"); !max.empty()) info.wal_max = max;
  }
  for (const json& backup : Child(*entry, "backup")) {
    BackupSet set;
    set.label = Get<std::string>(backup, "label");
    set.type = Get<std::string>(backup, "type");
    const json& timestamp = Child(backup, "timestamp");
    set.start_time = Get<std::int64_t>(timestamp, "start");
    set.stop_time = Get<std::int64_t>(timestamp, "stop");
    const json& sizes = Child(backup, "info");
    set.size = Get<std::uint64_t>(sizes, "size");
    set.delta = Get<std::uint64_t>(sizes, "delta");
    set.repo_size = Get<std::uint64_t>(Child(sizes, "repository"), "size");
    set.repo_delta = Get<std::uint64_t>(Child(sizes, "repository"), "delta");
    set.wal_start = Get<std::string>(Child(backup, "archive"), "start");
    set.wal_stop = Get<std::string>(Child(backup, "archive"), "stop");
    set.error = Get<bool>(backup, "error");
    if (set.label.empty())
      return InternalError("pgbackrest info: a backup of stanza " + info.name + " has no label");
    info.backups.push_back(std::move(set));
  }
  return info;
}

}  // namespace kindling::pgbackup
