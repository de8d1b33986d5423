// EdgePoller (kinds/websocket/edge_poller.h) on real loopback TCP connections, driven by a real
// io_context: readable and writable edges reach the watcher, a peer's FIN comes with
// EPOLLRDHUP (what lets the relay trust a short read), and a removed registration gets nothing.
#include "dataplane/kinds/websocket/edge_poller.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <vector>

namespace wsgate::dataplane::transport {
namespace {

using boost::asio::ip::tcp;

struct Recorder : EdgePoller::Watcher {
  void OnEvents(uint32_t events) override { seen.push_back(events); }
  bool Saw(uint32_t bits) const {
    for (uint32_t e : seen) {
      if ((e & bits) == bits) return true;
    }
    return false;
  }
  std::vector<uint32_t> seen;
};

class EdgePollerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(ioc_, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    peer_.connect(acceptor.local_endpoint());
    acceptor.accept(sock_);
    fd_ = sock_.release();  // the poller's users own raw descriptors
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void Run() {
    ioc_.restart();
    ioc_.run_for(std::chrono::milliseconds(50));
  }

  boost::asio::io_context ioc_;
  EdgePoller poller_{ioc_};
  tcp::socket sock_{ioc_};
  tcp::socket peer_{ioc_};
  int fd_ = -1;
  Recorder rec_;
};

TEST_F(EdgePollerTest, ReportsWritableAtOnceAndReadableWhenBytesArrive) {
  ASSERT_NE(poller_.Add(fd_, &rec_), 0u);
  Run();
  EXPECT_TRUE(rec_.Saw(EPOLLOUT));
  EXPECT_FALSE(rec_.Saw(EPOLLIN));
  boost::asio::write(peer_, boost::asio::buffer("abc", 3));
  Run();
  EXPECT_TRUE(rec_.Saw(EPOLLIN));
}

TEST_F(EdgePollerTest, PeerFinComesWithRdhupEvenTogetherWithBytes) {
  ASSERT_NE(poller_.Add(fd_, &rec_), 0u);
  Run();
  rec_.seen.clear();
  boost::asio::write(peer_, boost::asio::buffer("last", 4));
  peer_.shutdown(tcp::socket::shutdown_send);  // bytes and FIN before the poller looks
  Run();
  EXPECT_TRUE(rec_.Saw(EPOLLIN | EPOLLRDHUP));
  char buf[16];
  EXPECT_EQ(::recv(fd_, buf, sizeof buf, MSG_DONTWAIT), 4);  // a short read...
  EXPECT_EQ(::recv(fd_, buf, sizeof buf, MSG_DONTWAIT), 0);  // ...and the FIN it hid
}

TEST_F(EdgePollerTest, RemovedRegistrationGetsNothing) {
  const uint64_t id = poller_.Add(fd_, &rec_);
  ASSERT_NE(id, 0u);
  Run();
  rec_.seen.clear();
  poller_.Remove(id);
  boost::asio::write(peer_, boost::asio::buffer("x", 1));
  Run();
  EXPECT_TRUE(rec_.seen.empty());
}

TEST_F(EdgePollerTest, AddRefusesABadDescriptor) { EXPECT_EQ(poller_.Add(-1, &rec_), 0u); }

}  // namespace
}  // namespace wsgate::dataplane::transport
