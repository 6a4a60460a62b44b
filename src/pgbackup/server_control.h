// ServerControl: the PostgreSQL server whose data directory pgBackRest backs
// up and restores: start, stop, and how to connect to it as a superuser.
// service/ implements it for the clusters kindling runs itself (`kindling
// dev`, restore drills) and for a host's cluster driven through pg_ctl;
// tests may supply their own.
//
// Thread-safety: one caller at a time.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kindling::pgbackup {

class ServerControl {
 public:
  virtual ~ServerControl() = default;

  virtual const std::filesystem::path& data_dir() const = 0;
  // True while a server runs on data_dir.
  [[nodiscard]] virtual bool Running() = 0;
  // Starts the server and waits until it accepts connections (a restored
  // cluster may still be replaying WAL then). No-op when running.
  [[nodiscard]] virtual Status Start() = 0;
  // Fast shutdown (sessions are cut), waiting for it. No-op when stopped.
  [[nodiscard]] virtual Status Stop() = 0;
  // Applies settings that need a restart (wal_level, archive_mode).
  [[nodiscard]] virtual Status Restart() {
    KINDLING_RETURN_IF_ERROR(Stop());
    return Start();
  }
  // A libpq DSN for `database` as a superuser.
  virtual std::string Dsn(std::string_view database) const = 0;
  // The end of the server's log, for error messages.
  virtual std::string LogTail() const = 0;
};

}  // namespace kindling::pgbackup
