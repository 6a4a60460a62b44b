#include "engine/gc.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <utility>

#include "common/hex.h"
#include "common/ids.h"
#include "repo/layout.h"

namespace kindling::engine {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

GcTiming Complete(GcTiming t) {
  if (!t.now) t.now = [] { return Clock::now(); };
  if (!t.sleep) t.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  return t;
}

std::string Hostname() {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  return host;
}

// A marker's content: who holds it, and a sequence number that every
// refresh increases, so that a watcher sees a live holder's marker change.
std::string MarkerContent(std::string_view kind, std::string_view holder, std::uint64_t seq) {
  return json{{"kind", kind},
              {"holder", holder},
              {"host", Hostname()},
              {"pid", ::getpid()},
              {"seq", seq},
              {"written_unix_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count()}}
      .dump();
}

// The holder named in a marker's content ("" when it cannot be parsed).
std::string MarkerHolder(std::string_view content) {
  const json parsed = json::parse(content, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || !parsed.contains("holder") || !parsed["holder"].is_string()) return "";
  return parsed["holder"].get<std::string>();
}

// Decides staleness by watching: a marker whose content has not changed for
// stale_after since this watcher first saw that content. No clocks compared
// across hosts.
class StaleWatch {
 public:
  explicit StaleWatch(const GcTiming& timing) : timing_(timing) {}
  bool Stale(const std::string& key, const std::string& content) {
    const Clock::time_point now = timing_.now();
    auto [it, inserted] = seen_.try_emplace(key, content, now);
    if (!inserted && it->second.first != content) it->second = {content, now};
    return now - it->second.second >= timing_.stale_after;
  }
  void Forget(const std::string& key) { seen_.erase(key); }

 private:
  const GcTiming& timing_;
  std::map<std::string, std::pair<std::string, Clock::time_point>> seen_;
};

// Rewrites a marker every refresh interval from a thread of its own, until
// stopped or until the marker is found held by another holder (taken over
// as stale). With `only_if_present`, a marker found gone is not written
// again either: a collection removed it as stale. Either way lost() turns
// true.
class Refresher {
 public:
  Refresher(storage::ObjectStore& store, std::string key, std::string kind, std::string holder,
            std::chrono::milliseconds every, bool only_if_present)
      : store_(store),
        key_(std::move(key)),
        kind_(std::move(kind)),
        holder_(std::move(holder)),
        every_(every),
        only_if_present_(only_if_present),
        thread_([this] { Run(); }) {}
  ~Refresher() { Stop(); }
  Refresher(const Refresher&) = delete;
  Refresher& operator=(const Refresher&) = delete;

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool lost() const { return lost_.load(); }

 private:
  void Run() {
    std::uint64_t seq = 1;
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, every_, [this] { return stop_; })) {
      lock.unlock();
      // Never over someone else's marker (a successor took this one over as
      // stale), nor, with only_if_present, over a removed one. (A read, then
      // a write: the window between them is the store's round trip.)
      auto current = store_.Get(key_);
      if ((!current && current.error().is_not_found() && only_if_present_) ||
          (current && MarkerHolder(*current) != holder_)) {
        lost_ = true;
        return;
      }
      // A failed refresh is retried at the next tick; a holder that cannot
      // reach the store for stale_after loses its marker.
      (void)store_.Put(key_, MarkerContent(kind_, holder_, seq++));
      lock.lock();
    }
  }

  storage::ObjectStore& store_;
  const std::string key_, kind_, holder_;
  const std::chrono::milliseconds every_;
  const bool only_if_present_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> lost_{false};
  std::thread thread_;  // last: starts once the rest is built
};

// The live set: distinct chunk ids, sorted. Memory: 32 bytes per id (twice
// that for a moment while a manifest's new ids are merged in).
class LiveSet {
 public:
  void AddManifest(const repo::Manifest& manifest) {
    std::vector<repo::ChunkId> fresh;
    for (const repo::ChunkRef& c : manifest.chunks) {
      if (!c.is_hole && !Contains(c.id)) fresh.push_back(c.id);
    }
    if (fresh.empty()) return;
    std::sort(fresh.begin(), fresh.end());
    fresh.erase(std::unique(fresh.begin(), fresh.end()), fresh.end());
    std::vector<repo::ChunkId> merged;
    merged.reserve(ids_.size() + fresh.size());
    std::merge(ids_.begin(), ids_.end(), fresh.begin(), fresh.end(), std::back_inserter(merged));
    ids_ = std::move(merged);
  }
  bool Contains(const repo::ChunkId& id) const {
    return std::binary_search(ids_.begin(), ids_.end(), id);
  }
  std::size_t size() const { return ids_.size(); }

