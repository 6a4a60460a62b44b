// BlockingRegion: marks a stretch in which the calling thread waits on
// something outside the process (a database round trip), so that a thread
// holding a share of a CPU-bounded resource can give it back meanwhile.
//
// The API serves requests from a few threads (http/connection_loop.h); a
// request waiting for PostgreSQL must not keep a cached read from running.
// Each of those threads installs a BlockingHook; every BlockingRegion on it
// then calls the hook's Leave() on entry (another thread takes its place)
// and Return() on exit.
// Regions nest: only the outermost calls the hook. Without a hook a region
// costs two thread-local reads.
//
// Thread-safety: everything here is per thread.
#pragma once

namespace kindling {

class BlockingHook {
 public:
  virtual ~BlockingHook() = default;
  // The thread is about to wait outside the process.
  virtual void Leave() = 0;
  // The wait is over; returns when the thread may run on.
  virtual void Return() = 0;
};

namespace internal {
inline thread_local BlockingHook* blocking_hook = nullptr;
inline thread_local int blocking_depth = 0;
}  // namespace internal

// Installs `hook` on the calling thread for the object's lifetime (the
// previous one is restored after). REQUIRES: no BlockingRegion open on the
// thread when constructed or destroyed.
class ScopedBlockingHook {
 public:
  explicit ScopedBlockingHook(BlockingHook* hook) : previous_(internal::blocking_hook) {
    internal::blocking_hook = hook;
  }
  ~ScopedBlockingHook() { internal::blocking_hook = previous_; }
  ScopedBlockingHook(const ScopedBlockingHook&) = delete;
  ScopedBlockingHook& operator=(const ScopedBlockingHook&) = delete;

 private:
  BlockingHook* previous_;
};

class BlockingRegion {
 public:
  BlockingRegion() {
    if (internal::blocking_depth++ == 0 && internal::blocking_hook != nullptr)
      internal::blocking_hook->Leave();
  }
  ~BlockingRegion() {
    if (--internal::blocking_depth == 0 && internal::blocking_hook != nullptr)
      internal::blocking_hook->Return();
  }
  BlockingRegion(const BlockingRegion&) = delete;
  BlockingRegion& operator=(const BlockingRegion&) = delete;
};

}  // namespace kindling
