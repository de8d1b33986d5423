#include "dataplane/kinds/websocket/edge_poller.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <exception>

namespace wsgate::dataplane::transport {

EdgePoller::EdgePoller(boost::asio::io_context& ioc) : descriptor_(ioc) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) {
    spdlog::critical("epoll_create1 failed: {}", std::strerror(errno));
    std::terminate();  // a worker without it cannot relay anything: fail loudly at start
  }
  descriptor_.assign(epfd_);
}

EdgePoller::~EdgePoller() {
  boost::system::error_code ec;
  descriptor_.close(ec);  // closes epfd_
}

uint64_t EdgePoller::Add(int fd, Watcher* watcher) {
  const uint64_t id = next_id_++;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = id;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return 0;
  watchers_.emplace(id, watcher);
  Arm();
  return id;
}

void EdgePoller::Remove(uint64_t id) { watchers_.erase(id); }

// The epoll set's descriptor is readable while it has events: wait for that through Asio.
void EdgePoller::Arm() {
  if (armed_) return;
  armed_ = true;
  descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                         [this](const boost::system::error_code& ec) {
                           armed_ = false;
                           if (ec == boost::asio::error::operation_aborted) return;
                           Dispatch();
                         });
}

void EdgePoller::Dispatch() {
  int n;
  do {
    n = ::epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()), 0);
    for (int i = 0; i < n; ++i) {
      auto it = watchers_.find(events_[i].data.u64);
      if (it != watchers_.end()) it->second->OnEvents(events_[i].events);
    }
  } while (n == static_cast<int>(events_.size()));
  // Asio's wait re-registers the set's descriptor, which re-checks it: an event that came in
  // after the last epoll_wait above still wakes the next Dispatch.
  if (!watchers_.empty()) Arm();
}

}  // namespace wsgate::dataplane::transport