 private:
  std::vector<repo::ChunkId> ids_;
};

class Collector {
 public:
  Collector(const Repository& repository, const GcOptions& options)
      : repository_(repository),
        store_(repository.store()),
        options_(options),
        timing_(Complete(options.timing)),
        watch_(timing_),
        holder_(NewUuidV4()) {
    report_.dry_run = options.dry_run;
  }

  Result<GcReport> Run() {
    const Clock::time_point started = timing_.now();
    if (!options_.dry_run) KINDLING_RETURN_IF_ERROR(TakeLock());
    Status result = Collect();
    sweep_refresher_.reset();
    lock_refresher_.reset();
    if (!options_.dry_run) {
      // Released on failure too: what was deleted was unreferenced, and the
      // next collection starts over. Only while still this collection's: one
      // that stalled past the stale time and was taken over must not remove
      // its successor's markers (nor one that saw it was: its refresher may
      // have written over the successor's marker since).
      if (!taken_over_) {
        if (sweeping_) ReleaseIfOurs(kGcSweepKey);
        ReleaseIfOurs(kGcLockKey);
      }
    }
    if (!result) return std::unexpected(result.error());
    report_.duration_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(timing_.now() - started).count());
    return report_;
  }

 private:
  void Log(const std::string& line) const {
    if (options_.log) options_.log(line);
  }
  void ReleaseIfOurs(std::string_view key) {
    auto content = store_.Get(key);
    if (content && MarkerHolder(*content) == holder_) (void)store_.Delete(key);
  }
  Status CheckCancel() const {
    if (options_.cancel != nullptr && options_.cancel->load()) return Cancelled();
    return OkStatus();
  }

  // The collector lock: created only if absent; a lock that stays unchanged
  // for stale_after is a dead collection's and is taken over.
  Status TakeLock() {
    for (;;) {
      KINDLING_RETURN_IF_ERROR(CheckCancel());
      auto put = store_.PutIfAbsent(kGcLockKey, MarkerContent("gc-lock", holder_, 0));
      if (put) break;
      if (put.error().kind() != ErrorKind::kAlreadyExists) return put;
      auto content = store_.Get(kGcLockKey);
      if (!content) {
        if (content.error().is_not_found()) continue;  // released meanwhile
        return std::unexpected(content.error());
      }
      if (first_lock_content_.empty()) {
        first_lock_content_ = *content;
        Log("another garbage collection holds " + std::string(kGcLockKey) + "; watching it for " +
            std::to_string(timing_.stale_after.count()) + " ms to tell whether it is alive");
      } else if (*content != first_lock_content_) {
        // Its holder refreshes it: alive.
        return MakeError(ErrorKind::kAlreadyExists,
                         "another garbage collection is running on this store: " + *content);
      }
      if (!watch_.Stale(std::string(kGcLockKey), *content)) {
        timing_.sleep(timing_.poll_every);
        continue;
      }
      Log("taking over the lock of a garbage collection that stopped: " + *content);
      report_.took_over_stale_lock = true;
      KINDLING_RETURN_IF_ERROR(store_.Delete(kGcLockKey));
      // A dead collection's sweep marker would hold backups back for nothing.
      KINDLING_RETURN_IF_ERROR(store_.Delete(kGcSweepKey));
    }
    lock_refresher_ = std::make_unique<Refresher>(store_, std::string(kGcLockKey), "gc-lock",
                                                  holder_, timing_.refresh_every,
                                                  /*only_if_present=*/false);
    return OkStatus();
  }
  // Reads every manifest not read yet into the live set. Any manifest that
  // cannot be read stops the collection: its chunks would look unreferenced.
  Status Mark() {
    KINDLING_ASSIGN_OR_RETURN(auto objects, store_.List(repo::kVolumesPrefix));
    for (const storage::ObjectInfo& object : objects) {
      KINDLING_RETURN_IF_ERROR(CheckCancel());
      auto name = repo::ParseManifestKey(object.key);
      if (!name || !manifests_read_.insert(object.key).second) continue;
      auto manifest = repository_.LoadManifest(name->volume_id, name->backup_id);
      if (!manifest) {
        if (manifest.error().is_not_found()) continue;  // deleted since the listing
        return MakeError(manifest.error().kind(),
                         "garbage collection stopped, nothing more deleted: manifest " +
                             object.key + " cannot be read (" + manifest.error().message() +
                             "); the chunks it references would look unreferenced");
      }
      live_.AddManifest(*manifest);
    }
    report_.manifests = manifests_read_.size();
    report_.live_chunks = live_.size();
    return OkStatus();
  }

