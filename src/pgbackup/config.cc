#include "pgbackup/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <map>

#include "common/hex.h"
#include "crypto/kdf.h"

namespace kindling::pgbackup {
namespace {

namespace fs = std::filesystem;

bool SafePathCharacter(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("/._+:@,=-").find(c) != std::string_view::npos;
}

Status CheckPath(std::string_view what, const fs::path& path, bool required = true) {
  const std::string text = path.string();
  if (text.empty()) {
    if (required) return InvalidArgument(std::string(what) + " is not set");
    return OkStatus();
  }
  if (!path.is_absolute())
    return InvalidArgument(std::string(what) + " must be an absolute path, got " + text);
  if (!std::all_of(text.begin(), text.end(), SafePathCharacter))
    return InvalidArgument(std::string(what) + " " + text +
                           " has characters pgBackRest's configuration or archive_command "
                           "cannot carry (allowed: letters, digits and /._+:@,=-)");
  return OkStatus();
}

Status CheckValue(std::string_view what, std::string_view value) {
  if (value.find_first_of("\r\n") != std::string_view::npos)
    return InvalidArgument(std::string(what) + " must be one line");
  if (!value.empty() && (std::isspace(static_cast<unsigned char>(value.front())) ||
                         std::isspace(static_cast<unsigned char>(value.back()))))
    return InvalidArgument(std::string(what) + " must not start or end with spaces");
  return OkStatus();
}

// host and port of an S3 endpoint ("https://host:port", "host:port", "host").
struct Endpoint {
  std::string host;
  int port = 0;  // 0: pgBackRest's default (443)
};

Result<Endpoint> ParseEndpoint(std::string_view text) {
  if (text.starts_with("http://"))
    return InvalidArgument("pgBackRest reaches S3 over HTTPS only; the endpoint " +
                           std::string(text) + " is plain HTTP");
  if (text.starts_with("https://")) text.remove_prefix(8);
  while (text.ends_with("/")) text.remove_suffix(1);
  if (text.empty() || text.find('/') != std::string_view::npos)
    return InvalidArgument("bad S3 endpoint '" + std::string(text) + "': want host[:port]");
  Endpoint endpoint;
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    endpoint.host = std::string(text);
    return endpoint;
  }
  endpoint.host = std::string(text.substr(0, colon));
  const std::string_view port = text.substr(colon + 1);
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), endpoint.port);
  if (ec != std::errc() || end != port.data() + port.size() || endpoint.port < 1 ||
      endpoint.port > 65535 || endpoint.host.empty())
    return InvalidArgument("bad S3 endpoint port in '" + std::string(text) + "'");
  return endpoint;
}

std::string Seconds(std::chrono::seconds s) { return std::to_string(s.count()); }

int DigitsValue(std::string_view text) {
  int value = 0;
  for (const char c : text) value = value * 10 + (c - '0');
  return value;
}

bool AllDigits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
}

}  // namespace

Secret RepositoryPassphrase(const crypto::Key& master_key) {
  crypto::Key derived = crypto::DeriveKey(master_key, crypto::kControlPlaneBackupPurpose);
  const WipeOnExit wipe(derived);
  return Secret(HexEncode(crypto::KeyBytes(derived)));
}

