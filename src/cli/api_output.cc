#include "cli/api_output.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/output.h"

namespace kindling::cli {
namespace {

using nlohmann::json;

const json& Field(const json& object, const std::string& key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::optional<std::uint64_t> Unsigned(const json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(value.get<std::int64_t>());
  }
  return std::nullopt;
}

std::string BytesCell(const json& value) {
  auto bytes = Unsigned(value);
  return bytes ? FormatBytes(*bytes) : "-";
}

std::string AgeCell(const json& seconds) {
  if (!seconds.is_number()) return "-";
  const double s = seconds.get<double>();
  if (s < 0) return "-";
  char text[32];
  if (s < 120) {
    std::snprintf(text, sizeof text, "%.0fs ago", s);
  } else if (s < 7200) {
    std::snprintf(text, sizeof text, "%.0fm ago", s / 60);
  } else {
    std::snprintf(text, sizeof text, "%.0fh ago", s / 3600);
  }
  return text;
}

std::vector<std::vector<std::string>> Rows(
    const json& items, const std::vector<std::string>& keys,
    const std::vector<std::pair<std::string, std::string (*)(const json&)>>& computed = {}) {
  std::vector<std::vector<std::string>> rows;
  if (!items.is_array()) return rows;
  for (const json& item : items) {
    std::vector<std::string> row;
    for (const auto& key : keys) row.push_back(Cell(item, key));
    for (const auto& [name, fn] : computed) row.push_back(fn(item));
    rows.push_back(std::move(row));
  }
  return rows;
}

// `table` (FormatTable's, one line per row after the header) with
// `details[i]` inserted, indented, after row i.
std::string WithDetails(const std::string& table,
                        const std::vector<std::vector<std::string>>& details) {
  std::string out;
  std::size_t at = 0;
  for (std::size_t line = 0; at < table.size(); ++line) {
    std::size_t end = table.find('\n', at);
    if (end == std::string::npos) end = table.size() - 1;
    out.append(table, at, end + 1 - at);
    at = end + 1;
    if (line == 0 || line - 1 >= details.size()) continue;
    for (const std::string& detail : details[line - 1]) out += "    " + detail + "\n";
  }
  return out;
}

// A string that fits on one line of a table.
std::string OneLine(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return text;
}

std::string Truncate(std::string text, std::size_t width) {
  if (text.size() > width) {
    text.resize(width - 3);
    text += "...";
  }
  return text;
}

}  // namespace

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) widths[i] = header[i].size();
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (std::size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < cells.size() ? cells[i] : "";
      text += cell;
      if (i + 1 < widths.size()) text.append(widths[i] - cell.size() + 2, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
  return out;
}

std::string FormatFields(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::size_t width = 0;
  for (const auto& [label, value] : fields) width = std::max(width, label.size());
  std::string out;
  for (const auto& [label, value] : fields) {
    out += label;
    out.append(width - label.size() + 2, ' ');
    out += value + "\n";
  }
  return out;
}

std::string Cell(const json& object, const std::string& key) {
  const json& value = Field(object, key);
  if (value.is_null()) return "-";
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (text.empty()) return "-";
    // One line; other control characters (ESC: rows written before the
    // API refused them) shown escaped, never sent to the terminal.
    std::string out;
    for (const char ch : text) {
      const auto c = static_cast<unsigned char>(ch);
      if (c == '\n' || c == '\r' || c == '\t') {
        out += ' ';
      } else if (c < 0x20 || c == 0x7F) {
        out += fmt::format("\\x{:02x}", c);
      } else {
        out += ch;
      }
    }
    return out;
  }
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  return DumpJson(value);
}

std::optional<OperationProgress> ProgressOf(const json& operation) {
  const json& progress = Field(operation, "progress");
  const json& phase = Field(progress, "phase");
  if (!phase.is_string()) return std::nullopt;
  OperationProgress out;
  out.phase = phase.get<std::string>();
  out.bytes_done = Unsigned(Field(progress, "bytes_done")).value_or(0);
  out.bytes_total = Unsigned(Field(progress, "bytes_total")).value_or(0);
  return out;
}

std::string ProjectsText(const json& projects) {
  if (!projects.is_array() || projects.empty()) return "no projects\n";
  return FormatTable({"ID", "NAME", "ORGANIZATION", "CREATED"},
                     Rows(projects, {"id", "name", "organization_id", "created_at"}));
}

