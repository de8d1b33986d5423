#include "controlplane/admin/admin_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <deque>
#include <exception>
#include <filesystem>
#include <limits>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "controlplane/config/file_io.h"

namespace wsgate::controlplane {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// ----- routes -----

void AdminRoutes::Add(std::string path, AdminHandler handler) {
  handlers_[std::move(path)] = std::move(handler);
}

void AdminRoutes::SetRpcHandler(AdminAsyncHandler handler, uint64_t max_body) {
  rpc_handler_ = std::move(handler);
  rpc_max_body_ = max_body;
}

void AdminRoutes::SetStaticFiles(StaticFiles files) { static_files_ = std::move(files); }

void AdminRoutes::AddRequestHandler(std::string path,
                                    std::function<AdminResponse(const AdminRequest&)> h) {
  request_handlers_[std::move(path)] = std::move(h);
}

const std::function<AdminResponse(const AdminRequest&)>* AdminRoutes::FindRequestHandler(
    const std::string& path) const {
  auto it = request_handlers_.find(path);
  return it == request_handlers_.end() ? nullptr : &it->second;
}

bool AdminRoutes::IsRpcPath(const std::string& path) const {
  if (!rpc_handler_ || path.size() < 2 || path[0] != '/' || handlers_.count(path) > 0 ||
      request_handlers_.count(path) > 0) {
    return false;
  }
  // "/pkg.Service/Method": exactly two non-empty segments, the first with a '.'.
  const size_t slash = path.find('/', 1);
  if (slash == std::string::npos || slash == 1 || slash + 1 == path.size()) return false;
  if (path.find('/', slash + 1) != std::string::npos) return false;
  return path.find('.') < slash;
}

AdminResponse AdminRoutes::Dispatch(const std::string& method, const std::string& target) const {
  const std::string path = target.substr(0, target.find('?'));
  auto it = handlers_.find(path);
  if (it == handlers_.end()) {
    if (static_files_ && (method == "GET" || method == "HEAD")) return static_files_->Serve(path);
    return AdminResponse{404, "text/plain; charset=utf-8", "not found\n", {}};
  }
  if (method != "GET") {
    return AdminResponse{
        405, "text/plain; charset=utf-8", "method not allowed\n", {{"Allow", "GET"}}};
  }
  return it->second(path);
}

// ----- static files -----

namespace {

std::string ContentTypeFor(const std::string& path) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
      {".map", "application/json"},
  };
  for (const auto& [ext, type] : kTypes) {
    if (absl::EndsWith(path, ext)) return type;
  }
  return "application/octet-stream";
}

// The UI loads only its own files and talks only to this origin; it may not be framed.
constexpr char kUiSecurityPolicy[] =
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

}  // namespace

absl::StatusOr<StaticFiles> StaticFiles::Load(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(dir) / "index.html", ec)) {
    return absl::NotFoundError(absl::StrCat("admin UI directory ", dir, ": no index.html"));
  }
  StaticFiles out;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string rel = "/" + fs::relative(it->path(), dir, ec).generic_string();
    absl::StatusOr<std::string> body = ReadFileToString(it->path().string());
    if (!body.ok()) return body.status();
    out.files_[rel] = File{ContentTypeFor(rel), *std::move(body)};
  }
  if (ec) {
    return absl::UnavailableError(absl::StrCat("admin UI directory ", dir, ": ", ec.message()));
  }
  return out;
}

