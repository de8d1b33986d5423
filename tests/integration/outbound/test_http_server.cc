#include "test_http_server.h"

#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>

namespace wsgate::testing {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

TestHttpServer::TestHttpServer(std::shared_ptr<asio::ssl::context> tls)
    : tls_(std::move(tls)), acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
  port_ = acceptor_.local_endpoint().port();
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TestHttpServer::~TestHttpServer() {
  stopping_ = true;
  boost::system::error_code ec;
  // Wakes the blocking accept.
  ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
  acceptor_.close(ec);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : sockets_) ::shutdown(s->native_handle(), SHUT_RDWR);
  }
  stop_cv_.notify_all();
  accept_thread_.join();
  for (auto& t : threads_) t.join();
}

void TestHttpServer::AcceptLoop() {
  while (!stopping_) {
    auto sock = std::make_shared<tcp::socket>(ioc_);
    boost::system::error_code ec;
    acceptor_.accept(*sock, ec);
    if (ec || stopping_) return;
    ++connections_;
    std::lock_guard<std::mutex> lock(mu_);
    sockets_.push_back(sock);
    threads_.emplace_back([this, sock] { Serve(sock); });
  }
}

void TestHttpServer::Serve(std::shared_ptr<tcp::socket> sock) {
  if (tls_) {
    asio::ssl::stream<tcp::socket&> stream(*sock, *tls_);
    boost::system::error_code ec;
    stream.handshake(asio::ssl::stream_base::server, ec);
    if (!ec) ServeStream(stream);
  } else {
    ServeStream(*sock);
  }
  boost::system::error_code ec;
  sock->shutdown(tcp::socket::shutdown_both, ec);
}

template <class Stream>
void TestHttpServer::ServeStream(Stream& stream) {
  boost::beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(stream, buffer, req, ec);
    if (ec) return;
    ++requests_;
    http::response<http::string_body> res(http::status::ok, 11);
    std::string target(req.target());
    bool close = false;
    if (target == "/json") {
      res.set(http::field::content_type, "application/json");
      res.body() = R"({"ok":true,"n":[1,2,3]})";
    } else if (target == "/text") {
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "hello";
    } else if (target == "/binary") {
      res.set(http::field::content_type, "application/octet-stream");
      for (int i = 0; i < 256; ++i) res.body().push_back(static_cast<char>(i));
    } else if (target == "/huge") {
      res.set(http::field::content_type, "text/plain");
      res.body() = std::string(2 << 20, 'x');
    } else if (target == "/huge/chunked") {
      res.set(http::field::content_type, "text/plain");
      res.body() = std::string(2 << 20, 'x');
      res.chunked(true);
    } else if (target == "/status/500") {
      res.result(http::status::internal_server_error);
      res.set(http::field::content_type, "text/plain");
      res.body() = "boom";
    } else if (target == "/close") {
      res.body() = "bye";
      close = true;
    } else if (target == "/slow") {
      std::unique_lock<std::mutex> lock(mu_);
      stop_cv_.wait_for(lock, std::chrono::seconds(20), [this] { return stopping_.load(); });
      res.body() = "late";
    } else if (target == "/redirect/json") {
      res.result(http::status::found);
      res.set(http::field::location, "/json");
    } else if (target == "/redirect/away") {
      res.result(http::status::found);
      res.set(http::field::location, "http://not-allowed.invalid/x");
    } else if (target == "/redirect/loop") {
      res.result(http::status::found);
      res.set(http::field::location, "/redirect/loop");
    } else if (target.rfind("/echo", 0) == 0) {
      res.set(http::field::content_type, "application/json");
      auto field = [&](http::field f) { return std::string(req[f]); };
      // Values are plain ASCII in the tests; no escaping needed beyond quotes.
      res.body() = "{\"method\":\"" + std::string(req.method_string()) + "\",\"target\":\"" +
                   target + "\",\"content_type\":\"" + field(http::field::content_type) +
                   "\",\"authorization\":\"" + field(http::field::authorization) +
                   "\",\"x_test\":\"" + std::string(req["X-Test"]) + "\",\"host\":\"" +
                   field(http::field::host) +
                   "\",\"body_size\":" + std::to_string(req.body().size()) + "}";
    } else {
      res.result(http::status::not_found);
    }
    res.keep_alive(!close && req.keep_alive());
    if (!res.chunked()) res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();  // Content-Length stays
    http::write(stream, res, ec);
    if (ec || close || !req.keep_alive()) return;
  }
}

}  // namespace wsgate::testing
