// Garbage collection of a store: deletes the chunks no manifest references,
// safely while backups run on the store from any number of hosts.
//
// The protocol (docs/store-format.md, "Garbage collection", has the argument):
// - A backup holds a writer marker (`kindling-store/writers/<backup_id>`,
//   WriterMarker below) from before it learns which chunks exist (earlier
//   manifests, HEADs) until its manifest is written. It writes the marker,
//   then looks for the sweep marker (`kindling-store/gc/sweep`); when that is
//   present it withdraws its marker and waits for the sweep to end.
// - A collection takes the collector lock (`kindling-store/gc/lock`,
//   created only if absent: one collection per store at a time), reads every
//   manifest (the mark: the live chunk ids, held as a sorted array of 32-byte
//   ids), then writes the sweep marker and waits until no writer marker is
//   left. From then on no backup runs: it reads the manifests written since
//   the mark, and deletes every chunk (and damage record) no manifest
//   references, checking before each shard of 1/256 of the chunk keys that it
//   still holds the sweep and that no writer appeared.
// - Writer marker then sweep check on one side, sweep marker then writer
//   listing on the other: whichever comes second sees the other (the store is
//   strongly consistent: a local directory; S3 since 2020). So no backup
//   relies on a chunk it saw while a sweep deletes it, whatever the grace.
// - Liveness: both markers are rewritten every refresh interval. A marker
//   whose content has not changed for `stale_after`, as measured by the one
//   watching it (no clocks compared across hosts), belongs to a process that
//   died: a collection deletes such writer markers, backups ignore such a
//   sweep, and the next collection takes such a lock over. A crashed
//   collection leaves a consistent store (it only ever deleted unreferenced
//   chunks); the next one redoes the mark and finishes the sweep.
//
// Memory: 32 bytes per live chunk id (plus the ids of one manifest and the
// keys of one shard listing at a time), whatever the stored bytes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "engine/progress.h"
#include "engine/repository.h"

namespace kindling::engine {

// Timing of the markers. Tests shorten it; the defaults suit production.
struct GcTiming {
  // A marker unchanged this long (seen by its watcher) is a dead process's.
  std::chrono::milliseconds stale_after{std::chrono::minutes(10)};
  // How often a live process rewrites its marker (well under stale_after).
  std::chrono::milliseconds refresh_every{std::chrono::seconds(30)};
  // How often a waiter looks again.
  std::chrono::milliseconds poll_every{std::chrono::seconds(1)};
  // Seams (defaults: steady_clock::now and this_thread::sleep_for), so that
  // tests advance a fake clock instead of sleeping. The refresh thread runs
  // on real time.
  std::function<std::chrono::steady_clock::time_point()> now;
  std::function<void(std::chrono::milliseconds)> sleep;
};

struct GcOptions {
  // Unreferenced chunks written less than this long ago (by the store's
  // clock: the object's modification time) are kept: a backup that failed a
  // moment ago will likely reuse them on its retry. Safety does not depend
  // on it (the markers above).
  std::chrono::seconds grace{0};
  // Report what would be deleted, delete nothing, take no marker.
  bool dry_run = false;
  // How long the sweep waits for running backups to finish before it gives
  // up (kFailedPrecondition; nothing deleted yet). 0: no limit.
  std::chrono::milliseconds max_wait{std::chrono::hours(6)};
  GcTiming timing;
  const CancelFlag* cancel = nullptr;
  // Called with a line of news (phase changes, waits) for logs.
  std::function<void(const std::string&)> log;
};

struct GcReport {
  std::uint64_t manifests = 0;        // backups whose chunks were kept
  std::uint64_t live_chunks = 0;      // distinct chunk ids they reference
  std::uint64_t chunks_examined = 0;  // chunk objects listed
  std::uint64_t chunks_deleted = 0;   // (dry run: that would be)
  std::uint64_t bytes_deleted = 0;    // their stored sizes
  std::uint64_t chunks_in_grace = 0;  // unreferenced but kept for the grace
  std::uint64_t bytes_in_grace = 0;
  std::uint64_t bytes_kept = 0;  // stored sizes of the chunks kept
  std::uint64_t damage_records_deleted = 0;
  std::uint64_t stale_writers_removed = 0;  // markers of dead backups
  bool took_over_stale_lock = false;
  bool dry_run = false;
  std::uint64_t duration_ms = 0;
};

// Every field of `report` by its name (as `kindling store gc --json` prints
// it and the audit trail records it).
nlohmann::json GcReportJson(const GcReport& report);

// Runs one collection. kAlreadyExists when another collection holds the
// lock (it changed while watched: not stale); kFailedPrecondition when
// backups kept running past max_wait or another collection took the lock
// over; kCorruption when a manifest cannot be read (nothing is deleted: its
// chunks would be); kCancelled; the store's errors. A failure after the sweep
// began leaves the store consistent (the counts are then lost).
[[nodiscard]] Result<GcReport> CollectGarbage(const Repository& repository,
                                              const GcOptions& options);

// The marker a backup holds while it may rely on chunks existing (see the
// file comment). Acquire writes it once no sweep runs (waiting for one to
// end), and keeps it fresh from a thread of its own; the destructor deletes
// it. Thread-safe.
class WriterMarker {
 public:
  // Waits (polling; cancellable) while a sweep that is not stale holds the
  // store, holding no marker meanwhile (so that the sweep can proceed).
  // kCancelled, or the store's errors.
  [[nodiscard]] static Result<std::unique_ptr<WriterMarker>> Acquire(
      const Repository& repository, std::string backup_id, const GcTiming& timing = {},
      const CancelFlag* cancel = nullptr);
  ~WriterMarker();
  WriterMarker(const WriterMarker&) = delete;
  WriterMarker& operator=(const WriterMarker&) = delete;

  // Just before the commit: kFailedPrecondition when a collection removed the marker
  // as stale (this process stalled past stale_after), since a sweep may then
  // have deleted chunks this backup relies on; the backup must not commit.
  [[nodiscard]] Status CheckHeld() const;

  struct State;

 private:
  explicit WriterMarker(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

// The object keys of the protocol (relative to the store's prefix).
std::string WriterMarkerKey(std::string_view backup_id);
inline constexpr std::string_view kWriterMarkersPrefix = "kindling-store/writers/";
inline constexpr std::string_view kGcLockKey = "kindling-store/gc/lock";
inline constexpr std::string_view kGcSweepKey = "kindling-store/gc/sweep";

}  // namespace kindling::engine