AdminResponse StaticFiles::Serve(const std::string& path) const {
  auto it = files_.find(path == "/" ? "/index.html" : path);
  const std::string last = path.substr(path.rfind('/') + 1);
  if (it == files_.end() && last.find('.') == std::string::npos) it = files_.find("/index.html");
  if (it == files_.end()) return AdminResponse{404, "text/plain; charset=utf-8", "not found\n", {}};
  AdminResponse r{200, it->second.content_type, it->second.body, {}};
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Content-Security-Policy", kUiSecurityPolicy);
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  // Vite names every asset by its content hash; index.html must be revalidated to pick up a new
  // build.
  r.headers.emplace_back("Cache-Control", absl::StartsWith(it->first, "/assets/")
                                              ? "public, max-age=31536000, immutable"
                                              : "no-cache");
  return r;
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
constexpr uint32_t kMaxHeaderBytes = 16 * 1024;
constexpr uint64_t kMaxDrain = 64 * 1024 * 1024;
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(2);

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One HTTP/1.1 connection, keep-alive supported, over plain TCP or TLS (`Stream`, chosen once
// per connection by the acceptor). Lives on the admin thread only; AdminReply calls from other
// threads are posted to it.
template <class Stream>
class AdminSession : public std::enable_shared_from_this<AdminSession<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  using std::enable_shared_from_this<AdminSession<Stream>>::shared_from_this;

 public:
  // `keep`: what the stream's arguments point into (the TLS context), held for the session's
  // life, so that a reload can replace the server's context while older sessions still use theirs.
  template <class... StreamArgs>
  explicit AdminSession(const AdminRoutes* routes, std::shared_ptr<const void> keep,
                        StreamArgs&&... args)
      : keep_(std::move(keep)), stream_(std::forward<StreamArgs>(args)...), routes_(routes) {}

  // TLS: the handshake first (a client that fails it, e.g. without the certificate mutual TLS
  // asks for, is closed without an HTTP answer), then requests as over plain TCP.
  void Start() {
    if constexpr (kTls) {
      Tcp().expires_after(kHandshakeTimeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = shared_from_this()](beast::error_code ec) {
                                if (ec) {
                                  spdlog::debug("admin TLS handshake failed: {}", ec.message());
                                  self->state_ = State::kClosed;
                                  beast::error_code ignored;
                                  self->Tcp().socket().close(ignored);
                                  return;
                                }
                                self->ReadRequest();
                              });
    } else {
      ReadRequest();
    }
  }

  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    // No limit while the head is read (beast would refuse a large Content-Length before the
    // path is known); OnHeader sets the limit of the route the path goes to. (Not boost::none:
    // Boost 1.74's parser compares the length with the optional, and none compares below any
    // length.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    Tcp().expires_after(kIdleTimeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnHeader(ec); });
  }

  // ----- the asynchronous answer (admin thread) -----
  void SendAsync(AdminResponse r) {
    if (state_ != State::kWaiting) return;
    state_ = State::kWriting;
    Write(std::move(r), version_, keep_alive_);
  }

  void StartStreamAsync(int status, std::string content_type) {
    if (state_ != State::kWaiting) return;
    state_ = State::kStreaming;
    Tcp().expires_never();
    std::string head = absl::StrCat("HTTP/1.1 ", status, " ",
                                    std::string(http::obsolete_reason(http::int_to_status(status))),
                                    "\r\nServer: wsgate\r\nContent-Type: ", content_type,
                                    "\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked"
                                    "\r\nConnection: close\r\n\r\n");
    Queue(std::move(head), nullptr);
    WatchForClose();
  }

  void WriteAsync(std::string data, std::function<void(bool)> written) {
    if (state_ != State::kStreaming || data.empty()) {
      if (written) written(state_ == State::kStreaming);
      return;
    }
    std::string chunk = absl::StrCat(absl::Hex(data.size()), "\r\n");
    chunk += data;
    chunk += "\r\n";
    Queue(std::move(chunk), std::move(written));
  }

  void EndAsync() {
    if (state_ != State::kStreaming) return;
    state_ = State::kEnding;
    Queue("0\r\n\r\n", nullptr);
  }

  void SetGone(std::function<void()> gone) {
    if (state_ == State::kClosed) {
      if (gone) gone();
      return;
    }
    gone_ = std::move(gone);
  }

  asio::any_io_executor executor() { return stream_.get_executor(); }

 private:
  enum class State { kReading, kWaiting, kWriting, kStreaming, kEnding, kClosed };

  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  bool IgnorableReadError(beast::error_code ec) const {
    return ec == http::error::end_of_stream || ec == beast::error::timeout ||
           ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
           ec == asio::ssl::error::stream_truncated;
  }

  void BadRequest(beast::error_code ec) {
    // Malformed request: answer 400 and close; the connection state is unknown.
    AdminResponse bad{
        400, "text/plain; charset=utf-8", absl::StrCat("bad request: ", ec.message(), "\n"), {}};
    Write(std::move(bad), 11, /*keep_alive=*/false);
  }

  // A read that ended the request: a client that went away is closed quietly, a malformed
  // request gets 400.
  bool EndedByReadError(beast::error_code ec) {
    if (IgnorableReadError(ec)) {
      Close();
      return true;
    }
    if (ec) {
      BadRequest(ec);
      return true;
    }
    return false;
  }

  void OnHeader(beast::error_code ec) {
    if (EndedByReadError(ec)) return;
    const auto& req = parser_->get();
    const std::string target(req.target());
    rpc_ = routes_->IsRpcPath(target.substr(0, target.find('?')));
    const uint64_t limit = rpc_ ? routes_->rpc_max_body() : kMaxRequestBody;
    parser_->body_limit(limit);
    const auto length = parser_->content_length();
    if (length && *length > limit) {
      if (rpc_) {
        DispatchRpc(/*too_large=*/true);
      } else {
        linger_ = true;
        Write(AdminResponse{413, "text/plain; charset=utf-8", "request body too large\n", {}},
              req.version(), false);
      }
      return;
    }
    if (!parser_->is_done() && absl::EqualsIgnoreCase(std::string(req[http::field::expect]),
                                                      "100-continue")) {
      // curl asks before sending a body over 1 KiB; without this it waits a second.
      auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(stream_, asio::buffer(*cont),
                        [self = shared_from_this(), cont](beast::error_code wec, std::size_t) {
                          if (wec) {
                            self->Close();
                            return;
                          }
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (rpc_ && ec == http::error::body_limit) {
      DispatchRpc(/*too_large=*/true);
      return;
    }
    if (EndedByReadError(ec)) return;
    if (rpc_) {
      DispatchRpc(/*too_large=*/false);
      return;
    }
    const http::request<http::string_body>& req = parser_->get();
    const std::string target(req.target());
    if (const auto* handler = routes_->FindRequestHandler(target.substr(0, target.find('?')))) {
      const unsigned version = req.version();
      const bool keep_alive = req.keep_alive();
      AdminRequest r = MakeRequest(false);
      Write((*handler)(r), version, keep_alive);
      return;
    }
    AdminResponse response =
        routes_->Dispatch(std::string(req.method_string()), std::string(req.target()));
    if (req.method() == http::verb::head) response.body.clear();
    Write(std::move(response), req.version(), req.keep_alive());
  }

  void DispatchRpc(bool too_large);
  AdminRequest MakeRequest(bool too_large);  // releases the parser's message

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
    Tcp().expires_after(kIdleTimeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (!ec && self->linger_) {
                          self->Linger();
                          return;
                        }
                        if (ec || !res->keep_alive()) {
                          self->Close();
                          return;
                        }
                        self->state_ = State::kReading;
                        self->ReadRequest();
                      });
  }

  // Raw writes of a chunked stream, one in flight.
  void Queue(std::string data, std::function<void(bool)> written) {
    queue_.emplace_back(std::move(data), std::move(written));
    if (queue_.size() == 1) WriteFront();
  }

  void WriteFront() {
    asio::async_write(stream_, asio::buffer(queue_.front().first),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        auto done = std::move(self->queue_.front().second);
                        self->queue_.pop_front();
                        if (done) done(!ec);
                        if (ec) {
                          self->Close();
                          return;
                        }
                        if (!self->queue_.empty()) {
                          self->WriteFront();
                        } else if (self->state_ == State::kEnding) {
                          self->Close();
                        }
                      });
  }

  // While a stream is open the client sends nothing more; a read completing means it closed
  // (or broke the protocol): either way the stream is over.
  void WatchForClose() {
    // Over TLS through the TLS stream (a record read from under it would break its state).
    auto& from = [this]() -> auto& {
      if constexpr (kTls) {
        return stream_;
      } else {
        return Tcp().socket();
      }
    }();
    from.async_read_some(
        asio::buffer(sink_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (!ec && self->state_ == State::kStreaming) {
            self->WatchForClose();
            return;
          }
          if (self->state_ == State::kStreaming) self->Close();
        });
  }

  // After refusing a body that is still arriving: stop sending, then read and drop what the
  // client is still sending (bounded in bytes and time) before closing. Closing at once would
  // reset the connection, and most clients would then report a network error instead of the
  // answer they were sent.
  void Linger() {
    linger_ = false;
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Tcp().expires_after(std::chrono::seconds(2));
    DrainSome();
  }

  void DrainSome() {
    stream_.async_read_some(asio::buffer(drain_), [self = shared_from_this()](
                                                      beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > kMaxDrain) {
        self->Close();
        return;
      }
      self->DrainSome();
    });
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    beast::error_code ignored;
    if constexpr (kTls) {
      // close_notify, then the socket (bounded: a peer that never answers is cut off).
      Tcp().socket().cancel(ignored);
      Tcp().expires_after(kTlsShutdownTimeout);
      stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
        beast::error_code ignored_too;
        self->Tcp().socket().close(ignored_too);
      });
    } else {
      Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
      Tcp().socket().close(ignored);
    }
    for (auto& [data, written] : queue_) {
      if (written) written(false);
      written = nullptr;
    }
    if (auto gone = std::move(gone_)) gone();
  }

  const std::shared_ptr<const void> keep_;  // declared before stream_: outlives it
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const AdminRoutes* const routes_;
  State state_ = State::kReading;
  bool rpc_ = false;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  std::deque<std::pair<std::string, std::function<void(bool)>>> queue_;
  std::function<void()> gone_;
  std::array<char, 256> sink_{};
  bool linger_ = false;  // the answer refuses a body that was not read
  uint64_t drained_ = 0;
  std::array<char, 16 * 1024> drain_{};
};

