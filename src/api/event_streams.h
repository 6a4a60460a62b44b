// EventStreams: what bounds the API's server-sent event answers
// (text/event-stream, e.g. GET /api/operations/{id}/events).
//
// A stream holds a thread of the API's connection loop for as long as it is
// open (http/connection_loop.h), so at most `max_open` are open at once (a further one is refused with 503, and
// the client polls instead), none longer than `max_duration` (the client
// opens another), and Stop() wakes every stream's wait and makes it end, so
// that stopping the server never waits for an operation to finish. A
// stream waits between its polls in Sleep(), inside a BlockingRegion:
// another thread serves requests while it waits and reads the database.
//
// Thread-safety: thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace kindling::api {

struct EventStreamOptions {
  std::size_t max_open = 32;
  std::chrono::milliseconds poll{500};  // between two reads of what a stream follows
  std::chrono::milliseconds max_duration{std::chrono::minutes(10)};
  // A comment line after this long without an event, so that proxies and
  // the client see the connection alive.
  std::chrono::milliseconds keep_alive{15'000};
};

class EventStreams {
 public:
  explicit EventStreams(EventStreamOptions options) : options_(options) {}
  EventStreams(const EventStreams&) = delete;
  EventStreams& operator=(const EventStreams&) = delete;

  const EventStreamOptions& options() const { return options_; }

  // Takes a slot for one more stream: false when max_open are open or the
  // streams are stopped. Each true is paired with a Close().
  bool TryOpen();
  void Close();
  std::size_t open() const;

  // Waits `duration` unless stopped meanwhile; false once stopped.
  bool Sleep(std::chrono::milliseconds duration);
  bool stopped() const;
  // Stop: wakes every Sleep, which then returns false, and refuses new
  // streams. Start undoes it (a server started again).
  void Stop();
  void Start();

 private:
  const EventStreamOptions options_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::size_t open_ = 0;  // guarded by mu_
  bool stopped_ = false;  // guarded by mu_
};

}  // namespace kindling::api
