// A small blocking HTTP/1.1 server for tests: 127.0.0.1:0, a thread per connection, keep-alive,
// optional TLS. Endpoints:
//   /json /text /binary /huge (2 MiB) /huge/chunked /status/500 /close (Connection: close)
//   /echo (the request as JSON) /slow (answers only when the server stops)
//   /redirect/json (302 to /json) /redirect/away (302 to http://not-allowed.invalid/)
//   /redirect/loop (302 to itself)
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wsgate::testing {

class TestHttpServer {
 public:
  // `tls` non-null: serve HTTPS with that context.
  explicit TestHttpServer(std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~TestHttpServer();

  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }

 private:
  void AcceptLoop();
  void Serve(std::shared_ptr<boost::asio::ip::tcp::socket> sock);
  template <class Stream>
  void ServeStream(Stream& stream);

  std::shared_ptr<boost::asio::ssl::context> tls_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable stop_cv_;
  std::vector<std::shared_ptr<boost::asio::ip::tcp::socket>> sockets_;
  std::vector<std::thread> threads_;
  std::thread accept_thread_;
};

}  // namespace wsgate::testing
