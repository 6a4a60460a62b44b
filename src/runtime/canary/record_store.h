// RecordStore: the canary's records on the guest's volume, one file each,
// every one carrying the SHA-256 of its body, so that a later boot can tell
// whether what the volume kept (through stop, backup, restore, move) is intact.
//
// Layout of `dir`: "<id>.rec" for each record, the id 16 decimal digits
// (1, 2, 3, ...); a file is the header line
//   "kindling-canary-record v1 sha256=<64 hex> size=<bytes>\n"
// followed by the body. A record is written to ".tmp-<id>", fsynced, renamed
// to its name and the directory fsynced before Add returns: an acknowledged
// record survives a crash or power cut of the guest. Temp files a crash left
// behind are not records; Open removes them.
//
// Thread-safety: Add and Verify may be called from several threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/canary/verify_report.h"
#include "common/result.h"

namespace kindling::canary {

// The file name of record `id`: "0000000000000042.rec".
std::string RecordFileName(std::uint64_t id);

// The header + body of a record file.
std::string EncodeRecord(std::string_view body);
// The body of a record file; kCorruption when the header is malformed, the
// size differs or the checksum does not match.
[[nodiscard]] Result<std::string> DecodeRecord(std::string_view file_content);

// Checks every record in `dir` without changing anything. A missing `dir`
// holds no records.
[[nodiscard]] Result<VerifyReport> VerifyRecordDir(const std::filesystem::path& dir);

class RecordStore {
 public:
  // Creates `dir` if needed, removes stale temp files and finds the next id.
  [[nodiscard]] static Result<RecordStore> Open(const std::filesystem::path& dir);

  RecordStore(RecordStore&& other) noexcept;
  RecordStore& operator=(RecordStore&&) = delete;

  // Stores `body` durably; its id.
  [[nodiscard]] Result<std::uint64_t> Add(std::string_view body);
  // Reads back every record (VerifyRecordDir).
  [[nodiscard]] Result<VerifyReport> Verify() const;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  RecordStore(std::filesystem::path dir, std::uint64_t next_id)
      : dir_(std::move(dir)), next_id_(next_id) {}

  std::filesystem::path dir_;
  mutable std::mutex mutex_;
  std::uint64_t next_id_;  // guarded by mutex_
};

}  // namespace kindling::canary
