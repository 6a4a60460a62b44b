// TcpProxy: forwards TCP connections from a port of its own on 127.0.0.1 to
// a target port there, and can stop forwarding on demand: a network stall
// (or a database that stopped answering) between one client and a server,
// while other clients reach the server directly. Paused connections stay
// open; what was sent waits in the kernel's buffers and flows on Resume.
//
// Thread-safety: thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace kindling::testutil {

class TcpProxy {
 public:
  // Listens on an ephemeral port of 127.0.0.1. Throws std::runtime_error
  // when it cannot.
  explicit TcpProxy(int target_port);
  ~TcpProxy();  // closes every connection
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }

  // Stops forwarding in both directions, at once for every connection (a
  // pump mid-write finishes that write first), until Resume.
  void Pause();
  void Resume();

 private:
  void AcceptLoop();
  void Pump(int client, int server);
  // Blocks while paused; false when the proxy is closing.
  bool WaitUnpaused();

  const int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool paused_ = false;             // guarded by mu_
  int pumps_in_write_ = 0;          // guarded by mu_
  std::vector<std::thread> pumps_;  // guarded by mu_
  std::thread acceptor_;
};

}  // namespace kindling::testutil