namespace {

// "<time> (<age> ago, verified ok|damaged|never)", or "-" without one.
std::string LastBackupCell(const json& volume) {
  if (!Field(volume, "last_successful_backup_at").is_string()) return "-";
  std::string out = Cell(volume, "last_successful_backup_at");
  std::string details;
  if (Field(volume, "last_backup_age_seconds").is_number()) {
    details = AgeCell(Field(volume, "last_backup_age_seconds")) + ", ";
  }
  const json& state = Field(volume, "last_backup_verify_state");
  details += "verified " + (state.is_string() ? state.get<std::string>() : std::string("never"));
  return out + " (" + details + ")";
}

}  // namespace

std::string VolumeText(const json& volume) {
  const json& policy = Field(volume, "backup_policy");
  std::string backups = Cell(policy, "schedule");
  if (Field(policy, "cron").is_string()) backups += " \"" + Cell(policy, "cron") + "\"";
  if (Field(policy, "window_start").is_string() || Field(policy, "window_minutes").is_number()) {
    const std::string start =
        Field(policy, "window_start").is_string() ? Cell(policy, "window_start") : "00:00";
    backups += " in " + start + "+" +
               (Field(policy, "window_minutes").is_number() ? Cell(policy, "window_minutes")
                                                            : std::string("60")) +
               "min";
  }
  if (Field(policy, "time_zone").is_string() && Cell(policy, "time_zone") != "UTC") {
    backups += " " + Cell(policy, "time_zone");
  }
  if (auto keep = Unsigned(Field(policy, "retention_count"))) {
    backups += ", keep " + std::to_string(*keep);
  }
  for (const char* rule : {"hourly", "daily", "weekly", "monthly", "yearly"}) {
    if (auto n = Unsigned(Field(policy, std::string("keep_") + rule)); n && *n > 0) {
      backups += " + " + std::to_string(*n) + " " + rule;
    }
  }
  if (Field(policy, "pre_delete_backup_enabled").is_boolean()) {
    backups += ", backup before delete: " + Cell(policy, "pre_delete_backup_enabled");
  }
  std::string size = "-";
  if (auto gb = Unsigned(Field(volume, "size_gb"))) size = std::to_string(*gb) + " GiB";
  std::vector<std::pair<std::string, std::string>> fields = {
      {"volume", Cell(volume, "id")},
      {"project", Cell(volume, "project_id")},
      {"server", Cell(volume, "server_id")},
      {"status", Cell(volume, "status")},
      {"health", Cell(volume, "health")},
      {"size", size},
      {"filesystem", Cell(volume, "filesystem")},
      {"mount path", Cell(volume, "mount_path")},
      {"attached vm", Cell(volume, "attached_vm_id")},
      {"backups", backups},
      {"last backup", LastBackupCell(volume)},
      {"next backup", Cell(volume, "next_backup_at")},
  };
  const json& op = Field(volume, "current_operation");
  if (op.is_object()) {
    fields.emplace_back("operation",
                        Cell(op, "kind") + " " + Cell(op, "status") + " (" + Cell(op, "id") + ")");
  }
  if (!Field(volume, "last_error").is_null())
    fields.emplace_back("last error", Cell(volume, "last_error"));
  return FormatFields(fields);
}

std::vector<std::string> DamageLines(const json& backup) {
  std::vector<std::string> lines;
  const json& chunks = Field(Field(backup, "damage"), "chunks");
  if (!chunks.is_array()) return lines;
  for (const json& chunk : chunks) {
    std::vector<std::uint64_t> offsets;
    const json& listed = Field(chunk, "offsets");
    if (listed.is_array()) {
      for (const json& offset : listed) {
        if (auto value = Unsigned(offset)) offsets.push_back(*value);
      }
    }
    std::string line = Cell(chunk, "problem") + " chunk " + Cell(chunk, "chunk_id");
    if (!offsets.empty()) {
      line += std::string(offsets.size() == 1 ? " at offset " : " at offsets ") +
              FormatOffsets(offsets);
    }
    lines.push_back(OneLine(std::move(line)));
  }
  return lines;
}

