// LoopServer: an httplib server whose connections a ConnectionLoop serves
// (http/connection_loop.h).
//
// httplib's accept loop hands each accepted socket to its task queue, to be
// served by process_and_close_socket until the connection closes. Here that
// step gives the socket to the attached loop (RunAtOnce runs it on the
// accept thread), and the loop calls ServeOne for each whole request it
// has read: httplib's own parsing, routing and answer. Base is
// httplib::Server or httplib::SSLServer (the loop then does the TLS, with
// the SSLServer's context).
//
// Thread-safety: Attach() before listening starts and not again until it
// ended; ServeOne from the loop's threads, as httplib's handlers allow.
#pragma once

#include <httplib.h>

#include <functional>

#include "http/connection_loop.h"

namespace kindling::http {

class LoopServed {
 public:
  virtual ~LoopServed() = default;
  virtual void Attach(ConnectionLoop* loop) = 0;
  virtual bool ServeOne(httplib::Stream& stream, bool close_connection,
                        bool& connection_closed) = 0;
};

template <class Base>
class LoopServer final : public Base, public LoopServed {
 public:
  using Base::Base;
  void Attach(ConnectionLoop* loop) override { loop_ = loop; }
  bool ServeOne(httplib::Stream& stream, bool close_connection, bool& connection_closed) override {
    return this->process_request(stream, close_connection, connection_closed, nullptr);
  }

 private:
  bool process_and_close_socket(socket_t sock) override {
    loop_->Add(sock);
    return true;
  }
  ConnectionLoop* loop_ = nullptr;
};

// A task queue that runs what it is given at once, on the caller's thread:
// for a LoopServer, whose queued step only hands a socket over.
class RunAtOnce final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

}  // namespace kindling::http