Status Validate(const ClusterConfig& config) {
  KINDLING_RETURN_IF_ERROR(CheckPath("the configuration file", config.config_file));
  KINDLING_RETURN_IF_ERROR(CheckPath("the pgbackrest binary", config.binary));
  KINDLING_RETURN_IF_ERROR(CheckPath("the data directory", config.data_dir));
  KINDLING_RETURN_IF_ERROR(CheckPath("the socket directory", config.socket_dir));
  KINDLING_RETURN_IF_ERROR(CheckPath("the spool directory", config.spool_dir));
  KINDLING_RETURN_IF_ERROR(CheckPath("the log directory", config.log_dir));
  KINDLING_RETURN_IF_ERROR(CheckPath("the lock directory", config.lock_dir));
  if (config.stanza.empty() || !std::all_of(config.stanza.begin(), config.stanza.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      }))
    return InvalidArgument("bad stanza name '" + config.stanza + "'");
  if (config.port < 1 || config.port > 65535)
    return InvalidArgument("bad PostgreSQL port " + std::to_string(config.port));
  const Repository& repo = config.repository;
  KINDLING_RETURN_IF_ERROR(
      CheckPath(repo.s3 ? "the repository path in the bucket" : "the repository", repo.path));
  if (repo.retention_full < 1) return InvalidArgument("repository retention must be at least 1");
  if (repo.s3) {
    const S3Repository& s3 = *repo.s3;
    if (s3.bucket.empty() || s3.endpoint.empty() || s3.region.empty())
      return InvalidArgument("an S3 repository needs a bucket, an endpoint and a region");
    if (s3.key.empty() || s3.key_secret.empty())
      return InvalidArgument(
          "an S3 repository needs an access key and its secret (from the environment or a file)");
    for (const auto& [what, value] :
         {std::pair<std::string_view, std::string_view>{"the bucket", s3.bucket},
          {"the endpoint", s3.endpoint},
          {"the region", s3.region},
          {"the access key", s3.key},
          {"the secret key", s3.key_secret.Reveal()}})
      KINDLING_RETURN_IF_ERROR(CheckValue(what, value));
    KINDLING_RETURN_IF_ERROR(ParseEndpoint(s3.endpoint));
    if (s3.uri_style != "host" && s3.uri_style != "path")
      return InvalidArgument("the S3 URI style is host or path, got " + s3.uri_style);
    KINDLING_RETURN_IF_ERROR(CheckPath("the CA file", s3.ca_file, /*required=*/false));
  }
  const std::string_view passphrase = config.cipher_passphrase.Reveal();
  if (passphrase.size() < 32 ||
      passphrase.find_first_not_of("0123456789abcdef") != std::string::npos)
    return InvalidArgument("the repository passphrase must be RepositoryPassphrase()'s hex");
  KINDLING_RETURN_IF_ERROR(CheckValue("archive-push-queue-max", config.archive_push_queue_max));
  if (config.process_max < 1) return InvalidArgument("process-max must be at least 1");
  if (config.db_timeout.count() < 1 || config.io_timeout.count() < 1 ||
      config.archive_timeout.count() < 1 || config.wal_switch_interval.count() < 1)
    return InvalidArgument("timeouts must be at least a second");
  return OkStatus();
}

Secret RenderConfig(const ClusterConfig& config) {
  const Repository& repo = config.repository;
  // Built in one string (no stream buffer left behind holding the secrets),
  // reserved up front for the longest file (eight paths of PATH_MAX) so that
  // growing it leaves no freed copies either.
  std::string out;
  out.reserve(64 * 1024);
  auto line = [&out](std::string_view key, std::string_view value) {
    out.append(key).append("=").append(value).append("\n");
  };
  out +=
      "# Written by `kindling admin control-plane configure` (mode 0640, owned by the\n"
      "# PostgreSQL user): run it again rather than editing this file. PostgreSQL's\n"
      "# side (wal_level, archive_mode, archive_command, archive_timeout) is in the\n"
      "# data directory's postgresql.auto.conf. This file is not in any backup: the\n"
      "# repository passphrase is derived from the cluster master key.\n"
      "[global]\n";
  if (repo.s3) {
    const S3Repository& s3 = *repo.s3;
    const Endpoint endpoint = *ParseEndpoint(s3.endpoint);
    line("repo1-type", "s3");
    line("repo1-s3-bucket", s3.bucket);
    line("repo1-s3-endpoint", endpoint.host);
    line("repo1-s3-region", s3.region);
    line("repo1-s3-key", s3.key);
    line("repo1-s3-key-secret", s3.key_secret.Reveal());
    line("repo1-s3-uri-style", s3.uri_style);
    if (endpoint.port != 0) line("repo1-storage-port", std::to_string(endpoint.port));
    if (!s3.verify_tls) line("repo1-storage-verify-tls", "n");
    if (!s3.ca_file.empty()) line("repo1-storage-ca-file", s3.ca_file.string());
  }
  line("repo1-path", repo.path.string());
  line("repo1-retention-full", std::to_string(repo.retention_full));
  line("repo1-cipher-type", "aes-256-cbc");
  line("repo1-cipher-pass", config.cipher_passphrase.Reveal());
  line("compress-type", "zst");
  line("process-max", std::to_string(config.process_max));
  line("start-fast", "y");
  line("archive-async", "y");
  line("spool-path", config.spool_dir.string());
  line("archive-push-queue-max", config.archive_push_queue_max);
  line("archive-timeout", Seconds(config.archive_timeout));
  line("io-timeout", Seconds(config.io_timeout));
  line("db-timeout", Seconds(config.db_timeout));
  line("protocol-timeout", Seconds(config.db_timeout + std::chrono::seconds(30)));
  line("lock-path", config.lock_dir.string());
  line("log-path", config.log_dir.string());
  line("log-level-console", "warn");
  line("log-level-file", "info");
  out.append("\n[").append(config.stanza).append("]\n");
  line("pg1-path", config.data_dir.string());
  line("pg1-socket-path", config.socket_dir.string());
  line("pg1-port", std::to_string(config.port));
  return Secret(std::move(out));
}