namespace {

// Damage lines of every backup, and a closing hint when there were any.
std::string WithDamage(const std::string& table, const json& backups) {
  std::vector<std::vector<std::string>> details;
  std::size_t damaged = 0;
  for (const json& backup : backups) {
    details.push_back(DamageLines(backup));
    if (Field(backup, "status") == "damaged") ++damaged;
  }
  std::string out = WithDetails(table, details);
  if (damaged > 0) {
    out += std::to_string(damaged) +
           " damaged backup(s) cannot be restored: a backup of a volume whose image still holds "
           "those chunks stores them again, which repairs them (kindling volume backup)\n";
  }
  return out;
}

std::string ErrorCell(const json& backup) { return Truncate(OneLine(Cell(backup, "error")), 60); }

// What the backup's last verify found, and when: "ok 2026-...", "-" never.
std::string VerifiedCell(const json& backup) {
  const json& state = Field(backup, "verify_state");
  if (!state.is_string()) return "-";
  return state.get<std::string>() + " " + Cell(backup, "verified_at");
}

}  // namespace

std::string BackupsText(const json& backups) {
  if (!backups.is_array() || backups.empty()) return "no backups\n";
  return WithDamage(
      FormatTable({"ID", "STATUS", "KIND", "PINNED", "SIZE", "CREATED", "COMPLETED", "VERIFIED",
                   "STORE", "ERROR"},
                  Rows(backups, {"id", "status", "kind", "pinned"},
                       {{"size", [](const json& b) { return BytesCell(Field(b, "size_bytes")); }},
                        {"created", [](const json& b) { return Cell(b, "created_at"); }},
                        {"completed", [](const json& b) { return Cell(b, "completed_at"); }},
                        {"verified", VerifiedCell},
                        {"store", [](const json& b) { return Cell(b, "storage_url"); }},
                        {"error", ErrorCell}})),
      backups);
}

std::string BackupText(const json& backup) { return BackupsText(json::array({backup})); }

std::string RetentionText(const json& preview) {
  std::string out = "policy:";
  const json& policy = Field(preview, "policy");
  for (const char* rule :
       {"keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"}) {
    out += std::string(" ") + rule + "=" + Cell(policy, rule);
  }
  out += "\n";
  const json& backups = Field(preview, "backups");
  if (!backups.is_array() || backups.empty()) return out + "no backups\n";
  out += FormatTable({"ID", "KIND", "COMPLETED", "ACTION", "REASONS"},
                     Rows(backups, {"id", "kind"},
                          {{"completed", [](const json& b) { return Cell(b, "completed_at"); }},
                           {"action",
                            [](const json& b) {
                              return std::string(Field(b, "keep") == json(true) ? "keep" : "drop");
                            }},
                           {"reasons", [](const json& b) {
                              std::string reasons;
                              for (const json& r : Field(b, "reasons"))
                                reasons += (reasons.empty() ? "" : ",") + r.get<std::string>();
                              return reasons;
                            }}}));
  out += "kept " + Cell(preview, "kept") + ", would drop " + Cell(preview, "dropped") +
         " (after the next backup)\n";
  return out;
}

std::string ProjectBackupsText(const json& backups) {
  if (!backups.is_array() || backups.empty()) return "no backups\n";
  return WithDamage(
      FormatTable(
          {"ID", "STATUS", "KIND", "PINNED", "VOLUME", "VOLUME DELETED", "SIZE", "CREATED",
           "VERIFIED", "STORE", "ERROR"},
          Rows(backups, {"id", "status", "kind", "pinned", "project_volume_id", "volume_deleted"},
               {{"size", [](const json& b) { return BytesCell(Field(b, "size_bytes")); }},
                {"created", [](const json& b) { return Cell(b, "created_at"); }},
                {"verified", VerifiedCell},
                {"store", [](const json& b) { return Cell(b, "storage_url"); }},
                {"error", ErrorCell}})),
      backups);
}

