// The admin HTTP server (default port 8081): /metrics, /health, /ready, and later the admin UI's
// static files and JSON API.
//
// Threading: the server owns one io_context and one thread; every handler runs on that thread,
// never on a data-plane worker. Handlers must be quick and non-blocking (they read counters and
// atomics). Start/Stop may be called from any thread, once each.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/health_state.h"

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
};

// Exact-path route table. Unknown paths answer 404, methods other than GET 405.
class AdminRoutes {
 public:
  void Add(std::string path, AdminHandler handler);
  AdminResponse Dispatch(const std::string& method, const std::string& target) const;

 private:
  std::map<std::string, AdminHandler> handlers_;
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

  class Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsgate::controlplane
