// The admin HTTP server (default port 8081): /metrics, /health, /ready, the control API over the
// Connect protocol (an asynchronous RPC handler) and the admin UI's static files.
//
// Threading: the server owns one io_context and one thread; every handler runs on that thread,
// never on a data-plane worker. Handlers must be quick and non-blocking (they read counters and
// atomics); the RPC handler starts its work elsewhere and answers later through an AdminReply,
// from any thread. Start/Stop may be called from any thread, once each.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/health_state.h"
#include "common/tls/server_certificate.h"

namespace wsgate::controlplane {

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra response headers
};

// Called on the admin thread with the request target's path (query string removed).
using AdminHandler = std::function<AdminResponse(const std::string& path)>;

struct AdminServerOptions {
  std::string listen_address = "0.0.0.0";
  uint16_t port = 8081;  // 0: pick a free port (see AdminServer::port())
  // HTTPS instead of HTTP (null: plain). With a client CA in it, mutual TLS: a client without a
  // certificate that chains to it fails the handshake and gets no HTTP answer at all.
  common::tls::ServerCertificatePtr tls;
};

struct AdminRequest {
  std::string method;
  std::string path;   // the target without its query string
  std::string query;  // after '?', "" when none
  // Lower-case names; a repeated header's values are joined with ", ".
  std::map<std::string, std::string> headers;
  std::string body;
  std::string remote_address;
  // The body was over the handler's limit: `body` is empty and the connection closes after the
  // answer (the rest of the body is never read).
  bool body_too_large = false;
};

// How an asynchronous handler answers: Send once, or StartStream, then Write any number of times,
// then End. Every method may be called from any thread (the work is posted to the admin thread)
// and does nothing once the client has gone.
class AdminReply {
 public:
  virtual ~AdminReply() = default;
  virtual void Send(AdminResponse response) = 0;
  // A chunked HTTP/1.1 response; the connection closes after End.
  virtual void StartStream(int status, std::string content_type) = 0;
  // `written` runs on the admin thread when the chunk has been written (true) or can no longer
  // be (false: the client is gone).
  virtual void Write(std::string data, std::function<void(bool ok)> written) = 0;
  virtual void End() = 0;
  // `gone` runs on the admin thread if the client disconnects while a stream is open.
  virtual void OnClientGone(std::function<void()> gone) = 0;
};

using AdminAsyncHandler =
    std::function<void(AdminRequest request, std::shared_ptr<AdminReply> reply)>;

// The admin UI's built files, read into memory once (a few hundred KiB), so serving them touches
// no disk and no request path ever reaches the file system.
class StaticFiles {
 public:
  // Every regular file under `dir`. Error: `dir` has no index.html.
  static absl::StatusOr<StaticFiles> Load(const std::string& dir);

  // GET/HEAD `path`: the file; a path whose last segment has no '.' gets index.html (the UI's
  // client-side routes: deep links work); anything else 404.
  AdminResponse Serve(const std::string& path) const;
  size_t size() const { return files_.size(); }

 private:
  struct File {
    std::string content_type;
    std::string body;
  };
  std::map<std::string, File> files_;  // "/index.html", "/assets/index-abc.js", ...
};

// Route table, in order: exact paths (GET only; others 405); the RPC handler for paths shaped
// like "/package.Service/Method"; the static files for other GETs; else 404.
class AdminRoutes {
 public:
  void Add(std::string path, AdminHandler handler);
  // `max_body`: bytes accepted in an RPC request body (larger: body_too_large).
  void SetRpcHandler(AdminAsyncHandler handler, uint64_t max_body);
  void SetStaticFiles(StaticFiles files);
  // An exact path whose handler sees the whole request (headers included), any method.
  void AddRequestHandler(std::string path, std::function<AdminResponse(const AdminRequest&)> h);
  const std::function<AdminResponse(const AdminRequest&)>* FindRequestHandler(
      const std::string& path) const;

  // The synchronous part of the table (exact paths and static files).
  AdminResponse Dispatch(const std::string& method, const std::string& target) const;
  // True when `path` goes to the RPC handler.
  bool IsRpcPath(const std::string& path) const;
  const AdminAsyncHandler& rpc_handler() const { return rpc_handler_; }
  uint64_t rpc_max_body() const { return rpc_max_body_; }

 private:
  std::map<std::string, AdminHandler> handlers_;
  std::map<std::string, std::function<AdminResponse(const AdminRequest&)>> request_handlers_;
  AdminAsyncHandler rpc_handler_;
  uint64_t rpc_max_body_ = 0;
  std::optional<StaticFiles> static_files_;
};

// The standard routes: /health, /ready (from `health`), /metrics (from `render_metrics`, which
// is called on the admin thread at every scrape). `health` must outlive the routes.
AdminRoutes StandardAdminRoutes(const common::HealthState* health,
                                std::function<std::string()> render_metrics);

class AdminServer {
 public:
  // Binds and starts serving on its own thread. Error: the address cannot be parsed or the port
  // cannot be bound (the message names the port).
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(const AdminServerOptions& options,
                                                            AdminRoutes routes);
  ~AdminServer();  // Stops if still running.

  uint16_t port() const;
  // Closes the listener and every open connection, then joins the thread. Idempotent.
  void Stop();
  // A reloaded certificate (a server started with TLS only): connections accepted from now on
  // use it; open ones keep the one they were accepted with. Any thread.
  void SetCertificate(const common::tls::ServerCertificatePtr& certificate);

  class Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsgate::controlplane
