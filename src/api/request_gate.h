// RequestGate: at most `capacity` requests run at once, the others wait in
// arrival order.
//
// httplib serves each connection on a thread of its own (api/
// connection_threads.h). With 64 busy connections on two cores, the
// kernel's scheduler, not arrival order, decided which of 64 runnable
// threads went next: on GET .../volume served from the read cache, p50 was
// 4 ms but p99 54 ms. Admitting requests in order with a few running at
// once brought p99 to 12 ms at a higher rate (bench/api_load.sh, README
// "API performance"). The API's default is four per core: under backups,
// in 6-7 runs each, four per core gave p99 12-16 ms (one run 22) at
// 10,000-16,000 requests/s, two per core 12-20 ms at 9,000-12,000.
//
// A request holds its slot from routing to the end of its answer (the
// request hooks of api_context.cc call BeginRequest and EndRequest on the
// thread that serves it) except while it waits for PostgreSQL: every
// database transaction is a BlockingRegion (common/blocking_region.h), for
// which the slot is given back and then taken again ahead of new arrivals.
// No request waits longer than `max_wait` for a slot: past it, it runs
// without one (bypassed() counts those), so requests stuck elsewhere (a
// slow client, a store) cannot stall the API.
//
// Thread-safety: thread-safe; BeginRequest/EndRequest pair up per thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

namespace kindling::api {

class RequestGate {
 public:
  // capacity 0: no gate, every request runs at once.
  RequestGate(std::size_t capacity, std::chrono::milliseconds max_wait);
  RequestGate(const RequestGate&) = delete;
  RequestGate& operator=(const RequestGate&) = delete;

  // Waits for a slot (arrival order), at most max_wait; true with one.
  bool Enter();
  // The same, ahead of every Enter waiting: for a request coming back from
  // a database round trip.
  bool Reenter();
  // Gives a slot taken by Enter or Reenter back. REQUIRES: one is held.
  void Exit();

  // For the request hooks, on the thread serving the request: Enter, and
  // the thread's database waits give the slot back (see the file comment).
  // A BeginRequest without EndRequest is ended by the thread's next one.
  void BeginRequest();
  // Ends the thread's request of this gate, if any.
  void EndRequest();

  std::size_t capacity() const { return capacity_; }
  // Slots free now, requests waiting for one, and requests that ran
  // without one so far.
  std::size_t free_slots() const;
  std::size_t waiting() const;
  std::uint64_t bypassed() const;

 private:
  // A thread waiting for a slot. Exit grants it under mu_ and wakes it
  // after releasing mu_ (woken under mu_, it would only wait for mu_).
  struct Waiter {
    bool granted = false;  // guarded by the gate's mu_
    std::mutex mu{};
    std::condition_variable ready{};
    bool signalled = false;  // guarded by mu
  };
  static std::shared_ptr<Waiter> ThreadWaiter();
  bool Wait(bool ahead);

  const std::size_t capacity_;
  const std::chrono::milliseconds max_wait_;
  mutable std::mutex mu_;
  std::size_t free_;                             // guarded by mu_
  std::deque<std::shared_ptr<Waiter>> waiters_;  // guarded by mu_; front is served next
  std::uint64_t bypassed_ = 0;                   // guarded by mu_
};

}  // namespace kindling::api