// AdminReply for one request: posts every call to its session's thread.
template <class Session>
class SessionReply final : public AdminReply {
 public:
  explicit SessionReply(std::shared_ptr<Session> session) : session_(std::move(session)) {}

  void Send(AdminResponse response) override {
    asio::post(session_->executor(), [s = session_, r = std::move(response)]() mutable {
      s->SendAsync(std::move(r));
    });
  }
  void StartStream(int status, std::string content_type) override {
    asio::post(session_->executor(), [s = session_, status, t = std::move(content_type)]() mutable {
      s->StartStreamAsync(status, std::move(t));
    });
  }
  void Write(std::string data, std::function<void(bool)> written) override {
    asio::post(session_->executor(),
               [s = session_, d = std::move(data), w = std::move(written)]() mutable {
                 s->WriteAsync(std::move(d), std::move(w));
               });
  }
  void End() override {
    asio::post(session_->executor(), [s = session_] { s->EndAsync(); });
  }
  void OnClientGone(std::function<void()> gone) override {
    asio::post(session_->executor(),
               [s = session_, g = std::move(gone)]() mutable { s->SetGone(std::move(g)); });
  }

 private:
  const std::shared_ptr<Session> session_;
};

template <class Stream>
AdminRequest AdminSession<Stream>::MakeRequest(bool too_large) {
  http::request<http::string_body> req = parser_->release();
  AdminRequest r;
  r.method = std::string(req.method_string());
  const std::string target(req.target());
  const size_t q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query = target.substr(q + 1);
  for (const auto& field : req) {
    std::string name = absl::AsciiStrToLower(std::string(field.name_string()));
    auto [it, inserted] = r.headers.emplace(name, std::string(field.value()));
    if (!inserted) absl::StrAppend(&it->second, ", ", std::string(field.value()));
  }
  r.body_too_large = too_large;
  if (!too_large) r.body = std::move(req.body());
  beast::error_code ec;
  const tcp::endpoint remote = Tcp().socket().remote_endpoint(ec);
  if (!ec) r.remote_address = remote.address().to_string();
  version_ = req.version();
  // The unread rest of an oversized body would be parsed as the next request: close instead.
  keep_alive_ = req.keep_alive() && !too_large;
  linger_ = too_large;
  return r;
}