std::string OperationText(const json& operation) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"operation", Cell(operation, "id")},
      {"kind", Cell(operation, "kind")},
      {"status", Cell(operation, "status")},
      {"project", Cell(operation, "project_id")},
      {"volume", Cell(operation, "project_volume_id")},
      {"server", Cell(operation, "server_id")},
  };
  if (!Field(operation, "target_server_id").is_null()) {
    fields.emplace_back("target server", Cell(operation, "target_server_id"));
  }
  if (!Field(operation, "backup_id").is_null()) {
    fields.emplace_back("backup", Cell(operation, "backup_id"));
  }
  if (auto progress = ProgressOf(operation)) {
    std::string text = progress->phase;
    if (progress->bytes_total > 0) {
      const double percent = 100.0 * static_cast<double>(progress->bytes_done) /
                             static_cast<double>(progress->bytes_total);
      char pct[16];
      std::snprintf(pct, sizeof pct, "%.0f%%", std::floor(percent));
      text += " " + FormatBytes(progress->bytes_done) + " / " + FormatBytes(progress->bytes_total) +
              " (" + pct + ")";
    }
    fields.emplace_back("progress", text);
  }
  fields.emplace_back("attempts", Cell(operation, "attempts"));
  fields.emplace_back("created", Cell(operation, "created_at"));
  fields.emplace_back("started", Cell(operation, "started_at"));
  if (!Field(operation, "completed_at").is_null()) {
    fields.emplace_back("completed", Cell(operation, "completed_at"));
  }
  if (!Field(operation, "failed_at").is_null()) {
    fields.emplace_back("failed", Cell(operation, "failed_at"));
  }
  if (!Field(operation, "error").is_null()) fields.emplace_back("error", Cell(operation, "error"));
  const json& result = Field(operation, "result");
  if (result.is_object()) {
    for (const auto& [key, value] : result.items()) {
      if (key == "problems" && value.is_array()) {
        fields.emplace_back("result.problems", std::to_string(value.size()));
      } else if (key.ends_with("_bytes") && Unsigned(value)) {
        fields.emplace_back("result." + key, FormatBytes(*Unsigned(value)));
      } else {
        fields.emplace_back("result." + key, Cell(result, key));
      }
    }
  }
  return FormatFields(fields);
}

std::string VerifyProblemsText(const json& operation) {
  const json& problems = Field(Field(operation, "result"), "problems");
  if (!problems.is_array()) return "";
  std::string out;
  for (const json& problem : problems) {
    out += OneLine("  " + Cell(problem, "kind") + " chunk " + Cell(problem, "chunk_id") +
                   " at offset " + Cell(problem, "offset") + " (" + Cell(problem, "key") +
                   "): " + Cell(problem, "message")) +
           "\n";
  }
  return out;
}

std::string QueuedText(const json& operation) {
  std::string text = "queued " + Cell(operation, "kind") + ": operation " + Cell(operation, "id");
  if (!Field(operation, "backup_id").is_null()) text += ", backup " + Cell(operation, "backup_id");
  if (!Field(operation, "target_server_id").is_null()) {
    text += ", target server " + Cell(operation, "target_server_id");
  }
  return text + "\n";
}

namespace {

std::string ResourcesCell(const json& deployment) {
  std::string text = "-";
  if (auto mib = Unsigned(Field(deployment, "memory_mib"))) text = std::to_string(*mib) + " MiB";
  if (auto vcpus = Unsigned(Field(deployment, "vcpus"))) {
    text += ", " + std::to_string(*vcpus) + (*vcpus == 1 ? " vCPU" : " vCPUs");
  }
  return text;
}

std::string SecondsCell(const json& value) {
  auto seconds = Unsigned(value);
  return seconds ? std::to_string(*seconds) + "s" : "-";
}

std::string DesiredCell(const json& deployment) {
  std::string text = Cell(deployment, "desired_state");
  if (!Field(deployment, "superseded_at").is_null()) text += " (superseded)";
  return text;
}

// The instance's error, else the deployment's; empty when neither has one.
std::string WorkloadError(const json& deployment) {
  const json& instance = Field(deployment, "instance");
  if (Field(instance, "error").is_string()) return OneLine(Cell(instance, "error"));
  if (Field(deployment, "error").is_string()) return OneLine(Cell(deployment, "error"));
  return "";
}

}  // namespace

