// Backpressure: an upstream that floods and a client that does not read. The gateway must stop
// reading the upstream once the client's send queue passes WorkerOptions::send_queue_bytes, then
// resume it as the client drains, without losing, reordering or corrupting a message (the
// websocketpp pause/resume race would show up as garbled frames).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "dataplane/transport/worker.h"
#include "tests/integration/dataplane/test_support.h"

namespace wsgate::dataplane::testing {
namespace {

using std::chrono::milliseconds;

constexpr size_t kMessageBytes = 64 * 1024;

// The largest buffer the kernel may give one TCP socket, from /proc/sys/net/ipv4/tcp_{r,w}mem
// (min default max): what the sockets between the gateway and the client can hold.
size_t KernelMax(const char* path) {
  std::ifstream f(path);
  size_t min = 0, def = 0, max = 0;
  f >> min >> def >> max;
  return max > 0 ? max : size_t{8} << 20;
}

// Message `i` of the flood: its index in the first 8 bytes, then a byte pattern derived from it.
std::string FloodMessage(uint64_t i) {
  std::string m(kMessageBytes, static_cast<char>('a' + i % 26));
  std::memcpy(m.data(), &i, sizeof(i));
  return m;
}

// Accepts one WebSocket connection and sends `total` binary messages as fast as the gateway reads
// them, while reading (and recording the close code of) whatever the gateway sends.
class FloodUpstream {
 public:
  explicit FloodUpstream(uint64_t total) : total_(total), acceptor_(ioc_) {
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      ws_ = std::make_unique<websocket::stream<tcp::socket>>(std::move(socket));
      ws_->binary(true);
      ws_->async_accept([this](beast::error_code aec) {
        if (aec) return;
        WriteNext();
        ReadNext();
      });
    });
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~FloodUpstream() {
    ioc_.stop();
    thread_.join();
  }

  uint16_t port() const { return port_; }
  uint64_t sent() const { return sent_.load(); }
  int close_code() const { return close_code_.load(); }

 private:
  void WriteNext() {
    if (sent_.load() == total_) return;
    current_ = FloodMessage(sent_.load());
    ws_->async_write(net::buffer(current_), [this](beast::error_code ec, size_t) {
      if (ec) return;
      sent_.fetch_add(1);
      WriteNext();
    });
  }
  void ReadNext() {
    ws_->async_read(in_, [this](beast::error_code ec, size_t) {
      if (ec == websocket::error::closed) {
        close_code_.store(ws_->reason().code);
        return;
      }
      if (ec) return;
      in_.consume(in_.size());
      ReadNext();
    });
  }

  const uint64_t total_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::unique_ptr<websocket::stream<tcp::socket>> ws_;
  std::string current_;
  beast::flat_buffer in_;
  std::atomic<uint64_t> sent_{0};
  std::atomic<int> close_code_{0};
  std::thread thread_;
};

// A client of the echo route that sends `total` binary messages as fast as the gateway reads
// them and reads the echoes only once told to, checking that they come back whole and in order.
class FloodClient {
 public:
  FloodClient(uint16_t port, uint64_t total) : total_(total), ws_(ioc_) {
    ws_.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    ws_.handshake("127.0.0.1", "/echo");
    ws_.binary(true);
    WriteNext();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~FloodClient() {
    ioc_.stop();
    thread_.join();
  }
  void StartReading() {
    net::post(ioc_, [this] { ReadNext(); });
  }
  uint64_t sent() const { return sent_.load(); }
  uint64_t received() const { return received_.load(); }
  bool garbled() const { return garbled_.load(); }

 private:
  void WriteNext() {
    if (sent_.load() == total_) return;
    current_ = FloodMessage(sent_.load());
    ws_.async_write(net::buffer(current_), [this](beast::error_code ec, size_t) {
      if (ec) return;
      sent_.fetch_add(1);
      WriteNext();
    });
  }
  void ReadNext() {
    ws_.async_read(in_, [this](beast::error_code ec, size_t) {
      if (ec) return;
      if (beast::buffers_to_string(in_.data()) != FloodMessage(received_.load())) {
        garbled_.store(true);
      }
      in_.consume(in_.size());
      received_.fetch_add(1);
      ReadNext();
    });
  }

  const uint64_t total_;
  net::io_context ioc_;
  websocket::stream<tcp::socket> ws_;
  std::string current_;
  beast::flat_buffer in_;
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> received_{0};
  std::atomic<bool> garbled_{false};
  std::thread thread_;
};

class BackpressureTest : public ::testing::Test {
 protected:
  // What may sit between the upstream's socket and the client at most, with the gateway
  // honouring its bound: websocketpp's queue and the batch being written (2 × bound), one
  // message read past the bound, and the kernel buffers of the gateway→client socket pair.
  static size_t InFlightBound() {
    return 2 * transport::WorkerOptions{}.send_queue_bytes + 2 * kMessageBytes +
           KernelMax("/proc/sys/net/ipv4/tcp_wmem") + KernelMax("/proc/sys/net/ipv4/tcp_rmem");
  }
  // Enough messages that the whole flood is four times what the gateway may hold.
  static uint64_t FloodMessages() { return 4 * InFlightBound() / kMessageBytes + 1; }

