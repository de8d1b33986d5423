// The relay's readiness notifications: one epoll set per worker, in which every relay
// socket is registered once, edge-triggered, for reading, writing and the peer's FIN
// (EPOLLRDHUP), the way nginx registers its connections. The set's own descriptor sits in the
// worker's io_context like any socket, so the worker thread still runs everything.
//
// Why not Asio's waits: `async_wait` re-registers the socket (epoll_ctl MOD) every time, one
// extra system call per read, i.e. per message per hop at one message in flight; Asio's
// speculative reads cost an EAGAIN read instead. And Asio does not register EPOLLRDHUP, without
// which a short read does not prove the socket drained (a FIN that came with the last bytes is
// only seen by the next read). Here a socket costs one epoll_ctl(ADD) for its whole life; its
// close removes it.
//
// Threading: one poller per worker, used only on that worker's thread.
#pragma once

#include <sys/epoll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace wsgate::dataplane::transport {

class EdgePoller {
 public:
  // What a registered socket is told: the epoll event bits (EPOLLIN, EPOLLOUT, EPOLLRDHUP,
  // EPOLLHUP, EPOLLERR). Called on the worker thread, from the io_context.
  class Watcher {
   public:
    virtual void OnEvents(uint32_t events) = 0;

   protected:
    ~Watcher() = default;
  };

  explicit EdgePoller(boost::asio::io_context& ioc);
  ~EdgePoller();
  EdgePoller(const EdgePoller&) = delete;
  EdgePoller& operator=(const EdgePoller&) = delete;

  // Registers `fd`; 0 on failure (errno set). Events already pending are reported once.
  uint64_t Add(int fd, Watcher* watcher);
  // Forgets a registration before its fd is closed (the close removes it from the epoll set):
  // events of this batch that are still to be dispatched are dropped.
  void Remove(uint64_t id);

 private:
  void Arm();
  void Dispatch();

  int epfd_ = -1;
  boost::asio::posix::stream_descriptor descriptor_;
  bool armed_ = false;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Watcher*> watchers_;
  std::vector<epoll_event> events_ = std::vector<epoll_event>(256);
};

}  // namespace wsgate::dataplane::transport