std::string DeploymentText(const json& deployment) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"deployment", Cell(deployment, "id")},
      {"project", Cell(deployment, "project_id")},
      {"service", Cell(deployment, "service")},
      {"image", Cell(deployment, "image")},
      {"status", Cell(deployment, "status")},
      {"desired", DesiredCell(deployment)},
      {"hostname", Cell(deployment, "hostname")},
      {"resources", ResourcesCell(deployment)},
      {"timeouts", "boot " + SecondsCell(Field(deployment, "boot_timeout_seconds")) + ", stop " +
                       SecondsCell(Field(deployment, "stop_timeout_seconds"))},
  };
  const json& instance = Field(deployment, "instance");
  if (instance.is_object()) {
    fields.emplace_back("instance", Cell(instance, "id") + " " + Cell(instance, "status"));
    fields.emplace_back("server", Cell(instance, "server_id"));
    fields.emplace_back("address", Cell(instance, "address"));
    if (!Field(instance, "vm_id").is_null()) fields.emplace_back("vm", Cell(instance, "vm_id"));
  } else {
    fields.emplace_back("instance", "-");
  }
  if (const std::string error = WorkloadError(deployment); !error.empty()) {
    fields.emplace_back("error", error);
  }
  fields.emplace_back("created", Cell(deployment, "created_at"));
  return FormatFields(fields);
}

std::string DeploymentsText(const json& deployments) {
  if (!deployments.is_array() || deployments.empty()) return "no deployments\n";
  std::vector<std::vector<std::string>> details;
  for (const json& deployment : deployments) {
    std::vector<std::string> lines;
    if (const std::string error = WorkloadError(deployment); !error.empty()) {
      lines.push_back("error: " + error);
    }
    details.push_back(std::move(lines));
  }
  return WithDetails(
      FormatTable(
          {"ID", "SERVICE", "IMAGE", "STATUS", "DESIRED", "HOSTNAME", "SERVER", "ADDRESS",
           "CREATED"},
          Rows(deployments, {"id", "service", "image", "status"},
               {{"desired", DesiredCell},
                {"hostname", [](const json& d) { return Cell(d, "hostname"); }},
                {"server", [](const json& d) { return Cell(Field(d, "instance"), "server_id"); }},
                {"address", [](const json& d) { return Cell(Field(d, "instance"), "address"); }},
                {"created", [](const json& d) { return Cell(d, "created_at"); }}})),
      details);
}

std::string DeploymentStatusLine(const json& deployment) {
  // Short enough for one terminal line: ids as their first 8 characters
  // (the full deployment id was printed before following).
  auto short_id = [](const json& object, const std::string& key) {
    return Cell(object, key).substr(0, 8);
  };
  std::string line = Cell(deployment, "service") + " (" + Cell(deployment, "image") +
                     "): " + Cell(deployment, "status");
  const json& instance = Field(deployment, "instance");
  if (instance.is_object()) {
    line +=
        "; instance " + Cell(instance, "status") + " on server " + short_id(instance, "server_id");
    if (!Field(instance, "address").is_null()) line += " at " + Cell(instance, "address");
  }
  return OneLine(std::move(line));
}

std::string ServersText(const json& servers) {
  if (!servers.is_array() || servers.empty()) return "no servers\n";
  return FormatTable(
      {"ID", "HOSTNAME", "STATUS", "HEALTH", "HEARTBEAT", "RUNTIME", "COMPONENTS"},
      Rows(servers, {"id", "hostname", "status", "health"},
           {{"heartbeat", [](const json& s) { return AgeCell(Field(s, "heartbeat_age_seconds")); }},
            {"runtime", [](const json& s) { return Cell(s, "runtime"); }},
            {"components", [](const json& s) {
               std::string text;
               const json& list = Field(s, "enabled_components");
               if (list.is_array()) {
                 for (const json& c : list) {
                   if (!c.is_string()) continue;
                   if (!text.empty()) text += ",";
                   text += c.get<std::string>();
                 }
               }
               return text.empty() ? std::string("-") : text;
             }}}));
}

std::string AuditText(const json& events) {
  if (!events.is_array() || events.empty()) return "no audit events\n";
  return FormatTable(
      {"CREATED", "ACTION", "RESOURCE", "USER", "DETAILS"},
      Rows(events, {"created_at", "action"},
           {{"resource",
             [](const json& e) { return Cell(e, "resource_type") + " " + Cell(e, "resource_id"); }},
            {"user", [](const json& e) { return Cell(e, "user_id"); }},
            {"details", [](const json& e) { return Truncate(Cell(e, "details"), 80); }}}));
}

