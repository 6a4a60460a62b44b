#include "http/connection_loop.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/blocking_region.h"

namespace kindling::http {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::uint64_t kWakeId = 0;  // epoll data of the shutdown eventfd
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr auto kSweepEvery = milliseconds(250);
constexpr std::uint64_t kMaxSkippedBody = 64u << 20;

thread_local Clock::time_point request_arrival{};
thread_local bool serving_request = false;

// One open connection. Fields other than busy/deadline belong to the thread
// that set busy, or to nobody while it waits in the epoll set.
struct Connection {
  std::uint64_t id = 0;
  int fd = -1;
  SSL* ssl = nullptr;
  bool handshaken = false;
  bool peer_closed = false;  // the client will send nothing more
  std::string in;            // received, from in_pos on not consumed
  std::size_t in_pos = 0;
  std::size_t served = 0;        // requests answered
  Clock::time_point arrival{};   // first byte of the buffered request, on steady_clock
  Clock::time_point started{};   // the same on the loop's clock, for its deadline
  bool busy = false;             // a thread has it; guarded by Impl::mu
  Clock::time_point deadline{};  // while waiting; guarded by Impl::mu
};

// Waits, giving the thread's turn to another meanwhile, until `fd` has one
// of `events` (or an error or hang-up to report), at most `timeout`.
bool WaitFor(int fd, short events, milliseconds timeout) {
  const BlockingRegion away;
  pollfd p{.fd = fd, .events = events, .revents = 0};
  for (;;) {
    const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

// Results of one read of a connection's socket.
constexpr ssize_t kWouldBlock = -2;
constexpr ssize_t kFailed = -1;

// Reads what is there, without waiting: bytes, 0 at the end, kWouldBlock or
// kFailed.
ssize_t ReadNow(Connection& c, char* buf, std::size_t size) {
  if (c.ssl != nullptr) {
    ERR_clear_error();
    const int n = SSL_read(c.ssl, buf, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
    if (n > 0) return n;
    switch (SSL_get_error(c.ssl, n)) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return kWouldBlock;
      case SSL_ERROR_ZERO_RETURN:
        return 0;
      default:
        return kFailed;
    }
  }
  for (;;) {
    const ssize_t n = ::recv(c.fd, buf, size, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? kWouldBlock : kFailed;
    return n;
  }
}

// Reads, waiting up to `timeout` for bytes: bytes, 0 at the end, or kFailed.
ssize_t ReadWaiting(Connection& c, char* buf, std::size_t size, milliseconds timeout) {
  for (;;) {
    const ssize_t n = ReadNow(c, buf, size);
    if (n != kWouldBlock) return n;
    const bool wants_write = c.ssl != nullptr && SSL_want_write(c.ssl);
    if (!WaitFor(c.fd, wants_write ? POLLOUT : POLLIN, timeout)) return kFailed;
  }
}

// Writes all of `data`, waiting up to `timeout` each time the socket is full.
bool WriteAll(Connection& c, const char* data, std::size_t size, milliseconds timeout) {
  std::size_t done = 0;
  while (done < size) {
    short wait = POLLOUT;
    if (c.ssl != nullptr) {
      ERR_clear_error();
      // A retried SSL_write must be given the same bytes: done moves only
      // when it succeeds.
      const int n = SSL_write(c.ssl, data + done,
                              static_cast<int>(std::min<std::size_t>(size - done, INT_MAX)));
      if (n > 0) {
        done += static_cast<std::size_t>(n);
        continue;
      }
      const int error = SSL_get_error(c.ssl, n);
      if (error == SSL_ERROR_WANT_READ) {
        wait = POLLIN;
      } else if (error != SSL_ERROR_WANT_WRITE) {
        return false;
      }
    } else {
      const ssize_t n = ::send(c.fd, data + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) {
        done += static_cast<std::size_t>(n);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    }
    if (!WaitFor(c.fd, wait, timeout)) return false;
  }
  return true;
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// What the buffered bytes hold.
enum class Framing {
  kPartial,     // not a whole request yet
  kComplete,    // a whole request, or as much as the loop waits for
  kBufferOnly,  // one the server will refuse: hand over what is buffered, read nothing more
};

// Whether `in` (from `pos`) holds a whole request. The server parses it;
// this only finds its end. A chunked body, or a body the client sends
// after `100 Continue`, is read by the server as it comes (waiting in a
// BlockingRegion).
Framing Frame(std::string_view in, const ConnectionLoopOptions& options) {
  const std::size_t end = in.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return in.size() > options.max_head_bytes ? Framing::kBufferOnly : Framing::kPartial;
  }
  if (end > options.max_head_bytes) return Framing::kBufferOnly;
  std::string_view head = in.substr(0, end + 2);
  head.remove_prefix(std::min(head.size(), head.find("\r\n") + 2));  // the request line
  std::optional<std::uint64_t> length;
  bool expects_continue = false;
  while (!head.empty()) {
    const std::size_t eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = Trim(line.substr(colon + 1));
    if (IEquals(name, "transfer-encoding")) return Framing::kComplete;
    if (IEquals(name, "expect")) expects_continue = IEquals(value, "100-continue");
    if (IEquals(name, "content-length")) {
      std::uint64_t n = 0;
      const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      // A malformed length is the server's to refuse.
      if (ec != std::errc() || ptr != value.data() + value.size()) return Framing::kComplete;
      length = n;
    }
  }
  if (!length || *length == 0) return Framing::kComplete;
  if (*length > options.max_body_bytes) {
    // Read and dropped by the server, so that a client still sending it
    // gets to read the refusal; beyond kMaxSkippedBody the connection is
    // closed after the answer instead.
    return *length > kMaxSkippedBody ? Framing::kBufferOnly : Framing::kComplete;
  }
  if (in.size() - (end + 4) >= *length) return Framing::kComplete;
  return expects_continue ? Framing::kComplete : Framing::kPartial;
}

void RemoteOrLocal(int fd, bool remote, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  const int r = remote ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len)
                       : ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ip.clear();
  port = 0;
  if (r != 0) return;
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (addr.ss_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&addr);
    if (::inet_ntop(AF_INET, &in4->sin_addr, text.data(), text.size()) != nullptr) ip = text.data();
    port = ntohs(in4->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    if (::inet_ntop(AF_INET6, &in6->sin6_addr, text.data(), text.size()) != nullptr) {
      ip = text.data();
    }
    port = ntohs(in6->sin6_port);
  }
}

// The Stream a request is served over: the connection's buffered bytes
// first, then (unless buffer_only) its socket.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(Connection& c, const ConnectionLoopOptions& options, bool buffer_only)
      : c_(c), options_(options), buffer_only_(buffer_only) {}

  bool is_readable() const override {
    if (c_.in_pos < c_.in.size()) return true;
    if (buffer_only_) return false;
    if (c_.ssl != nullptr && SSL_has_pending(c_.ssl) == 1) return true;
    return WaitFor(c_.fd, POLLIN, options_.read_timeout);
  }
  bool is_writable() const override {
    pollfd p{.fd = c_.fd, .events = POLLOUT, .revents = 0};
    if (::poll(&p, 1, 0) > 0) return (p.revents & (POLLERR | POLLHUP)) == 0;
    return WaitFor(c_.fd, POLLOUT, options_.write_timeout);
  }
  ssize_t read(char* ptr, std::size_t size) override {
    if (c_.in_pos == c_.in.size()) {
      if (buffer_only_) return 0;
      c_.in.clear();
      c_.in_pos = 0;
      std::array<char, kReadChunk> chunk{};
      const ssize_t n = ReadWaiting(c_, chunk.data(), chunk.size(), options_.read_timeout);
      if (n <= 0) return n == 0 ? 0 : -1;
      c_.in.append(chunk.data(), static_cast<std::size_t>(n));
    }
    const std::size_t n = std::min(size, c_.in.size() - c_.in_pos);
    std::memcpy(ptr, c_.in.data() + c_.in_pos, n);
    c_.in_pos += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, std::size_t size) override {
    return WriteAll(c_, ptr, size, options_.write_timeout) ? static_cast<ssize_t>(size) : -1;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    RemoteOrLocal(c_.fd, true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    RemoteOrLocal(c_.fd, false, ip, port);
  }
  socket_t socket() const override { return c_.fd; }

 private:
  Connection& c_;
  const ConnectionLoopOptions& options_;
  const bool buffer_only_;
};

}  // namespace

struct ConnectionLoop::Impl final : public BlockingHook {
  Impl(ConnectionLoopOptions o, Serve s, SSL_CTX* t)
      : options(std::move(o)), serve(std::move(s)), tls(t) {
    if (options.threads == 0) {
      options.threads = std::max(1u, std::thread::hardware_concurrency());
    }
    options.max_threads = std::max(options.max_threads, options.threads);
    options.keep_alive_max_count = std::max<std::size_t>(options.keep_alive_max_count, 1);
    if (!options.clock) options.clock = [] { return Clock::now(); };
  }

  ConnectionLoopOptions options;
  const Serve serve;
  SSL_CTX* const tls;
  int epoll_fd = -1;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};

  // Connections.
  mutable std::mutex mu;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections;  // guarded by mu
  std::uint64_t next_id = kWakeId;                                             // guarded by mu
  std::uint64_t accepted = 0;                                                  // guarded by mu
  std::uint64_t refused = 0;                                                   // guarded by mu

  // Threads: `active` of them are polling or serving (not parked, not in a
  // BlockingRegion); the loop keeps it at options.threads.
  using Threads = std::list<std::thread>;
  mutable std::mutex pool_mu;
  std::condition_variable unpark;  // a ticket was given, or stopping
  std::condition_variable exited;  // a thread moved itself to finished
  Threads running;                 // guarded by pool_mu
  Threads finished;                // guarded by pool_mu; ended, to join
  std::size_t active = 0;          // guarded by pool_mu
  std::size_t parked = 0;          // guarded by pool_mu
  std::size_t tickets = 0;         // guarded by pool_mu; parked threads called back

  // The sweeper.
  std::mutex sweep_mu;
  std::condition_variable sweep_wake;
  bool sweep_stop = false;  // guarded by sweep_mu
  std::thread sweeper;

  // BlockingHook, on the loop's threads.
  void Leave() override {
    std::lock_guard lock(pool_mu);
    --active;
    if (stopping) return;
    if (active + tickets >= options.threads) return;
    if (parked > tickets) {
      ++tickets;
      unpark.notify_one();
    } else if (running.size() < options.max_threads) {
      SpawnLocked();
    }
  }
  void Return() override {
    std::lock_guard lock(pool_mu);
    ++active;
  }

  void SpawnLocked() {
    for (std::thread& t : finished) t.join();  // they hold no lock any more
    finished.clear();
    running.emplace_back();
    const auto self = std::prev(running.end());
    ++active;
    // The thread takes pool_mu before it reads `self`, so it sees it assigned.
    *self = std::thread([this, self] { ThreadMain(self); });
  }

  // Parks while more threads than wanted are active. False: the thread ends.
  bool TakeTurn(bool& counted) {
    std::unique_lock lock(pool_mu);
    while (!stopping && active > options.threads) {
      --active;
      counted = false;
      ++parked;
      const bool called = unpark.wait_for(lock, options.idle_thread_exit,
                                          [this] { return stopping || tickets > 0; });
      --parked;
      if (stopping || !called) return false;
      --tickets;
      ++active;
      counted = true;
    }
    return !stopping;
  }

  void ThreadMain(Threads::iterator self) {
    {
      const ScopedBlockingHook hook(this);
      bool counted = true;
      while (TakeTurn(counted)) {
        epoll_event event{};
        const int n = ::epoll_wait(epoll_fd, &event, 1, -1);
        if (n < 0 && errno != EINTR) {
          spdlog::error("connection loop: epoll_wait failed: {}", std::strerror(errno));
          break;
        }
        if (n <= 0 || event.data.u64 == kWakeId) continue;
        if (Connection* c = Claim(event.data.u64)) Run(*c);
      }
      std::lock_guard lock(pool_mu);
      if (counted) --active;
      finished.splice(finished.end(), running, self);
      exited.notify_all();
    }
  }

  // The connection `id` for this thread, if it is still open.
  Connection* Claim(std::uint64_t id) {
    std::lock_guard lock(mu);
    const auto it = connections.find(id);
    if (it == connections.end() || it->second->busy) return nullptr;
    it->second->busy = true;
    return it->second.get();
  }

  // Back to the epoll set, until `deadline`. REQUIRES: the caller has it.
  void Wait(Connection& c, std::uint32_t events, Clock::time_point deadline) {
    std::lock_guard lock(mu);
    if (stopping) {
      CloseLocked(c.id);
      return;
    }
    c.busy = false;
    c.deadline = deadline;
    epoll_event event{};
    event.events = events | EPOLLONESHOT;
    event.data.u64 = c.id;
    // Under mu: the descriptor cannot have been closed and reused meanwhile.
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &event) != 0) CloseLocked(c.id);
  }

