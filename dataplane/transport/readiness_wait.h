// A wait for a TCP socket to become readable, through Asio's own reactor, that costs no system
// call to arm (issue 6).
//
// Why: `socket.async_wait(wait_read)` queues its operation on Asio's non-speculative path, which
// re-registers the descriptor with epoll_ctl(EPOLL_CTL_MOD) every time it starts on an empty
// queue (boost/asio/detail/impl/epoll_reactor.ipp, start_op). The relay waits once per read, so
// that was one extra system call per message per hop (strace, bench/README.md "Profile"). A read
// operation on the speculative path (what async_read_some uses) is queued without one, but it
// needs a buffer of its own for the reactor to read into, and the relay reads into one buffer
// shared by every connection of the worker so that an idle connection holds none.
//
// How: this is a reactor operation of our own, queued as a read operation on the speculative
// path, whose "perform" reads nothing and always reports done_and_exhausted. The reactor's own
// bookkeeping then gives exactly readiness semantics: an epoll edge that arrives while no
// operation waits sets the descriptor's try_speculative flag, and arming then completes at once
// (no edge is lost); an edge that arrives while it waits completes it; either way the flag is
// cleared, so the next arm waits for the next edge. The owner reads with recv() until EAGAIN
// or a short read before arming again.
//
// This uses Asio internals (boost::asio::detail) as shipped by Debian bookworm's Boost 1.74 and
// only with the epoll reactor; the unit test dataplane_readiness_wait_test pins the behaviour.
#pragma once

// io_context and the socket first: the reactor's headers need the scheduler they declare.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
// (keep this order)
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/system/error_code.hpp>
#include <memory>

namespace wsgate::dataplane::transport {

class ReadinessWait final : public boost::asio::detail::reactor_op {
 public:
  // Called on the io_context's thread with the error (operation_aborted when the socket was
  // closed or the wait cancelled); `target` as given to Arm.
  using Callback = void (*)(void* target, const boost::system::error_code& ec);

  ReadinessWait();
  ReadinessWait(const ReadinessWait&) = delete;
  ReadinessWait& operator=(const ReadinessWait&) = delete;

  // Queues the wait on `socket`, which must belong to `ioc`. At most one wait at a time. `keep`
  // is held until the callback has run (it keeps the object that owns this wait alive).
  void Arm(boost::asio::io_context& ioc, boost::asio::ip::tcp::socket& socket,
           std::shared_ptr<void> keep, Callback callback, void* target);

 private:
  static status Perform(reactor_op*) { return done_and_exhausted; }
  static void Complete(void* owner, boost::asio::detail::operation* base,
                       const boost::system::error_code&, std::size_t);

  std::shared_ptr<void> keep_;
  Callback callback_ = nullptr;
  void* target_ = nullptr;
};

}  // namespace wsgate::dataplane::transport