std::string BackupSettingsText(const json& settings) {
  std::string configured = Cell(settings, "configured");
  if (!Field(settings, "missing_reason").is_null()) {
    configured += " (" + Cell(settings, "missing_reason") + ")";
  }
  std::vector<std::pair<std::string, std::string>> fields = {
      {"storage url", Cell(settings, "storage_url")},
      {"configured", configured},
      {"s3 bucket", Cell(settings, "s3_bucket")},
      {"s3 region", Cell(settings, "s3_region")},
      {"s3 endpoint", Cell(settings, "s3_endpoint")},
      {"s3 prefix", Cell(settings, "s3_prefix")},
      {"s3 access key id", Cell(settings, "s3_access_key_id")},
      {"s3 secret access key", Cell(settings, "s3_secret_access_key")},
      {"local directory", Cell(settings, "local_directory")},
  };
  const json& store = Field(settings, "store");
  if (store.is_object()) {
    fields.emplace_back("store", Field(store, "ready") == true
                                     ? std::string("ready")
                                     : "not ready: " + Cell(store, "error"));
  }
  return FormatFields(fields);
}

std::string ProbeText(const json& probe) {
  if (Field(probe, "ok") == true) {
    return "ok: wrote, read and deleted a probe object at " + Cell(probe, "storage_url") + "\n";
  }
  return "failed at step " + Cell(probe, "step") + " (" + Cell(probe, "storage_url") +
         "): " + Cell(probe, "error") + "\n";
}

std::string ApiKeysText(const json& keys) {
  if (!keys.is_array() || keys.empty()) return "no API keys\n";
  return FormatTable(
      {"ID", "NAME", "PREFIX", "CREATED", "LAST USED", "REVOKED"},
      Rows(keys, {"id", "name", "key_prefix", "created_at", "last_used_at", "revoked_at"}));
}

std::string QuarantineText(const json& entries) {
  if (!entries.is_array() || entries.empty()) return "no quarantined images\n";
  std::vector<std::vector<std::string>> details;
  for (const json& entry : entries) {
    std::vector<std::string> lines;
    if (Field(entry, "status") == "held" && !Field(entry, "detail").is_null()) {
      lines.push_back(OneLine(Cell(entry, "detail")));
    }
    details.push_back(std::move(lines));
  }
  return WithDetails(
      FormatTable(
          {"ID", "REASON", "STATUS", "VOLUME", "SERVER", "SIZE", "ALLOCATED", "QUARANTINED",
           "PURGE AFTER"},
          Rows(entries, {"id", "reason", "status", "project_volume_id", "server_id"},
               {{"size", [](const json& e) { return BytesCell(Field(e, "size_bytes")); }},
                {"allocated", [](const json& e) { return BytesCell(Field(e, "allocated_bytes")); }},
                {"quarantined", [](const json& e) { return Cell(e, "quarantined_at"); }},
                {"purge after", [](const json& e) { return Cell(e, "purge_after"); }}})),
      details);
}

std::string PurgeRequestedText(const json& entry) {
  return "purge requested: quarantined image " + Cell(entry, "id") + " of volume " +
         Cell(entry, "project_volume_id") + " on server " + Cell(entry, "server_id") +
         " is deleted by that worker on its next pass (purge after " + Cell(entry, "purge_after") +
         ")\n";
}

std::string RescanText(const json& report) {
  const json empty = json::array();
  const json& imported = Field(report, "imported").is_array() ? Field(report, "imported") : empty;
  const json& orphaned = Field(report, "orphaned").is_array() ? Field(report, "orphaned") : empty;
  const json& unreadable =
      Field(report, "unreadable").is_array() ? Field(report, "unreadable") : empty;
  std::string out;
  if (!imported.empty()) {
    out += "imported:\n";
    out +=
        FormatTable({"BACKUP", "VOLUME", "PROJECT", "SIZE", "CREATED", "STORE", "NOTE"},
                    Rows(imported, {"backup_id", "volume_id", "project_id"},
                         {{"size", [](const json& b) { return BytesCell(Field(b, "size_bytes")); }},
                          {"created", [](const json& b) { return Cell(b, "created_at"); }},
                          {"store", [](const json& b) { return Cell(b, "storage_url"); }},
                          {"note", [](const json& b) {
                             std::string note;
                             if (Field(b, "recovered") == true) note = "was failed";
                             if (Field(b, "volume_deleted") == true)
                               note += std::string(note.empty() ? "" : ", ") + "volume deleted";
                             return note.empty() ? std::string("-") : note;
                           }}}));
  }
  if (!orphaned.empty()) {
    out +=
        "orphans (volume unknown; assign with: kindling admin backups assign BACKUP "
        "--project ID):\n";
    out += OrphansText(orphaned);
  }
  if (!unreadable.empty()) {
    out += "could not read:\n";
    for (const json& p : unreadable) {
      out += "  " + Cell(p, "storage_url");
      if (!Field(p, "key").is_null()) out += " " + Cell(p, "key");
      out += ": " + OneLine(Cell(p, "error")) + "\n";
    }
  }
  std::size_t new_orphans = 0;
  for (const json& o : orphaned)
    if (Field(o, "first_found") == true) ++new_orphans;
  const std::size_t stores =
      Field(report, "stores").is_array() ? Field(report, "stores").size() : 0;
  out += "scanned " + std::to_string(stores) + " store(s), " + Cell(report, "manifests") +
         " backup(s): " + std::to_string(imported.size()) + " imported, " +
         std::to_string(orphaned.size()) + " orphan(s) (" + std::to_string(new_orphans) +
         " new), " + std::to_string(unreadable.size()) + " unreadable, " + Cell(report, "known") +
         " already known\n";
  return out;
}

