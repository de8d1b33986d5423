// The admin HTTP server over a real socket on an ephemeral port: /metrics, /health, /ready,
// unknown paths, wrong methods, malformed requests, keep-alive and bind errors.
#include "controlplane/admin/admin_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "common/health_state.h"
#include "controlplane/metrics/stats_collector.h"
#include "dataplane/stats/route_stats.h"

namespace wsgate::controlplane {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Sends `request` raw and reads until the server closes (or `until` appears, or 5 s pass).
std::string Exchange(uint16_t port, const std::string& request, const std::string& until = "") {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect failed";
  }
  EXPECT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (!until.empty() && out.find(until) != std::string::npos) break;
  }
  close(fd);
  return out;
}

std::string Get(uint16_t port, const std::string& target, const std::string& method = "GET") {
  return Exchange(port, method + " " + target +
                            " HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: "
                            "close\r\n\r\n");
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stats_.ForRoute("echo")->ForWorker(0).CountOutcome(dataplane::ConnectionOutcome::kAccepted);
    AdminServerOptions options;
    options.listen_address = "127.0.0.1";
    options.port = 0;
    auto server = AdminServer::Start(
        options, StandardAdminRoutes(&health_, [this] { return SerializeMetrics({&collector_}); }));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_NE(server_->port(), 0);
  }

  common::HealthState health_;
  dataplane::StatsRegistry stats_{1};
  StatsCollector collector_{&stats_, [] { return uint64_t{5}; }, "test"};
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, MetricsServesThePrometheusTextFormat) {
  const std::string res = Get(server_->port(), "/metrics");
  EXPECT_THAT(res, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(res, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(res,
              HasSubstr("\nwsgate_connections_total{route=\"echo\",outcome=\"accepted\"} 1\n"));
  EXPECT_THAT(res, HasSubstr("\nwsgate_config_version 5\n"));
}

TEST_F(AdminServerTest, QueryStringIsIgnoredForRouting) {
  EXPECT_THAT(Get(server_->port(), "/metrics?name[]=x"), StartsWith("HTTP/1.1 200 OK\r\n"));
}

TEST_F(AdminServerTest, HealthIsAlwaysHealthy) {
  const std::string res = Get(server_->port(), "/health");
  EXPECT_THAT(res, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(res, HasSubstr("Content-Type: application/json"));
  EXPECT_THAT(res, HasSubstr("\r\n\r\n{\"status\":\"healthy\"}"));
}

TEST_F(AdminServerTest, ReadyFollowsHealthState) {
  std::string res = Get(server_->port(), "/ready");
  EXPECT_THAT(res, StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  EXPECT_THAT(res, HasSubstr("\r\n\r\n{\"status\":\"shutting_down\"}"));
  health_.set_ready(true);
  res = Get(server_->port(), "/ready");
  EXPECT_THAT(res, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(res, HasSubstr("\r\n\r\n{\"status\":\"ready\"}"));
  health_.set_ready(false);
  EXPECT_THAT(Get(server_->port(), "/ready"), StartsWith("HTTP/1.1 503 "));
}

TEST_F(AdminServerTest, UnknownPathIs404) {
  EXPECT_THAT(Get(server_->port(), "/nope"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(Get(server_->port(), "/metrics/"), StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(Get(server_->port(), "/"), StartsWith("HTTP/1.1 404 "));
}

TEST_F(AdminServerTest, OtherMethodsAre405WithAllow) {
  for (const char* method : {"POST", "PUT", "DELETE", "HEAD"}) {
    const std::string res = Get(server_->port(), "/metrics", method);
    EXPECT_THAT(res, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n")) << method;
    EXPECT_THAT(res, HasSubstr("Allow: GET\r\n")) << method;
  }
}

TEST_F(AdminServerTest, MalformedRequestIs400) {
  EXPECT_THAT(Exchange(server_->port(), "NOT HTTP AT ALL\r\n\r\n"), StartsWith("HTTP/1.1 400 "));
}

TEST_F(AdminServerTest, OversizedBodyIsRefused) {
  const std::string body(128 * 1024, 'x');
  const std::string res =
      Exchange(server_->port(), "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                    std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_THAT(res, StartsWith("HTTP/1.1 413 "));
}

TEST_F(AdminServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  const std::string two =
      "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string res = Exchange(server_->port(), two, "shutting_down");
  EXPECT_THAT(res, HasSubstr("{\"status\":\"healthy\"}"));
  EXPECT_THAT(res, HasSubstr("{\"status\":\"shutting_down\"}"));
}

TEST_F(AdminServerTest, PortInUseIsAnErrorNamingThePort) {
  AdminServerOptions options;
  options.listen_address = "127.0.0.1";
  options.port = server_->port();
  auto second = AdminServer::Start(options, AdminRoutes());
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("admin port " + std::to_string(server_->port())));
}

TEST_F(AdminServerTest, BadAddressIsInvalidArgument) {
  AdminServerOptions options;
  options.listen_address = "not-an-address";
  options.port = 0;
  auto bad = AdminServer::Start(options, AdminRoutes());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AdminServerTest, StopClosesTheListener) {
  const uint16_t port = server_->port();
  server_->Stop();
  server_->Stop();  // idempotent
  EXPECT_EQ(Get(port, "/health"), "connect failed");
}

TEST(AdminRoutesTest, CustomRoutesDispatchByExactPath) {
  AdminRoutes routes;
  routes.Add("/api/x", [](const std::string& path) {
    return AdminResponse{201, "application/json", "{\"path\":\"" + path + "\"}", {}};
  });
  AdminResponse r = routes.Dispatch("GET", "/api/x?y=1");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "{\"path\":\"/api/x\"}");
  EXPECT_EQ(routes.Dispatch("GET", "/api").status, 404);
  EXPECT_EQ(routes.Dispatch("PATCH", "/api/x").status, 405);
}

}  // namespace
}  // namespace wsgate::controlplane

namespace wsgate::controlplane {
namespace {

TEST(AdminRoutesTest, RpcPathsAreTwoSegmentsWithADottedService) {
  AdminRoutes routes;
  EXPECT_FALSE(routes.IsRpcPath("/wsgate.v1.RouteService/ListRoutes"));  // no handler yet
  routes.SetRpcHandler([](AdminRequest, std::shared_ptr<AdminReply>) {}, 1024);
  routes.Add("/metrics", [](const std::string&) { return AdminResponse{}; });
  EXPECT_TRUE(routes.IsRpcPath("/wsgate.v1.RouteService/ListRoutes"));
  EXPECT_TRUE(routes.IsRpcPath("/a.B/C"));
  EXPECT_FALSE(routes.IsRpcPath("/metrics"));
  EXPECT_FALSE(routes.IsRpcPath("/routes/echo"));
  EXPECT_FALSE(routes.IsRpcPath("/a.B/C/D"));
  EXPECT_FALSE(routes.IsRpcPath("/a.B/"));
  EXPECT_FALSE(routes.IsRpcPath("/assets/index.js"));
}

TEST(StaticFilesTest, ServesFilesAndFallsBackToIndexForAppRoutes) {
  char dir_template[] = "/tmp/wsgate-ui-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  ASSERT_EQ(system(("mkdir -p " + dir + "/assets && printf '<html>app</html>' > " + dir +
                    "/index.html && printf 'js()' > " + dir + "/assets/app-1.js")
                       .c_str()),
            0);
  absl::StatusOr<StaticFiles> files = StaticFiles::Load(dir);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(files->size(), 2u);
  AdminResponse index = files->Serve("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.body, "<html>app</html>");
  EXPECT_THAT(index.content_type, StartsWith("text/html"));
  // Deep links of the single-page app get index.html; a missing file is a 404.
  EXPECT_EQ(files->Serve("/routes/echo").body, "<html>app</html>");
  EXPECT_EQ(files->Serve("/assets/missing.js").status, 404);
  AdminResponse js = files->Serve("/assets/app-1.js");
  EXPECT_EQ(js.body, "js()");
  EXPECT_THAT(js.content_type, StartsWith("text/javascript"));
  bool immutable = false, csp = false;
  for (const auto& [k, v] : js.headers) {
    immutable |= k == "Cache-Control" && v.find("immutable") != std::string::npos;
    csp |= k == "Content-Security-Policy" && v.find("default-src 'self'") != std::string::npos;
  }
  EXPECT_TRUE(immutable);
  EXPECT_TRUE(csp);
  EXPECT_FALSE(StaticFiles::Load("/nonexistent-ui-dir").ok());
  ASSERT_EQ(system(("rm -rf " + dir).c_str()), 0);
}

}  // namespace
}  // namespace wsgate::controlplane