  void StartGateway(uint16_t upstream_port) {
    auto route = gw_.Proxy("flood", "/flood", {MakeUpstream(upstream_port)});
    gw_.Start({route, gw_.Echo("echo", "/echo")});
  }
  uint64_t ForwardedToClient() {
    return gw_.Totals("flood").bytes[static_cast<int>(Direction::kToClient)];
  }

  Gateway gw_{1};
};

TEST_F(BackpressureTest, FloodingUpstreamIsPausedForAClientThatDoesNotRead) {
  const uint64_t total = FloodMessages();
  FloodUpstream upstream(total);
  StartGateway(upstream.port());
  WsClient c;
  HandshakeResult h = c.Connect(gw_.port(), "/flood");
  ASSERT_FALSE(h.ec) << h.ec.message();

  // The flood has started...
  ASSERT_TRUE(WaitFor([&] { return ForwardedToClient() > 0; }));
  // ...and while the client reads nothing, the gateway never takes more than its bound from the
  // upstream. Without backpressure it forwards the whole flood (4 × the bound) at loopback speed.
  EXPECT_FALSE(WaitFor([&] { return ForwardedToClient() > InFlightBound(); }, milliseconds(3000)))
      << "forwarded " << ForwardedToClient() << " bytes, bound " << InFlightBound();
  EXPECT_LT(upstream.sent(), total);

  // Reading resumes the upstream: every message arrives, whole and in order.
  for (uint64_t i = 0; i < total; ++i) {
    Received r = c.Read();
    ASSERT_FALSE(r.ec) << "message " << i << ": " << r.ec.message();
    ASSERT_EQ(r.data.size(), kMessageBytes) << i;
    ASSERT_TRUE(r.data == FloodMessage(i)) << "message " << i << " garbled or out of order";
  }
  EXPECT_EQ(upstream.sent(), total);
  EXPECT_TRUE(WaitFor([&] { return ForwardedToClient() == total * kMessageBytes; }));
}

TEST_F(BackpressureTest, CloseReachesAPausedUpstream) {
  FloodUpstream upstream(FloodMessages());
  StartGateway(upstream.port());
  WsClient c;
  HandshakeResult h = c.Connect(gw_.port(), "/flood");
  ASSERT_FALSE(h.ec) << h.ec.message();
  // Wait until the gateway holds more than its bound for the client: the upstream is paused.
  ASSERT_TRUE(WaitFor([&] {
    return ForwardedToClient() > transport::WorkerOptions{}.send_queue_bytes + kMessageBytes;
  }));

  // The client's close is replayed to the paused upstream leg.
  ASSERT_FALSE(c.Close(4001, "enough"));
  EXPECT_TRUE(WaitFor([&] { return upstream.close_code() == 4001; }))
      << "upstream saw close " << upstream.close_code();
  EXPECT_TRUE(WaitFor([&] { return gw_.Totals("flood").connections_active == 0; }));
}

TEST_F(BackpressureTest, EchoClientThatDoesNotReadIsPaused) {
  StartGateway(ClosedPort());
  const uint64_t total = FloodMessages();
  FloodClient c(gw_.port(), total);
  auto from_client = [&] {
    return gw_.Totals("echo").bytes[static_cast<int>(Direction::kFromClient)];
  };
  ASSERT_TRUE(WaitFor([&] { return from_client() > 0; }));
  // The echoes pile up in the client's own send queue: the gateway stops reading the client.
  EXPECT_FALSE(WaitFor([&] { return from_client() > InFlightBound(); }, milliseconds(3000)))
      << "read " << from_client() << " bytes, bound " << InFlightBound();
  EXPECT_LT(c.sent(), total);

  c.StartReading();
  EXPECT_TRUE(WaitFor([&] { return c.received() == total || c.garbled(); },
                      std::chrono::milliseconds(60000)))
      << c.received() << " of " << total;
  EXPECT_FALSE(c.garbled()) << "echo " << c.received() << " garbled or out of order";
  EXPECT_EQ(c.sent(), total);
}

}  // namespace
}  // namespace wsgate::dataplane::testing