  void Close(Connection& c) {
    std::lock_guard lock(mu);
    CloseLocked(c.id);
  }

  void CloseLocked(std::uint64_t id) {
    const auto it = connections.find(id);
    if (it == connections.end()) return;
    Connection& c = *it->second;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
    if (c.ssl != nullptr) {
      if (c.handshaken) {
        ERR_clear_error();
        SSL_shutdown(c.ssl);  // close_notify, if the socket takes it now
      }
      SSL_free(c.ssl);
    }
    ::close(c.fd);
    connections.erase(it);
  }

  // Serves the connection this thread claimed until it waits again or closes.
  void Run(Connection& c) {
    const Clock::time_point now = options.clock();
    if (c.ssl != nullptr && !c.handshaken) {
      ERR_clear_error();
      const int r = SSL_accept(c.ssl);
      if (r != 1) {
        const int error = SSL_get_error(c.ssl, r);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
          Wait(c, error == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT, c.deadline);
        } else {
          Close(c);
        }
        return;
      }
      c.handshaken = true;
    }
    for (;;) {
      if (!c.peer_closed && !Fill(c)) {
        Close(c);
        return;
      }
      const Framing framing = Frame(std::string_view(c.in).substr(c.in_pos), options);
      if (framing == Framing::kPartial) {
        if (c.peer_closed) {
          Close(c);
        } else if (c.in_pos == c.in.size()) {
          Wait(c, EPOLLIN, now + options.keep_alive_timeout);
        } else {
          Wait(c, EPOLLIN, c.started + options.read_timeout);
        }
        return;
      }
      const bool buffer_only = framing == Framing::kBufferOnly;
      ++c.served;
      const bool last =
          buffer_only || c.peer_closed || stopping || c.served >= options.keep_alive_max_count;
      bool closed = false;
      bool ok = false;
      {
        ConnectionStream stream(c, options, buffer_only);
        request_arrival = c.arrival;
        serving_request = true;
        try {
          ok = serve(stream, last, closed);
        } catch (const std::exception& e) {
          spdlog::error("connection loop: a request ended with an exception: {}", e.what());
        }
        serving_request = false;
      }
      c.in.erase(0, c.in_pos);
      c.in_pos = 0;
      if (!ok || closed || last) {
        Close(c);
        return;
      }
      if (c.in.empty() && (c.ssl == nullptr || SSL_has_pending(c.ssl) != 1)) {
        Wait(c, EPOLLIN, options.clock() + options.keep_alive_timeout);
        return;
      }
      c.arrival = Clock::now();  // the next request, pipelined, is here
      c.started = options.clock();
    }
  }

  // Reads what the connection has sent, without waiting, up to a request's
  // bound. False: the connection failed.
  bool Fill(Connection& c) {
    const std::size_t cap = options.max_head_bytes + options.max_body_bytes + kReadChunk;
    std::array<char, kReadChunk> chunk{};
    while (c.in.size() - c.in_pos < cap) {
      const ssize_t n = ReadNow(c, chunk.data(), chunk.size());
      if (n == kWouldBlock) return true;
      if (n == kFailed) return false;
      if (n == 0) {
        c.peer_closed = true;
        return true;
      }
      if (c.in_pos == c.in.size()) {
        c.in.clear();
        c.in_pos = 0;
        c.arrival = Clock::now();
        c.started = options.clock();
      }
      c.in.append(chunk.data(), static_cast<std::size_t>(n));
    }
    return true;
  }
};

