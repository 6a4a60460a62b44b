// ConnectionLoop: serves the API's HTTP connections from a few threads.
//
// httplib on its own serves a connection on one thread from accept to
// close, a keep-alive client's idle time included. At 64 busy connections
// on two cores that made 64 threads, run in the kernel's order rather than
// the requests': a request whose bytes had arrived waited, unseen by the
// access log, until its thread was scheduled (bench/api_load.sh with two
// backups running: wrk's p99 over 20 ms in about one run in eight, while
// the log's own p99 stayed under 10 ms). Here every open connection waits
// in one epoll set and a few threads take them in the order they became
// readable:
//
// - A thread reads what the connection sent, without blocking, until it
//   holds a whole request: its head, and its body when Content-Length gives
//   one. A request still arriving puts the connection back in the set, so
//   a slow or silent client holds no thread. A connection is closed when a
//   request has not fully arrived `read_timeout` after its first byte (the
//   TLS handshake included), or when it stays idle for `keep_alive_timeout`.
// - The thread then hands the request to `serve` (httplib's parsing,
//   routing and answer) over a Stream that reads the buffered bytes first,
//   and takes the connection's next request, or puts it back in the set.
// - `threads` threads serve at once (0: one per core). A thread that waits
//   for something outside the process does it in a BlockingRegion
//   (common/blocking_region.h): a database round trip, an event stream's
//   pause, a client slow to read its answer, a body sent in chunks or after
//   `Expect: 100-continue`. Another thread takes its place meanwhile (a
//   parked one, else a new one, up to `max_threads` in all); when the wait
//   ends, the surplus parks after its request, and a thread parked for
//   `idle_thread_exit` ends.
// - A head larger than `max_head_bytes`, or a Content-Length above both
//   `max_body_bytes` and 64 MiB, is handed over as it is, with no further
//   bytes: the server refuses it (400, 413) and the connection is closed
//   without reading what it will not take. A body over `max_body_bytes` but
//   within 64 MiB is read and dropped by the server (a waiting thread, as
//   below) so that the client, still sending it, reads the 413.
// - Beyond `max_connections` open at once, a new connection is closed at
//   once (counted in stats().refused).
//
// With a TLS context, each connection's handshake and records go through
// OpenSSL on the non-blocking socket, in the same cycle.
//
// Thread-safety: Add() and stats() from any thread; Start() once, then
// Shutdown() once (the destructor calls it), from the owner. serve runs on
// the loop's threads, many at once.
#pragma once

#include <httplib.h>
#include <openssl/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "common/result.h"

namespace kindling::http {

struct ConnectionLoopOptions {
  std::size_t threads = 0;  // serving at once; 0: one per core
  std::size_t max_threads = 256;
  std::size_t max_connections = 4096;
  std::chrono::milliseconds keep_alive_timeout{5000};
  std::size_t keep_alive_max_count = 1000;  // requests per connection
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
  std::size_t max_head_bytes = 64 * 1024;
  std::size_t max_body_bytes = 1u << 20;
  std::chrono::milliseconds idle_thread_exit{30'000};
  // Deadlines are kept on this clock; empty: steady_clock::now. Tests
  // advance theirs and call Sweep().
  std::function<std::chrono::steady_clock::time_point()> clock{};
};

struct ConnectionLoopStats {
  std::size_t connections = 0;  // open now
  std::size_t receiving = 0;    // of them, waiting for the rest of a request
  std::size_t threads = 0;      // alive now, parked and waiting ones included
  std::uint64_t accepted = 0;   // connections taken so far
  std::uint64_t refused = 0;    // closed at once: max_connections were open
};

class ConnectionLoop {
 public:
  // Serves one request read from `stream`: httplib's Server::process_request.
  // `close_connection` asks it to answer with Connection: close; it sets
  // `connection_closed` when the connection must close after the answer.
  // False: the request could not be read or answered (the connection is
  // closed).
  using Serve =
      std::function<bool(httplib::Stream& stream, bool close_connection, bool& connection_closed)>;

  // `tls`: null for plain HTTP; else connections are TLS with this context
  // (not owned; it must outlive the loop).
  ConnectionLoop(ConnectionLoopOptions options, Serve serve, SSL_CTX* tls = nullptr);
  ~ConnectionLoop();
  ConnectionLoop(const ConnectionLoop&) = delete;
  ConnectionLoop& operator=(const ConnectionLoop&) = delete;

  // The epoll set and the first threads.
  Status Start();
  // Takes an accepted socket (and owns it from now on, closed or not).
  void Add(int fd);
  // Closes every connection waiting for a request now, lets the requests
  // being served finish (their connections close after the answer), and
  // joins every thread. Open event streams must have been ended first.
  void Shutdown();
  // Closes the connections past their deadline (see the file comment). The
  // loop does it four times a second; tests call it after moving the clock.
  void Sweep();

  ConnectionLoopStats stats() const;

  // On a loop thread serving a request: when the loop read its first byte;
  // elsewhere now().
  static std::chrono::steady_clock::time_point RequestArrival();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kindling::http