template <class Stream>
void AdminSession<Stream>::DispatchRpc(bool too_large) {
  AdminRequest r = MakeRequest(too_large);
  state_ = State::kWaiting;
  Tcp().expires_never();
  routes_->rpc_handler()(std::move(r),
                         std::make_shared<SessionReply<AdminSession>>(shared_from_this()));
}

}  // namespace

class AdminServer::Impl {
 public:
  Impl(AdminRoutes routes, std::shared_ptr<asio::ssl::context> tls)
      : routes_(std::move(routes)), tls_(std::move(tls)) {}

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

  // On the loop's thread, like every read of tls_: the next accepted connection uses it.
  void SetTlsContext(std::shared_ptr<asio::ssl::context> tls) {
    asio::post(ioc_, [this, tls = std::move(tls)]() mutable { tls_ = std::move(tls); });
  }

 private:
  void Accept() {
    acceptor_.async_accept(
        asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
          if (ec == asio::error::operation_aborted) return;
          if (!ec && tls_) {
            std::make_shared<AdminSession<TlsStream>>(&routes_, tls_, std::move(socket), *tls_)
                ->Start();
          } else if (!ec) {
            std::make_shared<AdminSession<PlainStream>>(&routes_, nullptr, std::move(socket))
                ->Start();
          }
          // Other errors (e.g. EMFILE) are transient: keep accepting.
          Accept();
        });
  }

  // Declaration order matters: the io_context must outlive the acceptor and the sessions.
  asio::io_context ioc_{1};
  tcp::acceptor acceptor_{ioc_};
  const AdminRoutes routes_;
  std::shared_ptr<asio::ssl::context> tls_;  // null: plain HTTP; the loop's thread only
  uint16_t port_ = 0;
  std::thread thread_;
};

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(const AdminServerOptions& options,
                                                                AdminRoutes routes) {
  auto impl = std::make_unique<Impl>(
      std::move(routes), options.tls ? options.tls->server_context() : nullptr);
  if (absl::Status s = impl->Listen(options); !s.ok()) return s;
  impl->Run();
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AdminServer::~AdminServer() { Stop(); }
uint16_t AdminServer::port() const { return impl_->port(); }
void AdminServer::Stop() { impl_->Stop(); }
void AdminServer::SetCertificate(const common::tls::ServerCertificatePtr& certificate) {
  if (certificate) impl_->SetTlsContext(certificate->server_context());
}

}  // namespace wsgate::controlplane