ConnectionLoop::ConnectionLoop(ConnectionLoopOptions options, Serve serve, SSL_CTX* tls)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(serve), tls)) {}

ConnectionLoop::~ConnectionLoop() { Shutdown(); }

Status ConnectionLoop::Start() {
  Impl& m = *impl_;
  m.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (m.epoll_fd < 0) return IoError(std::string("epoll_create1: ") + std::strerror(errno));
  m.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m.wake_fd < 0) return IoError(std::string("eventfd: ") + std::strerror(errno));
  epoll_event event{};
  event.events = EPOLLIN;  // level-triggered: once written, every thread sees it
  event.data.u64 = kWakeId;
  if (::epoll_ctl(m.epoll_fd, EPOLL_CTL_ADD, m.wake_fd, &event) != 0) {
    return IoError(std::string("epoll_ctl: ") + std::strerror(errno));
  }
  {
    std::lock_guard lock(m.pool_mu);
    for (std::size_t i = 0; i < m.options.threads; ++i) m.SpawnLocked();
  }
  m.sweeper = std::thread([&m, this] {
    std::unique_lock lock(m.sweep_mu);
    while (!m.sweep_stop) {
      m.sweep_wake.wait_for(lock, kSweepEvery);
      lock.unlock();
      Sweep();
      lock.lock();
    }
  });
  return OkStatus();
}