std::string OrphansText(const json& orphans) {
  if (!orphans.is_array() || orphans.empty()) return "no orphan backups\n";
  return FormatTable(
      {"BACKUP", "VOLUME", "SIZE", "CREATED", "STORE", "ASSIGNED TO"},
      Rows(orphans, {"backup_id", "volume_id"},
           {{"size", [](const json& o) { return BytesCell(Field(o, "size_bytes")); }},
            {"created", [](const json& o) { return Cell(o, "backup_created_at"); }},
            {"store", [](const json& o) { return Cell(o, "storage_url"); }},
            {"assigned", [](const json& o) {
               if (!Field(o, "assigned_project_id").is_null())
                 return Cell(o, "assigned_project_id");
               return Field(o, "assignable") == false ? std::string("- (ids not UUIDs)")
                                                      : std::string("-");
             }}}));
}

std::string AssignedText(const json& assigned) {
  const json& backup = Field(assigned, "backup");
  return "backup " + Cell(backup, "id") + " now belongs to project " +
         Cell(assigned, "project_id") + " (volume " + Cell(assigned, "volume_id") +
         (Field(assigned, "volume_created") == true ? ", recorded as a deleted volume" : "") +
         "); restore it with: kindling volume restore --project " + Cell(assigned, "project_id") +
         " --backup " + Cell(backup, "id") + "\n";
}

std::string BackupStoresText(const json& stores, const std::string& current_url) {
  if (!stores.is_array() || stores.empty()) return "no backup stores used yet\n";
  std::vector<std::vector<std::string>> rows;
  for (const json& store : stores) {
    const std::string url = Cell(store, "storage_url");
    rows.push_back({url, !current_url.empty() && url == current_url ? "yes" : "no",
                    Cell(store, "created_at"), Cell(store, "updated_at")});
  }
  return FormatTable({"STORAGE URL", "CURRENT", "CREATED", "UPDATED"}, rows);
}

std::string UsersText(const json& users) {
  if (!users.is_array() || users.empty()) return "no users\n";
  return FormatTable({"ID", "EMAIL", "NAME", "PLATFORM ADMIN", "CREATED"},
                     Rows(users, {"id", "email", "name", "is_platform_admin", "created_at"}));
}

std::string UserText(const json& user) { return UsersText(json::array({user})); }

std::string OrganizationsText(const json& orgs) {
  if (!orgs.is_array() || orgs.empty()) return "no organisations\n";
  return FormatTable({"ID", "NAME", "CREATED"}, Rows(orgs, {"id", "name", "created_at"}));
}

std::string OrganizationText(const json& org) { return OrganizationsText(json::array({org})); }

std::string MembersText(const json& members) {
  if (!members.is_array() || members.empty()) return "no members\n";
  return FormatTable({"USER", "EMAIL", "NAME", "ROLE", "SINCE"},
                     Rows(members, {"user_id", "email", "name", "role", "created_at"}));
}

std::string MemberText(const json& member) { return MembersText(json::array({member})); }

std::string RevokedKeyText(const json& key) {
  return "revoked API key " + Cell(key, "id") + ": it is refused from now on\n";
}

std::string RemovedMemberText(const json& member) {
  return "removed user " + Cell(member, "user_id") + " from organisation " +
         Cell(member, "organization_id") + "\n";
}

}  // namespace kindling::cli
