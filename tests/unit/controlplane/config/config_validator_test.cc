#include "controlplane/config/config_validator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>

#include "tests/unit/controlplane/config/test_util.h"

namespace wsgate::controlplane {
namespace {

using testing::EchoRoute;
using ::testing::HasSubstr;
using testing::ProxyRoute;
using ::testing::StartsWith;
using wsgate::v1::Route;

std::string RouteError(const Route& r, const std::string& field = "route") {
  absl::Status s = ValidateRoute(r, field);
  EXPECT_FALSE(s.ok()) << r.DebugString();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

std::string ConfigError(const wsgate::v1::Config& c) {
  absl::Status s = ValidateConfig(c);
  EXPECT_FALSE(s.ok()) << c.DebugString();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

Route Proxy() { return ProxyRoute("p", "/p", "ws://127.0.0.1:9000/echo"); }

TEST(ValidateRouteTest, GoodRoutes) {
  EXPECT_TRUE(ValidateRoute(EchoRoute("echo", "/echo"), "route").ok());
  Route r = Proxy();
  r.mutable_websocket()->add_upstreams("ws://[::1]:9001");
  r.mutable_websocket()->add_forward_headers("Authorization");
  (*r.mutable_websocket()->mutable_set_headers())["X-Gateway"] = "wsgate\tv1";
  r.mutable_websocket()->set_connect_timeout_ms(300000);
  r.mutable_limits()->set_max_message_bytes(256ull << 20);
  r.set_version(99);  // output-only: ignored
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
}

TEST(ValidateRouteTest, NameRequired) {
  EXPECT_EQ(RouteError(EchoRoute("", "/e")), "route.name: required");
}

TEST(ValidateRouteTest, NamePattern) {
  for (const char* bad : {"Echo", "-echo", ".e", "a b", "a/b", "é"}) {
    EXPECT_THAT(RouteError(EchoRoute(bad, "/e")), StartsWith("route.name: '")) << bad;
  }
  EXPECT_THAT(RouteError(EchoRoute(std::string(64, 'a'), "/e")), StartsWith("route.name: "));
  EXPECT_TRUE(ValidateRoute(EchoRoute(std::string(63, 'a'), "/e"), "route").ok());
  EXPECT_TRUE(ValidateRoute(EchoRoute("0a.b_c-d", "/e"), "route").ok());
}

TEST(ValidateRouteTest, PathRequired) {
  EXPECT_EQ(RouteError(EchoRoute("e", "")), "route.path: required");
}

TEST(ValidateRouteTest, PathMustBeAValidTemplate) {
  EXPECT_THAT(RouteError(EchoRoute("e", "/ws/{id")),
              StartsWith("route.path: '/ws/{id': segment '{id'"));
  EXPECT_THAT(RouteError(EchoRoute("e", "echo")), StartsWith("route.path: 'echo': must start"));
}

TEST(ValidateRouteTest, FieldPrefixIsTheCallers) {
  EXPECT_EQ(RouteError(EchoRoute("", "/e"), "routes[3]"), "routes[3].name: required");
}

TEST(ValidateRouteTest, KindRequired) {
  Route r;
  r.set_name("e");
  r.set_path("/e");
  EXPECT_THAT(RouteError(r), StartsWith("route.kind: one of websocket, echo,"));
}

Route Bridge() {
  Route r = EchoRoute("b", "/ws");
  r.mutable_http_bridge()->add_allowed_targets("https://api.example.com/v1");
  return r;
}

Route External() {
  Route r = EchoRoute("x", "/api/websocket/connect/{client_id}");
  r.mutable_external_client()->add_allowed_targets("ws://127.0.0.1:*");
  return r;
}

TEST(ValidateRouteTest, OutboundKindsAreAccepted) {
  EXPECT_TRUE(ValidateRoute(Bridge(), "route").ok()) << ValidateRoute(Bridge(), "route");
  EXPECT_TRUE(ValidateRoute(External(), "route").ok()) << ValidateRoute(External(), "route");
  Route full = Bridge();
  auto* hb = full.mutable_http_bridge();
  hb->add_allowed_address_ranges("loopback");
  hb->add_allowed_address_ranges("private");
  hb->set_max_in_flight(1024);
  hb->set_request_timeout_ms(600000);
  hb->set_follow_redirects(true);
  hb->set_max_redirects(20);
  hb->mutable_tls()->set_verify(wsgate::v1::OutboundTls::VERIFY_CA_FILE);
  hb->mutable_tls()->set_ca_file("/etc/ssl/certs/ca-certificates.crt");
  EXPECT_TRUE(ValidateRoute(full, "route").ok()) << ValidateRoute(full, "route");
}

TEST(ValidateRouteTest, HttpBridgeFields) {
  Route r = Bridge();
  r.mutable_http_bridge()->clear_allowed_targets();
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.allowed_targets: at least one"));
  r = Bridge();
  r.mutable_http_bridge()->add_allowed_targets("ftp://x");
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.allowed_targets[1]: "));
  r = Bridge();
  r.mutable_http_bridge()->add_allowed_targets("ws://x");
  EXPECT_THAT(RouteError(r),
              StartsWith("route.http_bridge.allowed_targets[1]: scheme 'ws' cannot be used"));
  r = Bridge();
  r.mutable_http_bridge()->add_allowed_address_ranges("everything");
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.allowed_address_ranges[0]: "));
  r = Bridge();
  r.mutable_http_bridge()->add_allowed_address_ranges("loopback");
  r.mutable_http_bridge()->add_allowed_address_ranges("loopback");
  EXPECT_THAT(RouteError(r),
              StartsWith("route.http_bridge.allowed_address_ranges[1]: 'loopback' is listed twice"));
  r = Bridge();
  r.mutable_http_bridge()->set_max_in_flight(1025);
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.max_in_flight: must be 0"));
  r = Bridge();
  r.mutable_http_bridge()->set_request_timeout_ms(600001);
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.request_timeout_ms: must be 0"));
  r = Bridge();
  r.mutable_http_bridge()->set_max_redirects(3);
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.max_redirects: only meaningful"));
  r.mutable_http_bridge()->set_follow_redirects(true);
  r.mutable_http_bridge()->set_max_redirects(21);
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.max_redirects: must be 0"));
  r = Bridge();
  r.mutable_http_bridge()->set_max_response_bytes((256ull << 20) + 1);
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.max_response_bytes: must be 0"));
  r = Bridge();
  r.mutable_http_bridge()->set_max_request_bytes((256ull << 20) + 1);
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.max_request_bytes: must be 0"));
  r = Bridge();
  r.mutable_http_bridge()->mutable_tls()->set_verify(wsgate::v1::OutboundTls::VERIFY_CA_FILE);
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.tls.ca_file: required"));
  r = Bridge();
  r.mutable_http_bridge()->mutable_tls()->set_ca_file("/x.pem");
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.tls.ca_file: only meaningful"));
  // A CA file is read when the route is validated: missing or not PEM is refused, named.
  r.mutable_http_bridge()->mutable_tls()->set_verify(wsgate::v1::OutboundTls::VERIFY_CA_FILE);
  r.mutable_http_bridge()->mutable_tls()->set_ca_file("/nonexistent/ca.pem");
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.tls.ca_file: '/nonexistent/ca.pem': "));
  const std::string not_pem = ::testing::TempDir() + "/not-a-ca.pem";
  std::ofstream(not_pem) << "not a certificate\n";
  r.mutable_http_bridge()->mutable_tls()->set_ca_file(not_pem);
  EXPECT_THAT(RouteError(r), StartsWith("route.http_bridge.tls.ca_file: '" + not_pem + "': "));
  auto ec = External();
  ec.mutable_external_client()->mutable_tls()->set_verify(wsgate::v1::OutboundTls::VERIFY_CA_FILE);
  ec.mutable_external_client()->mutable_tls()->set_ca_file("/nonexistent/ca.pem");
  EXPECT_THAT(RouteError(ec), StartsWith("route.external_client.tls.ca_file: '/nonexistent/"));
}

TEST(ValidateRouteTest, ExternalClientFields) {
  Route r = External();
  r.mutable_external_client()->clear_allowed_targets();
  EXPECT_THAT(RouteError(r), StartsWith("route.external_client.allowed_targets: at least one"));
  r = External();
  r.mutable_external_client()->add_allowed_targets("https://x");
  EXPECT_THAT(RouteError(r),
              StartsWith("route.external_client.allowed_targets[1]: scheme 'https' cannot"));
  r = External();
  r.mutable_external_client()->set_max_connections_per_client(1001);
  EXPECT_THAT(RouteError(r),
              StartsWith("route.external_client.max_connections_per_client: must be 0"));
  r = External();
  r.mutable_external_client()->set_connect_timeout_ms(300001);
  EXPECT_THAT(RouteError(r), StartsWith("route.external_client.connect_timeout_ms: must be 0"));
  r = External();
  r.mutable_external_client()->set_messages_per_minute(1000001);
  EXPECT_THAT(RouteError(r), StartsWith("route.external_client.messages_per_minute: must be 0"));
  r = External();
  r.set_path("/connect");
  EXPECT_THAT(RouteError(r),
              StartsWith("route.external_client: the path '/connect' has no {client_id}"));
  r = External();
  r.mutable_external_client()->set_client_id_param("user");
  EXPECT_THAT(RouteError(r), StartsWith("route.external_client.client_id_param: the path"));
  r.set_path("/c/{user}");
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
}

TEST(ValidateRouteTest, Room) {
  Route r = EchoRoute("chat", "/ws/{client_id}");
  r.mutable_room();
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
  r.set_path("/ws");
  EXPECT_THAT(RouteError(r), StartsWith("route.room: the path '/ws' has no {client_id}"));
  r.set_path("/ws/{user}");
  r.mutable_room()->set_client_id_param("user");
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
  r.mutable_room()->set_room_param("room");
  EXPECT_THAT(RouteError(r), StartsWith("route.room.room_param: the path '/ws/{user}' has no"));
  r.set_path("/ws/{room}/{user}");
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
  r.mutable_room()->set_room_param("user");
  EXPECT_EQ(RouteError(r), "route.room.room_param: must differ from client_id_param");
}

TEST(ValidateRouteTest, PubSub) {
  Route r = EchoRoute("ps", "/{agent_id}/ws/{session_id}");
  r.mutable_pubsub();
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
  r.set_path("/ws");
  EXPECT_THAT(RouteError(r), StartsWith("route.pubsub: the path '/ws' has no {session_id}"));
  r.set_path("/{agent_id}/ws/{session_id}");
  r.mutable_pubsub()->set_down_channel("agent:{agent_id}:{session_id}:down");
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
  r.mutable_pubsub()->set_down_channel("x:{nope}");
  EXPECT_THAT(RouteError(r), StartsWith("route.pubsub.down_channel: 'x:{nope}': {nope} is not"));
  r.mutable_pubsub()->set_down_channel("x:{session_id");
  EXPECT_THAT(RouteError(r), StartsWith("route.pubsub.down_channel: 'x:{session_id': unbalanced"));
  r.mutable_pubsub()->set_down_channel("x}");
  EXPECT_THAT(RouteError(r), StartsWith("route.pubsub.down_channel: 'x}': unbalanced"));
  r.mutable_pubsub()->clear_down_channel();
  r.mutable_pubsub()->set_up_channel("up:{}");
  EXPECT_THAT(RouteError(r), StartsWith("route.pubsub.up_channel: 'up:{}': {} is not"));
  r.mutable_pubsub()->set_up_channel("up:{session_id}");
  r.mutable_pubsub()->set_disable_up(true);
  EXPECT_EQ(RouteError(r), "route.pubsub.up_channel: meaningless with disable_up: true");
  r.mutable_pubsub()->clear_up_channel();
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
  r.mutable_pubsub()->set_subscribe_timeout_ms(300001);
  EXPECT_THAT(RouteError(r), StartsWith("route.pubsub.subscribe_timeout_ms: must be 0"));
  r.mutable_pubsub()->set_subscribe_timeout_ms(0);
  r.mutable_pubsub()->set_max_queued_bytes((1ull << 30) + 1);
  EXPECT_THAT(RouteError(r), StartsWith("route.pubsub.max_queued_bytes: must be 0"));
  r.mutable_pubsub()->clear_max_queued_bytes();
  r.mutable_pubsub()->set_auth_key("auth:{session_id}");
  EXPECT_EQ(RouteError(r), "route.pubsub.auth_key: only meaningful with auth: AUTH_REDIS_TOKEN");
  r.mutable_pubsub()->set_auth(wsgate::v1::PubSubRoute::AUTH_REDIS_TOKEN);
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
  r.mutable_pubsub()->set_auth_key("auth:{sid}");
  EXPECT_THAT(RouteError(r), StartsWith("route.pubsub.auth_key: 'auth:{sid}': {sid} is not"));
}

TEST(ValidateRouteTest, PubSubJwtSecretAndTokenSources) {
  Route r = EchoRoute("ps", "/{agent_id}/ws/{session_id}");
  auto* ps = r.mutable_pubsub();
  ps->set_auth(wsgate::v1::PubSubRoute::AUTH_JWT_HS256);
  EXPECT_EQ(RouteError(r),
            "route.pubsub.jwt_secret_file: name the secret with jwt_secret_file or jwt_secret_env");
  ps->set_jwt_secret_env("WSGATE_TEST_UNSET_JWT_SECRET_VARIABLE");
  EXPECT_EQ(RouteError(r), "route.pubsub.jwt_secret_env: environment variable "
                           "WSGATE_TEST_UNSET_JWT_SECRET_VARIABLE is unset or empty");
  ps->set_jwt_secret_env("PATH");  // set in every test environment
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
  ps->set_jwt_secret_file("/nonexistent/jwt.secret");
  EXPECT_EQ(RouteError(r),
            "route.pubsub.jwt_secret_file: set only one of jwt_secret_file and jwt_secret_env");
  ps->clear_jwt_secret_env();
  EXPECT_THAT(RouteError(r),
              StartsWith("route.pubsub.jwt_secret_file: cannot read '/nonexistent/jwt.secret'"));
  ps->set_jwt_secret_file("/dev/null");
  EXPECT_EQ(RouteError(r), "route.pubsub.jwt_secret_file: '/dev/null' is empty");
  ps->set_auth(wsgate::v1::PubSubRoute::AUTH_NONE);
  EXPECT_EQ(RouteError(r),
            "route.pubsub.jwt_secret_file: only meaningful with auth: AUTH_JWT_HS256");
  ps->clear_jwt_secret_file();
  ps->set_token_query_param("access_token");
  EXPECT_EQ(RouteError(r), "route.pubsub.token_query_param: only meaningful with an auth mode");
  ps->set_auth(wsgate::v1::PubSubRoute::AUTH_REDIS_TOKEN);
  ps->set_token_subprotocol(true);
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
  ps->set_token_query_param("access token");
  EXPECT_THAT(RouteError(r), StartsWith("route.pubsub.token_query_param: 'access token': letters"));
}

TEST(ValidateRouteTest, RoomJsonFormatTakesNoTemplates) {
  Route r = EchoRoute("chat", "/ws/{client_id}");
  r.mutable_room()->set_format(wsgate::v1::RoomRoute::FORMAT_JSON);
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
  r.mutable_room()->set_leave_template("bye");
  EXPECT_EQ(RouteError(r), "route.room.leave_template: meaningless with format: FORMAT_JSON");
}

TEST(ValidateRouteTest, WebSocketNeedsAnUpstream) {
  Route r = Proxy();
  r.mutable_websocket()->clear_upstreams();
  EXPECT_THAT(RouteError(r), StartsWith("route.websocket.upstreams: at least one"));
}

TEST(ValidateRouteTest, UpstreamUrls) {
  auto error_for = [](const std::string& url) {
    Route r = Proxy();
    r.mutable_websocket()->add_upstreams(url);
    return RouteError(r);
  };
  EXPECT_EQ(error_for("http://a/x"),
            "route.websocket.upstreams[1]: scheme must be ws:// or wss:// (got http://)");
  EXPECT_THAT(error_for("ws://a:0/"),
              StartsWith("route.websocket.upstreams[1]: port 0 is out of range"));
  EXPECT_THAT(error_for("ws://a:65536/"), StartsWith("route.websocket.upstreams[1]: port 65536"));
  EXPECT_THAT(error_for("ws://a:x/"), StartsWith("route.websocket.upstreams[1]: port 'x'"));
  EXPECT_THAT(error_for("a:80"),
              StartsWith("route.websocket.upstreams[1]: 'a:80' is not a ws:// URL"));
  EXPECT_THAT(error_for("ws:///x"), StartsWith("route.websocket.upstreams[1]: host is missing"));
}

TEST(ValidateRouteTest, ConnectTimeoutRange) {
  Route r = Proxy();
  r.mutable_websocket()->set_connect_timeout_ms(300001);
  EXPECT_EQ(RouteError(r),
            "route.websocket.connect_timeout_ms: must be 0 (default 5000) or 1..300000, got "
            "300001");
}

TEST(ValidateRouteTest, ForwardHeaderMustBeAToken) {
  Route r = Proxy();
  r.mutable_websocket()->add_forward_headers("Bad Header");
  EXPECT_EQ(RouteError(r),
            "route.websocket.forward_headers[0]: 'Bad Header' is not a valid header name");
}

TEST(ValidateRouteTest, ForwardHeaderMustNotBeHopByHopOrHandshake) {
  for (const char* h : {"Host", "upgrade", "Connection", "Sec-WebSocket-Key",
                        "sec-websocket-protocol", "Transfer-Encoding"}) {
    Route r = Proxy();
    r.mutable_websocket()->add_forward_headers(h);
    EXPECT_THAT(RouteError(r), StartsWith("route.websocket.forward_headers[0]: header '" +
                                          std::string(h) + "' is managed by the proxy"));
  }
}

TEST(ValidateRouteTest, ForwardHeaderListedTwice) {
  Route r = Proxy();
  r.mutable_websocket()->add_forward_headers("Authorization");
  r.mutable_websocket()->add_forward_headers("authorization");
  EXPECT_THAT(RouteError(r), StartsWith("route.websocket.forward_headers[1]: header "));
}

TEST(ValidateRouteTest, SetHeaderNameMustBeAToken) {
  Route r = Proxy();
  (*r.mutable_websocket()->mutable_set_headers())["X:Y"] = "v";
  EXPECT_EQ(RouteError(r),
            "route.websocket.set_headers[\"X:Y\"]: 'X:Y' is not a valid header name");
}

TEST(ValidateRouteTest, SetHeaderMustNotBeHopByHopOrHandshake) {
  Route r = Proxy();
  (*r.mutable_websocket()->mutable_set_headers())["Sec-WebSocket-Version"] = "8";
  EXPECT_THAT(RouteError(r), StartsWith("route.websocket.set_headers[\"Sec-WebSocket-Version\"]: "
                                        "header 'Sec-WebSocket-Version' is managed by the proxy"));
}

TEST(ValidateRouteTest, SetHeaderValueWithoutCrLf) {
  for (const char* v : {"a\r\nX-Evil: 1", "a\nb", "a\rb"}) {
    Route r = Proxy();
    (*r.mutable_websocket()->mutable_set_headers())["X-A"] = v;
    EXPECT_EQ(RouteError(r),
              "route.websocket.set_headers[\"X-A\"]: value must not contain CR or LF");
  }
  Route r = Proxy();
  (*r.mutable_websocket()->mutable_set_headers())["X-A"] = std::string("a\0b", 3);
  EXPECT_THAT(RouteError(r), HasSubstr("control characters"));
}

TEST(ValidateRouteTest, SetHeaderTwiceIgnoringCase) {
  Route r = Proxy();
  (*r.mutable_websocket()->mutable_set_headers())["X-A"] = "1";
  (*r.mutable_websocket()->mutable_set_headers())["x-a"] = "2";
  EXPECT_THAT(RouteError(r), HasSubstr("is set twice"));
}

TEST(ValidateRouteTest, MaxMessageBytesRange) {
  Route r = EchoRoute("e", "/e");
  r.mutable_limits()->set_max_message_bytes((256ull << 20) + 1);
  EXPECT_EQ(RouteError(r),
            "route.limits.max_message_bytes: must be 0 (default 16777216) or 1..268435456, got "
            "268435457");
}

TEST(ValidateRouteTest, EveryLimitAccepted) {
  Route r = EchoRoute("e", "/e");
  wsgate::v1::Limits* l = r.mutable_limits();
  l->set_messages_per_second(1.5);
  l->set_message_burst(3);
  l->set_rate_policy(wsgate::v1::Limits::RATE_POLICY_CLOSE);
  l->set_max_connections(10);
  l->set_max_connections_per_client(2);
  l->set_max_connections_per_address(3);
  l->set_handshakes_per_second(0.5);
  l->set_idle_timeout_ms(1000);
  l->set_max_lifetime_ms(60000);
  l->set_send_queue_bytes(1 << 20);
  l->set_slow_consumer_policy(wsgate::v1::Limits::SLOW_CONSUMER_POLICY_DROP_OLDEST);
  l->set_ping_interval_ms(1000);
  l->set_ping_timeout_ms(500);
  EXPECT_TRUE(ValidateRoute(r, "route").ok()) << ValidateRoute(r, "route");
}

TEST(ValidateRouteTest, LimitsRefusalsNameTheField) {
  struct Case {
    void (*set)(wsgate::v1::Limits*);
    const char* error;
  };
  using L = wsgate::v1::Limits;
  const Case cases[] = {
      {[](L* l) { l->set_messages_per_second(-1); },
       "route.limits.messages_per_second: must be >= 0 (0: unlimited), got -1"},
      {[](L* l) { l->set_messages_per_second(std::nan("")); },
       "route.limits.messages_per_second: must be >= 0"},
      {[](L* l) { l->set_messages_per_second(2e6); },
       "route.limits.messages_per_second: must be at most"},
      {[](L* l) { l->set_message_burst(5); },
       "route.limits.message_burst: needs route.limits.messages_per_second"},
      {[](L* l) { l->set_rate_policy(L::RATE_POLICY_CLOSE); },
       "route.limits.rate_policy: needs route.limits.messages_per_second"},
      {[](L* l) {
         l->set_messages_per_second(1);
         l->set_rate_policy(static_cast<L::RatePolicy>(9));
       },
       "route.limits.rate_policy: unknown value 9"},
      {[](L* l) { l->set_handshakes_per_second(-0.5); },
       "route.limits.handshakes_per_second: must be >= 0"},
      {[](L* l) { l->set_send_queue_bytes((1ull << 30) + 1); },
       "route.limits.send_queue_bytes: must be 0 (built-in backpressure) or 1..1073741824"},
      {[](L* l) { l->set_slow_consumer_policy(L::SLOW_CONSUMER_POLICY_CLOSE); },
       "route.limits.slow_consumer_policy: needs route.limits.send_queue_bytes"},
      {[](L* l) { l->set_ping_interval_ms(50); },
       "route.limits.ping_interval_ms: must be 0 (no pings) or at least 100, got 50"},
      {[](L* l) { l->set_ping_timeout_ms(500); },
       "route.limits.ping_timeout_ms: needs route.limits.ping_interval_ms"},
  };
  for (const Case& c : cases) {
    Route r = EchoRoute("e", "/e");
    c.set(r.mutable_limits());
    EXPECT_THAT(RouteError(r), StartsWith(c.error));
  }
}

TEST(ValidateRouteTest, DropOldestOnlyWhereTheWorkerSends) {
  Route r = ProxyRoute("p", "/p", "ws://127.0.0.1:9000/");
  r.mutable_limits()->set_send_queue_bytes(4096);
  r.mutable_limits()->set_slow_consumer_policy(
      wsgate::v1::Limits::SLOW_CONSUMER_POLICY_DROP_OLDEST);
  EXPECT_TRUE(ValidateRoute(r, "route").ok());
  Route room;
  room.set_name("chat");
  room.set_path("/chat/{client_id}");
  room.mutable_room();
  *room.mutable_limits() = r.limits();
  EXPECT_THAT(RouteError(room),
              StartsWith("route.limits.slow_consumer_policy: SLOW_CONSUMER_POLICY_DROP_OLDEST is "
                         "enforced for kinds websocket and echo only"));
}

TEST(ValidateConfigTest, DefaultLimitsValidated) {
  wsgate::v1::Config c;
  *c.add_routes() = EchoRoute("a", "/a");
  c.mutable_default_limits()->set_idle_timeout_ms(1000);
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.mutable_default_limits()->set_message_burst(2);
  EXPECT_EQ(ConfigError(c),
            "default_limits.message_burst: needs "
            "default_limits.messages_per_second (a burst of an unlimited rate)");
}

wsgate::v1::Config TwoRoutes() {
  wsgate::v1::Config c;
  *c.add_routes() = EchoRoute("a", "/a");
  *c.add_routes() = Proxy();
  return c;
}

TEST(ValidateConfigTest, Good) {
  wsgate::v1::Config c = TwoRoutes();
  c.mutable_server()->set_port(65535);
  c.mutable_server()->set_workers(64);
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
  EXPECT_TRUE(ValidateConfig(wsgate::v1::Config()).ok());
}

TEST(ValidateConfigTest, RoutesAreValidatedWithTheirIndex) {
  wsgate::v1::Config c = TwoRoutes();
  c.mutable_routes(1)->mutable_websocket()->set_upstreams(0, "http://x");
  EXPECT_EQ(ConfigError(c), "routes[1].websocket.upstreams[0]: scheme must be ws:// or wss:// (got http://)");
}

TEST(ValidateConfigTest, NamesUnique) {
  wsgate::v1::Config c = TwoRoutes();
  *c.add_routes() = EchoRoute("a", "/other");
  EXPECT_EQ(ConfigError(c), "routes[2].name: route name 'a' is already used by routes[0]");
}

TEST(ValidateConfigTest, SamePathShapeNamesBothRoutes) {
  wsgate::v1::Config c;
  *c.add_routes() = EchoRoute("first", "/ws/{client_id}");
  *c.add_routes() = EchoRoute("second", "/ws/{id}");
  std::string e = ConfigError(c);
  EXPECT_THAT(e, StartsWith("routes[1].path: "));
  EXPECT_THAT(e, HasSubstr("'second'"));
  EXPECT_THAT(e, HasSubstr("'first'"));
  // Different shapes are fine, even if they can match the same path (the literal wins).
  c.mutable_routes(1)->set_path("/ws/admin");
  EXPECT_TRUE(ValidateConfig(c).ok());
}

TEST(ValidateConfigTest, Ports) {
  for (const char* which : {"port", "admin_port", "grpc_port"}) {
    wsgate::v1::Config c = TwoRoutes();
    auto* s = c.mutable_server();
    const auto* f = s->GetDescriptor()->FindFieldByName(which);
    s->GetReflection()->SetUInt32(s, f, 65536);
    EXPECT_EQ(ConfigError(c),
              std::string("server.") + which + ": must be at most 65535, got 65536");
  }
}

TEST(ValidateConfigTest, Workers) {
  wsgate::v1::Config c = TwoRoutes();
  c.mutable_server()->set_workers(65);
  EXPECT_EQ(ConfigError(c), "server.workers: must be 0 (one per core) or 1..64, got 65");
}

// What the data plane would refuse at start is refused here, named by its config field.
TEST(ValidateConfigTest, ListenAddressIsAnIpLiteral) {
  wsgate::v1::Config c = TwoRoutes();
  c.mutable_server()->set_listen_address("localhost");
  EXPECT_THAT(ConfigError(c),
              StartsWith("server.listen_address: 'localhost' is not an IP address"));
  for (const char* good : {"0.0.0.0", "127.0.0.1", "::", "::1"}) {
    c.mutable_server()->set_listen_address(good);
    EXPECT_TRUE(ValidateConfig(c).ok()) << good << ": " << ValidateConfig(c);
  }
}

TEST(ValidateConfigTest, RedisUrlIsARedisUrl) {
  wsgate::v1::Config c = TwoRoutes();
  c.mutable_server()->set_redis_url("http://x");
  const std::string error = ConfigError(c);
  EXPECT_THAT(error, StartsWith("server.redis_url: must start with redis://"));
  EXPECT_THAT(error, ::testing::Not(HasSubstr("REDIS_URL")));
  c.mutable_server()->set_redis_url("redis://127.0.0.1:1/2");
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
}

}  // namespace
}  // namespace wsgate::controlplane
