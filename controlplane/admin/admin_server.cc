#include "controlplane/admin/admin_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace wsgate::controlplane {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// ----- routes -----

void AdminRoutes::Add(std::string path, AdminHandler handler) {
  handlers_[std::move(path)] = std::move(handler);
}

AdminResponse AdminRoutes::Dispatch(const std::string& method, const std::string& target) const {
  const std::string path = target.substr(0, target.find('?'));
  auto it = handlers_.find(path);
  if (it == handlers_.end()) {
    return AdminResponse{404, "text/plain; charset=utf-8", "not found\n", {}};
  }
  if (method != "GET") {
    return AdminResponse{
        405, "text/plain; charset=utf-8", "method not allowed\n", {{"Allow", "GET"}}};
  }
  return it->second(path);
}

AdminRoutes StandardAdminRoutes(const common::HealthState* health,
                                std::function<std::string()> render_metrics) {
  AdminRoutes routes;
  routes.Add("/health", [](const std::string&) {
    return AdminResponse{200, "application/json", "{\"status\":\"healthy\"}", {}};
  });
  routes.Add("/ready", [health](const std::string&) {
    if (!health->ready())
      return AdminResponse{503, "application/json", "{\"status\":\"shutting_down\"}", {}};
    if (health->bus_down()) {
      return AdminResponse{
          503, "application/json", "{\"status\":\"not_ready\",\"redis\":\"down\"}", {}};
    }
    return AdminResponse{200, "application/json", "{\"status\":\"ready\"}", {}};
  });
  routes.Add("/metrics", [render = std::move(render_metrics)](const std::string&) {
    return AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8", render(), {}};
  });
  return routes;
}

// ----- server -----

namespace {

constexpr auto kIdleTimeout = std::chrono::seconds(30);
constexpr uint64_t kMaxRequestBody = 64 * 1024;

// One HTTP/1.1 connection, keep-alive supported. Lives on the admin thread only.
class AdminSession : public std::enable_shared_from_this<AdminSession> {
 public:
  AdminSession(tcp::socket socket, const AdminRoutes* routes)
      : stream_(std::move(socket)), routes_(routes) {}

  void ReadRequest() {
    parser_.emplace();
    parser_->body_limit(kMaxRequestBody);
    stream_.expires_after(kIdleTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
      Close();
      return;
    }
    if (ec) {
      // Malformed request: answer 400 and close; the connection state is unknown.
      AdminResponse bad{
          400, "text/plain; charset=utf-8", absl::StrCat("bad request: ", ec.message(), "\n"), {}};
      Write(std::move(bad), 11, /*keep_alive=*/false);
      return;
    }
    const http::request<http::string_body>& req = parser_->get();
    AdminResponse response =
        routes_->Dispatch(std::string(req.method_string()), std::string(req.target()));
    Write(std::move(response), req.version(), req.keep_alive());
  }

  void Write(AdminResponse r, unsigned version, bool keep_alive) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->result(static_cast<unsigned>(r.status));
    res->version(version);
    res->set(http::field::server, "wsgate");
    res->set(http::field::content_type, r.content_type);
    res->set(http::field::cache_control, "no-store");
    for (auto& [name, value] : r.headers) res->set(name, value);
    res->keep_alive(keep_alive);
    res->body() = std::move(r.body);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (ec || !res->keep_alive()) {
                          self->Close();
                          return;
                        }
                        self->ReadRequest();
                      });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const AdminRoutes* const routes_;
};

}  // namespace

class AdminServer::Impl {
 public:
  explicit Impl(AdminRoutes routes) : routes_(std::move(routes)) {}

  absl::Status Listen(const AdminServerOptions& options) {
    beast::error_code ec;
    const asio::ip::address address = asio::ip::make_address(options.listen_address, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin listen address \"", options.listen_address, "\": ", ec.message()));
    }
    const tcp::endpoint endpoint(address, options.port);
    auto fail = [&](const char* what) {
      return absl::UnavailableError(absl::StrCat("admin port ", options.port, ": cannot ", what,
                                                 " ", options.listen_address, ":", options.port,
                                                 ": ", ec.message()));
    };
    acceptor_.open(endpoint.protocol(), ec);
    if (ec) return fail("open");
    acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (ec) return fail("configure");
    acceptor_.bind(endpoint, ec);
    if (ec) return fail("bind");
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail("listen on");
    port_ = acceptor_.local_endpoint(ec).port();
    if (ec) return fail("read the bound port of");
    return absl::OkStatus();
  }

  void Run() {
    Accept();
    thread_ = std::thread([this] {
      // Handlers throw nothing of ours; a library exception (e.g. bad_alloc) is logged and the
      // loop keeps serving rather than taking the process down from the admin port.
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("admin server: {}", e.what());
        }
      }
    });
  }

  void Stop() {
    if (!thread_.joinable()) return;
    // Stopping the loop abandons open keep-alive connections; their sockets close when the
    // io_context destroys the pending handlers that own them.
    ioc_.stop();
    thread_.join();
    // The loop thread is gone, so this thread may touch the acceptor now.
    beast::error_code ignored;
    acceptor_.close(ignored);
  }

  uint16_t port() const { return port_; }

 private:
  void Accept() {
    acceptor_.async_accept(
        asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
          if (ec == asio::error::operation_aborted) return;
          if (!ec) std::make_shared<AdminSession>(std::move(socket), &routes_)->ReadRequest();
          // Other errors (e.g. EMFILE) are transient: keep accepting.
          Accept();
        });
  }

  // Declaration order matters: the io_context must outlive the acceptor and the sessions.
  asio::io_context ioc_{1};
  tcp::acceptor acceptor_{ioc_};
  const AdminRoutes routes_;
  uint16_t port_ = 0;
  std::thread thread_;
};

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(const AdminServerOptions& options,
                                                                AdminRoutes routes) {
  auto impl = std::make_unique<Impl>(std::move(routes));
  if (absl::Status s = impl->Listen(options); !s.ok()) return s;
  impl->Run();
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AdminServer::~AdminServer() { Stop(); }
uint16_t AdminServer::port() const { return impl_->port(); }
void AdminServer::Stop() { impl_->Stop(); }

}  // namespace wsgate::controlplane