  // Waits until no live writer marker is left; removes dead ones.
  Status WaitForWriters() {
    const Clock::time_point since = timing_.now();
    bool announced = false;
    for (;;) {
      KINDLING_RETURN_IF_ERROR(CheckCancel());
      KINDLING_ASSIGN_OR_RETURN(auto writers, store_.List(kWriterMarkersPrefix));
      std::size_t live = 0;
      for (const storage::ObjectInfo& writer : writers) {
        auto content = store_.Get(writer.key);
        if (!content) {
          if (content.error().is_not_found()) continue;
          return std::unexpected(content.error());
        }
        if (watch_.Stale(writer.key, *content)) {
          Log("removing the marker of a backup that stopped: " + writer.key);
          KINDLING_RETURN_IF_ERROR(store_.Delete(writer.key));
          watch_.Forget(writer.key);
          report_.stale_writers_removed++;
          continue;
        }
        ++live;
      }
      if (live == 0) return OkStatus();
      if (!announced) {
        Log("waiting for " + std::to_string(live) + " running backup(s) to finish");
        announced = true;
      }
      if (options_.max_wait.count() > 0 && timing_.now() - since >= options_.max_wait) {
        return MakeError(ErrorKind::kFailedPrecondition,
                         "backups kept running for longer than the collection waits (" +
                             std::to_string(options_.max_wait.count()) +
                             " ms); nothing was deleted since, run it again later");
      }
      timing_.sleep(timing_.poll_every);
    }
  }

  // Before each shard: the sweep marker is still this collection's, and no
  // backup runs (one that took the marker for stale, or a writer about to
  // withdraw: wait for it, then read the manifests written meanwhile).
  Status HoldSweep() {
    auto content = store_.Get(kGcSweepKey);
    if (!content || MarkerHolder(*content) != holder_) {
      taken_over_ = true;
      return MakeError(ErrorKind::kFailedPrecondition,
                       "garbage collection stopped: another collection took its sweep over "
                       "(this one stalled for longer than the markers' stale time)");
    }
    KINDLING_ASSIGN_OR_RETURN(auto writers, store_.List(kWriterMarkersPrefix));
    if (writers.empty()) return OkStatus();
    KINDLING_RETURN_IF_ERROR(WaitForWriters());
    return Mark();
  }

  Status SweepShard(std::string_view prefix, bool sweep) {
    KINDLING_ASSIGN_OR_RETURN(auto objects, store_.List(prefix));
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    const auto grace_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.grace).count();
    for (const storage::ObjectInfo& object : objects) {
      const std::string_view key = object.key;
      auto id = repo::ParseChunkIdHex(key.substr(key.rfind('/') + 1));
      if (!id || repo::ChunkKey(*id) != key) continue;  // not a chunk of this format
      report_.chunks_examined++;
      if (live_.Contains(*id)) {
        report_.bytes_kept += object.size;
        continue;
      }
      if (grace_ms > 0 && object.modified_unix_ms > now_ms - grace_ms) {
        report_.chunks_in_grace++;
        report_.bytes_in_grace += object.size;
        report_.bytes_kept += object.size;
        continue;
      }
      if (sweep) KINDLING_RETURN_IF_ERROR(store_.Delete(key));
      report_.chunks_deleted++;
      report_.bytes_deleted += object.size;
    }
    return OkStatus();
  }

  // Damage records of chunks no backup references are moot.
  Status SweepDamageRecords(bool sweep) {
    KINDLING_ASSIGN_OR_RETURN(auto records, store_.List(repo::kDamagedChunksPrefix));
    for (const storage::ObjectInfo& record : records) {
      auto id = repo::ParseDamagedChunkKey(record.key);
      if (!id || live_.Contains(*id)) continue;
      if (sweep) KINDLING_RETURN_IF_ERROR(store_.Delete(record.key));
      report_.damage_records_deleted++;
    }
    return OkStatus();
  }

  Status Collect() {
    Log("mark: reading every manifest");
    KINDLING_RETURN_IF_ERROR(Mark());
    const bool sweep = !options_.dry_run;
    if (sweep) {
      KINDLING_RETURN_IF_ERROR(store_.Put(kGcSweepKey, MarkerContent("gc-sweep", holder_, 0)));
      sweeping_ = true;
      sweep_refresher_ = std::make_unique<Refresher>(store_, std::string(kGcSweepKey), "gc-sweep",
                                                     holder_, timing_.refresh_every,
                                                     /*only_if_present=*/false);
      KINDLING_RETURN_IF_ERROR(WaitForWriters());
      // Backups that finished between the mark and now.
      KINDLING_RETURN_IF_ERROR(Mark());
    }
    Log("sweep: " + std::to_string(live_.size()) + " live chunks in " +
        std::to_string(report_.manifests) + " backups");
    KINDLING_RETURN_IF_ERROR(SweepDamageRecords(sweep));
    for (int shard = 0; shard < 256; ++shard) {
      KINDLING_RETURN_IF_ERROR(CheckCancel());
      if (sweep) KINDLING_RETURN_IF_ERROR(HoldSweep());
      const std::uint8_t byte = static_cast<std::uint8_t>(shard);
      KINDLING_RETURN_IF_ERROR(SweepShard(
          "chunks/" + HexEncode(std::string_view(reinterpret_cast<const char*>(&byte), 1)) + "/",
          sweep));
    }
    return OkStatus();
  }

  const Repository& repository_;
  storage::ObjectStore& store_;
  const GcOptions& options_;
  GcTiming timing_;
  StaleWatch watch_;
  const std::string holder_;
  GcReport report_;
  LiveSet live_;
  std::set<std::string> manifests_read_;
  bool sweeping_ = false;
  std::string first_lock_content_;
  bool taken_over_ = false;  // another collection's marker was seen in place of ours
  std::unique_ptr<Refresher> lock_refresher_;
  std::unique_ptr<Refresher> sweep_refresher_;
};

}  // namespace