void ConnectionLoop::Add(int fd) {
  Impl& m = *impl_;
  const int flags = ::fcntl(fd, F_GETFL);
  const int yes = 1;
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    ::close(fd);
    return;
  }
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  SSL* ssl = nullptr;
  if (m.tls != nullptr) {
    ssl = SSL_new(m.tls);
    if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
      if (ssl != nullptr) SSL_free(ssl);
      ::close(fd);
      return;
    }
  }
  std::lock_guard lock(m.mu);
  if (m.stopping || m.connections.size() >= m.options.max_connections || m.epoll_fd < 0) {
    if (!m.stopping) ++m.refused;
    if (ssl != nullptr) SSL_free(ssl);
    ::close(fd);
    return;
  }
  auto c = std::make_unique<Connection>();
  c->id = ++m.next_id;
  c->fd = fd;
  c->ssl = ssl;
  // A handshake must end within the read timeout, a first request start
  // within the keep-alive timeout (as after an answer).
  c->deadline =
      m.options.clock() + (ssl != nullptr ? m.options.read_timeout : m.options.keep_alive_timeout);
  epoll_event event{};
  event.events = EPOLLIN | EPOLLONESHOT;
  event.data.u64 = c->id;
  if (::epoll_ctl(m.epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
    if (ssl != nullptr) SSL_free(ssl);
    ::close(fd);
    return;
  }
  ++m.accepted;
  m.connections.emplace(c->id, std::move(c));
}