Result<ClusterConfig> ParseConfig(std::string_view text, const fs::path& config_file) {
  // section -> key -> value; the values (secrets among them) are wiped on
  // every way out. Lines are views into `text`: no other copy is made.
  using Sections = std::map<std::string, std::map<std::string, std::string>>;
  Sections sections;
  struct WipeValues {
    Sections& sections;
    ~WipeValues() {
      for (auto& [name, values] : sections)
        for (auto& [key, value] : values) WipeString(value);
    }
  } const wipe{sections};
  std::string section;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
      line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = std::string(line.substr(1, line.size() - 2));
      sections[section];
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    sections[section][std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  ClusterConfig config;
  config.config_file = config_file;
  const auto& global = sections["global"];
  std::string stanza;
  for (const auto& [name, values] : sections)
    if (name != "global" && name != "" && values.contains("pg1-path")) stanza = name;
  if (stanza.empty())
    return InvalidArgument(config_file.string() + " has no stanza with a pg1-path");
  config.stanza = stanza;
  const auto& pg = sections[stanza];
  auto get = [&](const std::string& key) -> std::string {
    if (auto it = pg.find(key); it != pg.end()) return it->second;
    if (auto it = global.find(key); it != global.end()) return it->second;
    return "";
  };
  config.data_dir = get("pg1-path");
  config.socket_dir = get("pg1-socket-path");
  if (const std::string port = get("pg1-port"); AllDigits(port)) config.port = DigitsValue(port);
  config.spool_dir = get("spool-path");
  config.log_dir = get("log-path");
  config.lock_dir = get("lock-path");
  config.repository.path = get("repo1-path");
  if (get("repo1-type") == "s3") {
    S3Repository s3;
    s3.bucket = get("repo1-s3-bucket");
    s3.endpoint = get("repo1-s3-endpoint");
    if (const std::string port = get("repo1-storage-port"); !port.empty())
      s3.endpoint += ":" + port;
    s3.region = get("repo1-s3-region");
    s3.uri_style = get("repo1-s3-uri-style").empty() ? "host" : get("repo1-s3-uri-style");
    s3.key = get("repo1-s3-key");
    s3.key_secret = Secret(get("repo1-s3-key-secret"));
    s3.verify_tls = get("repo1-storage-verify-tls") != "n";
    s3.ca_file = get("repo1-storage-ca-file");
    config.repository.s3 = std::move(s3);
  }
  if (const std::string keep = get("repo1-retention-full"); AllDigits(keep))
    config.repository.retention_full = DigitsValue(keep);
  if (config.socket_dir.empty()) config.socket_dir = "/var/run/postgresql";
  return config;
}

std::string ArchiveCommand(const ClusterConfig& config) {
  return config.binary.string() + " --config=" + config.config_file.string() +
         " --stanza=" + config.stanza + " archive-push %p";
}

std::vector<std::pair<std::string, std::string>> ServerSettings(const ClusterConfig& config,
                                                                bool archiving) {
  std::vector<std::pair<std::string, std::string>> settings = {{"wal_level", "logical"}};
  if (archiving) {
    settings.emplace_back("archive_mode", "on");
    settings.emplace_back("archive_command", ArchiveCommand(config));
    settings.emplace_back("archive_timeout", Seconds(config.wal_switch_interval));
  }
  return settings;
}

std::string DescribeRepository(const Repository& repository) {
  if (!repository.s3) return repository.path.string();
  std::string prefix = repository.path.string();
  if (prefix == "/") prefix.clear();
  return "s3://" + repository.s3->bucket + prefix + " (" + repository.s3->endpoint + ")";
}

Result<RecoveryTarget> ParseRecoveryTarget(std::string_view rfc3339) {
  const std::string text(rfc3339);
  auto bad = [&] {
    return InvalidArgument("'" + text +
                           "' is not an RFC 3339 time such as 2025-01-31T12:00:00Z or "
                           "2025-01-31T13:00:00.250+01:00");
  };
  // YYYY-MM-DDTHH:MM:SS
  if (text.size() < 20) return bad();
  auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    if (at + n > text.size()) return std::nullopt;
    const std::string_view part(text.data() + at, n);
    if (!AllDigits(part)) return std::nullopt;
    return DigitsValue(part);
  };
  const auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2);
  const auto hour = digits(11, 2), minute = digits(14, 2), second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || text[13] != ':' || text[16] != ':')
    return bad();
  std::size_t at = 19;
  int millis = 0;
  if (at < text.size() && text[at] == '.') {
    ++at;
    int scale = 100;
    const std::size_t start = at;
    while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) {
      millis += (text[at] - '0') * scale;
      scale /= 10;
      ++at;
    }
    if (at == start) return bad();
  }
  if (at >= text.size()) return bad();  // RFC 3339 requires an offset
  int offset_minutes = 0;
  if (text[at] == 'Z' || text[at] == 'z') {
    ++at;
  } else if (text[at] == '+' || text[at] == '-') {
    const int sign = text[at] == '-' ? -1 : 1;
    const auto off_hour = digits(at + 1, 2), off_minute = digits(at + 4, 2);
    if (!off_hour || !off_minute || text[at + 3] != ':' || *off_hour > 23 || *off_minute > 59)
      return bad();
    offset_minutes = sign * (*off_hour * 60 + *off_minute);
    at += 6;
  } else {
    return bad();
  }
  if (at != text.size()) return bad();
  using namespace std::chrono;
  const year_month_day date{std::chrono::year(*year),
                            std::chrono::month(static_cast<unsigned>(*month)),
                            std::chrono::day(static_cast<unsigned>(*day))};
  if (!date.ok() || *hour > 23 || *minute > 59 || *second > 59) return bad();
  const sys_time<milliseconds> utc = sys_days(date) + hours(*hour) + minutes(*minute) +
                                     seconds(*second) + milliseconds(millis) -
                                     minutes(offset_minutes);
  const sys_days utc_day = floor<days>(utc);
  const year_month_day utc_date(utc_day);
  const hh_mm_ss<milliseconds> clock(utc - utc_day);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02u %02lld:%02lld:%02lld.%03lld+00",
                static_cast<int>(utc_date.year()), static_cast<unsigned>(utc_date.month()),
                static_cast<unsigned>(utc_date.day()),
                static_cast<long long>(clock.hours().count()),
                static_cast<long long>(clock.minutes().count()),
                static_cast<long long>(clock.seconds().count()),
                static_cast<long long>(clock.subseconds().count()));
  RecoveryTarget target{buffer, utc, ""};
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<int>(utc_date.year()), static_cast<unsigned>(utc_date.month()),
                static_cast<unsigned>(utc_date.day()),
                static_cast<long long>(clock.hours().count()),
                static_cast<long long>(clock.minutes().count()),
                static_cast<long long>(clock.seconds().count()),
                static_cast<long long>(clock.subseconds().count()));
  target.rfc3339 = buffer;
  return target;
}

}  // namespace kindling::pgbackup
