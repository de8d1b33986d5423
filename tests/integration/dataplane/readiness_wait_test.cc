// ReadinessWait (transport/readiness_wait.h) on a real loopback TCP connection: it completes
// when bytes arrive, completes at once when bytes arrived while nothing waited (the edge the
// reactor saw must not be lost), does not complete without bytes, and reports operation_aborted
// when the socket is closed.
#include "dataplane/transport/readiness_wait.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <memory>

namespace wsgate::dataplane::transport {
namespace {

using boost::asio::ip::tcp;

struct Result {
  int calls = 0;
  boost::system::error_code ec;
};

void Record(void* target, const boost::system::error_code& ec) {
  auto* r = static_cast<Result*>(target);
  ++r->calls;
  r->ec = ec;
}

class ReadinessWaitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(ioc_, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    peer_.connect(acceptor.local_endpoint());
    acceptor.accept(sock_);
  }
  // Runs the io_context until it has nothing ready (or a short while has passed).
  void Poll() {
    ioc_.restart();
    ioc_.run_for(std::chrono::milliseconds(50));
  }
  // Reads what is there without blocking.
  size_t Drain() {
    char buf[256];
    ssize_t n = ::recv(sock_.native_handle(), buf, sizeof buf, MSG_DONTWAIT);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }

  boost::asio::io_context ioc_;
  tcp::socket sock_{ioc_};
  tcp::socket peer_{ioc_};
  ReadinessWait wait_;
  Result result_;
  std::shared_ptr<int> keep_ = std::make_shared<int>(0);
};

TEST_F(ReadinessWaitTest, CompletesWhenBytesArriveAndNotBefore) {
  // A first wait and drain, so that the descriptor's initial "maybe readable" state is used up.
  wait_.Arm(ioc_, sock_, keep_, &Record, &result_);
  Poll();
  ASSERT_EQ(result_.calls, 1);
  EXPECT_EQ(Drain(), 0u);

  wait_.Arm(ioc_, sock_, keep_, &Record, &result_);
  Poll();
  EXPECT_EQ(result_.calls, 1) << "completed with nothing to read";
  boost::asio::write(peer_, boost::asio::buffer("abc", 3));
  Poll();
  EXPECT_EQ(result_.calls, 2);
  EXPECT_FALSE(result_.ec);
  EXPECT_EQ(Drain(), 3u);
}

TEST_F(ReadinessWaitTest, BytesThatArrivedWhileNothingWaitedCompleteTheNextWaitAtOnce) {
  wait_.Arm(ioc_, sock_, keep_, &Record, &result_);
  Poll();
  ASSERT_EQ(result_.calls, 1);
  Drain();
  wait_.Arm(ioc_, sock_, keep_, &Record, &result_);
  boost::asio::write(peer_, boost::asio::buffer("x", 1));
  Poll();
  ASSERT_EQ(result_.calls, 2);
  // Bytes arrive now and the reactor sees their edge, but nothing waits: no drain, no arm.
  boost::asio::write(peer_, boost::asio::buffer("y", 1));
  ioc_.restart();
  ioc_.poll();  // the reactor runs and consumes the edge
  // An async_wait armed now would wait for the next edge, which may never come.
  wait_.Arm(ioc_, sock_, keep_, &Record, &result_);
  Poll();
  EXPECT_EQ(result_.calls, 3);
  EXPECT_EQ(Drain(), 2u);
}

TEST_F(ReadinessWaitTest, PeerCloseCompletesTheWait) {
  wait_.Arm(ioc_, sock_, keep_, &Record, &result_);
  Poll();
  Drain();
  wait_.Arm(ioc_, sock_, keep_, &Record, &result_);
  peer_.close();
  Poll();
  EXPECT_EQ(result_.calls, 2);
  EXPECT_FALSE(result_.ec);
  char c;
  EXPECT_EQ(::recv(sock_.native_handle(), &c, 1, MSG_DONTWAIT), 0);  // EOF
}

TEST_F(ReadinessWaitTest, ClosingTheSocketAbortsTheWaitAndReleasesKeep) {
  wait_.Arm(ioc_, sock_, keep_, &Record, &result_);
  Poll();
  Drain();
  wait_.Arm(ioc_, sock_, keep_, &Record, &result_);
  EXPECT_EQ(keep_.use_count(), 2);
  sock_.close();
  Poll();
  EXPECT_EQ(result_.calls, 2);
  EXPECT_EQ(result_.ec, boost::asio::error::operation_aborted);
  EXPECT_EQ(keep_.use_count(), 1);
}

}  // namespace
}  // namespace wsgate::dataplane::transport