std::string WriterMarkerKey(std::string_view backup_id) {
  return std::string(kWriterMarkersPrefix) + std::string(backup_id);
}

json GcReportJson(const GcReport& r) {
  return {{"manifests", r.manifests},
          {"live_chunks", r.live_chunks},
          {"chunks_examined", r.chunks_examined},
          {"chunks_deleted", r.chunks_deleted},
          {"bytes_deleted", r.bytes_deleted},
          {"chunks_in_grace", r.chunks_in_grace},
          {"bytes_in_grace", r.bytes_in_grace},
          {"bytes_kept", r.bytes_kept},
          {"damage_records_deleted", r.damage_records_deleted},
          {"stale_writers_removed", r.stale_writers_removed},
          {"took_over_stale_lock", r.took_over_stale_lock},
          {"dry_run", r.dry_run},
          {"duration_ms", r.duration_ms}};
}

Result<GcReport> CollectGarbage(const Repository& repository, const GcOptions& options) {
  Collector collector(repository, options);
  return collector.Run();
}

struct WriterMarker::State {
  storage::ObjectStore* store = nullptr;
  std::string key;
  std::unique_ptr<Refresher> refresher;
};

WriterMarker::WriterMarker(std::shared_ptr<State> state) : state_(std::move(state)) {}

WriterMarker::~WriterMarker() {
  state_->refresher.reset();
  (void)state_->store->Delete(state_->key);
}

Result<std::unique_ptr<WriterMarker>> WriterMarker::Acquire(const Repository& repository,
                                                            std::string backup_id,
                                                            const GcTiming& timing_in,
                                                            const CancelFlag* cancel) {
  const GcTiming timing = Complete(timing_in);
  storage::ObjectStore& store = repository.store();
  const std::string key = WriterMarkerKey(backup_id);
  StaleWatch watch(timing);
  for (;;) {
    if (cancel != nullptr && cancel->load()) return Cancelled();
    // The marker first, then the sweep check (see the file comment).
    KINDLING_RETURN_IF_ERROR(store.Put(key, MarkerContent("writer", backup_id, 0)));
    auto sweep = store.Get(kGcSweepKey);
    bool proceed = false;
    if (!sweep) {
      if (!sweep.error().is_not_found()) {
        (void)store.Delete(key);
        return std::unexpected(sweep.error());
      }
      proceed = true;
    } else {
      proceed = watch.Stale(std::string(kGcSweepKey), *sweep);
    }
    if (proceed) {
      auto state = std::make_shared<State>();
      state->store = &store;
      state->key = key;
      state->refresher =
          std::make_unique<Refresher>(store, key, "writer", backup_id, timing.refresh_every,
                                      /*only_if_present=*/true);
      return std::unique_ptr<WriterMarker>(new WriterMarker(std::move(state)));
    }
    // A sweep runs: withdraw, so that it can proceed, and wait for its end
    // (or for it to go stale) without a marker, watching the sweep only.
    KINDLING_RETURN_IF_ERROR(store.Delete(key));
    for (;;) {
      if (cancel != nullptr && cancel->load()) return Cancelled();
      timing.sleep(timing.poll_every);
      auto again = store.Get(kGcSweepKey);
      if (!again) {
        if (again.error().is_not_found()) break;
        return std::unexpected(again.error());
      }
      if (watch.Stale(std::string(kGcSweepKey), *again)) break;
    }
  }
}

Status WriterMarker::CheckHeld() const {
  auto head = state_->store->Head(state_->key);
  if ((!head && head.error().is_not_found()) || state_->refresher->lost()) {
    return MakeError(ErrorKind::kFailedPrecondition,
                     "a garbage collection removed this backup's marker, taking it for a "
                     "stopped backup (the process stalled for longer than the markers' stale "
                     "time): the backup is not committed; run it again");
  }
  if (!head) return std::unexpected(head.error());
  return OkStatus();
}

}  // namespace kindling::engine