void ConnectionLoop::Sweep() {
  Impl& m = *impl_;
  const Clock::time_point now = m.options.clock();
  std::lock_guard lock(m.mu);
  std::vector<std::uint64_t> expired;
  for (const auto& [id, c] : m.connections) {
    if (!c->busy && c->deadline <= now) expired.push_back(id);
  }
  for (const std::uint64_t id : expired) m.CloseLocked(id);
}

void ConnectionLoop::Shutdown() {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    if (m.stopping.exchange(true)) return;
    std::vector<std::uint64_t> waiting;
    for (const auto& [id, c] : m.connections) {
      if (!c->busy) waiting.push_back(id);
    }
    for (const std::uint64_t id : waiting) m.CloseLocked(id);
  }
  {
    std::lock_guard lock(m.sweep_mu);
    m.sweep_stop = true;
  }
  m.sweep_wake.notify_all();
  if (m.sweeper.joinable()) m.sweeper.join();
  if (m.wake_fd >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(m.wake_fd, &one, sizeof one);
  }
  std::unique_lock lock(m.pool_mu);
  m.unpark.notify_all();
  for (;;) {
    Impl::Threads done;
    done.splice(done.end(), m.finished);
    const bool last = m.running.empty();
    lock.unlock();
    for (std::thread& t : done) t.join();
    lock.lock();
    if (last && m.finished.empty()) break;
    if (m.finished.empty()) m.exited.wait(lock, [&m] { return !m.finished.empty(); });
  }
  lock.unlock();
  {
    std::lock_guard connections_lock(m.mu);
    std::vector<std::uint64_t> left;
    for (const auto& [id, c] : m.connections) left.push_back(id);
    for (const std::uint64_t id : left) m.CloseLocked(id);
  }
  if (m.epoll_fd >= 0) ::close(m.epoll_fd);
  if (m.wake_fd >= 0) ::close(m.wake_fd);
  m.epoll_fd = m.wake_fd = -1;
}

ConnectionLoopStats ConnectionLoop::stats() const {
  ConnectionLoopStats s;
  {
    std::lock_guard lock(impl_->mu);
    s.connections = impl_->connections.size();
    for (const auto& [id, c] : impl_->connections) {
      if (!c->busy && c->in_pos < c->in.size()) ++s.receiving;
    }
    s.accepted = impl_->accepted;
    s.refused = impl_->refused;
  }
  std::lock_guard lock(impl_->pool_mu);
  s.threads = impl_->running.size();
  return s;
}

Clock::time_point ConnectionLoop::RequestArrival() {
  return serving_request ? request_arrival : Clock::now();
}

}  // namespace kindling::http
