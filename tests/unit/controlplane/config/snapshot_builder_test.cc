#include "controlplane/config/snapshot_builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dataplane/outbound/http_client.h"
#include "dataplane/outbound/tls.h"
#include "tests/unit/controlplane/config/test_util.h"

namespace wsgate::controlplane {
namespace {

using testing::EchoRoute;
using ::testing::ElementsAre;
using ::testing::Pair;
using testing::ProxyRoute;

// BuildSnapshot of routes that must translate.
dataplane::SnapshotPtr Built(
    const std::vector<wsgate::v1::Route>& routes, uint64_t version, dataplane::StatsRegistry* stats,
    const wsgate::v1::Limits& defaults = wsgate::v1::Limits::default_instance()) {
  auto snap = BuildSnapshot(routes, version, stats, defaults);
  EXPECT_TRUE(snap.ok()) << snap.status();
  return snap.ok() ? *std::move(snap) : nullptr;
}

TEST(BuildSnapshotTest, DefaultsAreFilledIn) {
  dataplane::StatsRegistry stats(1);
  auto snap = Built({ProxyRoute("p", "/p", "ws://h/x")}, 7, &stats);
  ASSERT_EQ(snap->routes.size(), 1u);
  const auto& r = *snap->routes[0];
  EXPECT_EQ(snap->version, 7u);
  EXPECT_EQ(r.kind, dataplane::RouteKind::kWebSocket);
  EXPECT_EQ(r.limits.max_message_bytes, 16ull << 20);
  EXPECT_EQ(r.websocket.connect_timeout, std::chrono::milliseconds(5000));
}

TEST(BuildSnapshotTest, ConfiguredValuesAndParsedUrl) {
  dataplane::StatsRegistry stats(2);
  wsgate::v1::Route p = ProxyRoute("p", "/ws/{id}", "ws://10.0.0.1:9000/up?a=b");
  p.mutable_websocket()->add_upstreams("ws://[::1]");
  p.mutable_websocket()->add_forward_headers("Authorization");
  p.mutable_websocket()->add_forward_headers("X-Request-ID");
  (*p.mutable_websocket()->mutable_set_headers())["X-Gateway"] = "WSGate";
  (*p.mutable_websocket()->mutable_set_headers())["A-First"] = "1";
  p.mutable_websocket()->set_connect_timeout_ms(250);
  p.mutable_limits()->set_max_message_bytes(1024);
  p.set_version(5);
  auto snap = Built({p, EchoRoute("e", "/e")}, 9, &stats);
  ASSERT_EQ(snap->routes.size(), 2u);
  const auto& r = *snap->routes[0];
  EXPECT_EQ(r.name, "p");
  EXPECT_EQ(r.path, "/ws/{id}");
  EXPECT_EQ(r.version, 5u);
  EXPECT_EQ(r.limits.max_message_bytes, 1024u);
  EXPECT_EQ(r.websocket.connect_timeout, std::chrono::milliseconds(250));
  ASSERT_EQ(r.websocket.upstreams.size(), 2u);
  EXPECT_EQ(r.websocket.upstreams[0].url, "ws://10.0.0.1:9000/up?a=b");
  EXPECT_EQ(r.websocket.upstreams[0].host, "10.0.0.1");
  EXPECT_EQ(r.websocket.upstreams[0].port, 9000);
  EXPECT_EQ(r.websocket.upstreams[0].path_and_query, "/up?a=b");
  EXPECT_EQ(r.websocket.upstreams[1].host, "::1");
  EXPECT_EQ(r.websocket.upstreams[1].port, 80);
  EXPECT_EQ(r.websocket.upstreams[1].path_and_query, "/");
  EXPECT_THAT(r.websocket.forward_headers, ElementsAre("authorization", "x-request-id"));
  EXPECT_THAT(r.websocket.set_headers,
              ElementsAre(Pair("a-first", "1"), Pair("x-gateway", "WSGate")));  // values kept
  EXPECT_EQ(snap->routes[1]->kind, dataplane::RouteKind::kEcho);
}

TEST(BuildSnapshotTest, HttpBridgeDefaultsAndValues) {
  dataplane::StatsRegistry stats(1);
  wsgate::v1::Route d = EchoRoute("d", "/d");
  d.mutable_http_bridge()->add_allowed_targets("https://api.example.com/v1");
  wsgate::v1::Route c = EchoRoute("c", "/c");
  auto* hb = c.mutable_http_bridge();
  hb->add_allowed_targets("http://127.0.0.1:*");
  hb->add_allowed_address_ranges("loopback");
  hb->set_max_in_flight(3);
  hb->set_request_timeout_ms(1500);
  hb->set_follow_redirects(true);
  hb->set_max_redirects(2);
  hb->set_max_request_bytes(100);
  hb->set_max_response_bytes(200);
  hb->mutable_tls()->set_verify(wsgate::v1::OutboundTls::VERIFY_OFF);
  auto snap = Built({d, c}, 1, &stats);
  const auto& rd = *snap->routes[0];
  EXPECT_EQ(rd.kind, dataplane::RouteKind::kHttpBridge);
  EXPECT_EQ(rd.http_bridge.max_in_flight, 16u);
  EXPECT_EQ(rd.http_bridge.request_timeout, std::chrono::milliseconds(30000));
  ASSERT_NE(rd.outbound, nullptr);
  EXPECT_EQ(rd.outbound->max_request_bytes, 1ull << 20);
  EXPECT_EQ(rd.outbound->max_response_bytes, 10ull << 20);
  EXPECT_FALSE(rd.outbound->follow_redirects);
  EXPECT_EQ(rd.outbound->policy.allowed_ranges(), 0u);
  EXPECT_FALSE(rd.outbound->policy.Check("https://api.example.com/v1/x").has_value());
  EXPECT_TRUE(rd.outbound->policy.Check("https://api.example.com/v2").has_value());
  ASSERT_NE(rd.outbound->tls, nullptr);
  EXPECT_TRUE(dataplane::outbound::VerifiesPeer(*rd.outbound->tls));
  EXPECT_EQ(rd.limits.max_message_bytes, 16ull << 20);

  const auto& rc = *snap->routes[1];
  EXPECT_EQ(rc.http_bridge.max_in_flight, 3u);
  EXPECT_EQ(rc.http_bridge.request_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(rc.outbound->max_request_bytes, 100u);
  EXPECT_EQ(rc.outbound->max_response_bytes, 200u);
  EXPECT_TRUE(rc.outbound->follow_redirects);
  EXPECT_EQ(rc.outbound->max_redirects, 2);
  EXPECT_EQ(rc.outbound->policy.allowed_ranges(), dataplane::outbound::kRangeLoopback);
  ASSERT_NE(rc.outbound->tls, nullptr);
  EXPECT_FALSE(dataplane::outbound::VerifiesPeer(*rc.outbound->tls));
}

TEST(BuildSnapshotTest, ExternalClientDefaultsAndValues) {
  dataplane::StatsRegistry stats(1);
  wsgate::v1::Route d = EchoRoute("d", "/d/{client_id}");
  d.mutable_external_client()->add_allowed_targets("ws://127.0.0.1:*");
  wsgate::v1::Route c = EchoRoute("c", "/c/{user}");
  auto* ec = c.mutable_external_client();
  ec->add_allowed_targets("ws://127.0.0.1:*");
  ec->set_max_connections_per_client(2);
  ec->set_connect_timeout_ms(700);
  ec->set_messages_per_minute(5);
  ec->set_client_id_param("user");
  c.mutable_limits()->set_max_message_bytes(4096);
  auto snap = Built({d, c}, 1, &stats);
  const auto& rd = *snap->routes[0];
  EXPECT_EQ(rd.kind, dataplane::RouteKind::kExternalClient);
  EXPECT_EQ(rd.external_client.max_connections_per_client, 10u);
  EXPECT_EQ(rd.external_client.connect_timeout, std::chrono::milliseconds(30000));
  EXPECT_EQ(rd.external_client.messages_per_minute, 100u);
  EXPECT_EQ(rd.external_client.client_id_param, "client_id");
  EXPECT_EQ(rd.limits.max_message_bytes, 1ull << 20);  // the seed's 1 MiB
  ASSERT_NE(rd.outbound, nullptr);
  EXPECT_FALSE(rd.outbound->policy.Check("ws://127.0.0.1:9/x").has_value());
  const auto& rc = *snap->routes[1];
  EXPECT_EQ(rc.external_client.max_connections_per_client, 2u);
  EXPECT_EQ(rc.external_client.connect_timeout, std::chrono::milliseconds(700));
  EXPECT_EQ(rc.external_client.messages_per_minute, 5u);
  EXPECT_EQ(rc.external_client.client_id_param, "user");
  EXPECT_EQ(rc.limits.max_message_bytes, 4096u);
}

TEST(BuildSnapshotTest, EffectiveLimitsAreRouteOverDefaultsOverBuiltIns) {
  dataplane::StatsRegistry stats(1);
  wsgate::v1::Limits defaults;
  defaults.set_messages_per_second(10);
  defaults.set_idle_timeout_ms(5000);
  defaults.set_max_connections_per_address(4);
  wsgate::v1::Route e = EchoRoute("e", "/e/{client_id}");
  e.mutable_limits()->set_messages_per_second(2.5);
  e.mutable_limits()->set_rate_policy(wsgate::v1::Limits::RATE_POLICY_CLOSE);
  e.mutable_limits()->set_ping_interval_ms(1000);
  wsgate::v1::Route plain = EchoRoute("plain", "/plain");
  auto snap = Built({e, plain}, 1, &stats, defaults);
  const auto& re = snap->routes[0]->limits;
  EXPECT_DOUBLE_EQ(re.messages_per_second, 2.5);  // the route's own
  EXPECT_EQ(re.message_burst, 3u);                // built-in: ceil(rate)
  EXPECT_EQ(re.rate_policy, dataplane::RouteLimits::RatePolicy::kClose);
  EXPECT_EQ(re.idle_timeout_ms, 5000u);  // the default
  EXPECT_EQ(re.max_connections_per_address, 4u);
  EXPECT_EQ(re.ping_interval_ms, 1000u);
  EXPECT_EQ(re.ping_timeout_ms, 1000u);        // built-in: the interval
  EXPECT_EQ(re.client_id_param, "client_id");  // a {client_id} parameter
  EXPECT_EQ(re.max_message_bytes, 16ull << 20);
  const auto& rp = snap->routes[1]->limits;
  EXPECT_DOUBLE_EQ(rp.messages_per_second, 10);
  EXPECT_EQ(rp.message_burst, 10u);
  EXPECT_EQ(rp.rate_policy, dataplane::RouteLimits::RatePolicy::kDrop);
  EXPECT_EQ(rp.client_id_param, "");
  EXPECT_EQ(rp.ping_interval_ms, 0u);

  wsgate::v1::Limits eff = EffectiveLimits(e, defaults);
  EXPECT_DOUBLE_EQ(eff.messages_per_second(), 2.5);
  EXPECT_EQ(eff.message_burst(), 3u);
  EXPECT_EQ(eff.idle_timeout_ms(), 5000u);
  EXPECT_EQ(eff.slow_consumer_policy(), wsgate::v1::Limits::SLOW_CONSUMER_POLICY_CLOSE);
}

TEST(BuildSnapshotTest, DropOldestFromTheDefaultsIsCloseWhereTheWorkerDoesNotSend) {
  dataplane::StatsRegistry stats(1);
  wsgate::v1::Limits defaults;
  defaults.set_send_queue_bytes(4096);
  defaults.set_slow_consumer_policy(wsgate::v1::Limits::SLOW_CONSUMER_POLICY_DROP_OLDEST);
  wsgate::v1::Route echo = EchoRoute("e", "/e");
  wsgate::v1::Route room = EchoRoute("room", "/chat/{client_id}");
  room.mutable_room();
  auto snap = Built({echo, room}, 1, &stats, defaults);
  EXPECT_EQ(snap->routes[0]->limits.slow_consumer,
            dataplane::RouteLimits::SlowConsumer::kDropOldest);
  EXPECT_EQ(snap->routes[1]->limits.slow_consumer, dataplane::RouteLimits::SlowConsumer::kClose);
  EXPECT_EQ(EffectiveLimits(room, defaults).slow_consumer_policy(),
            wsgate::v1::Limits::SLOW_CONSUMER_POLICY_CLOSE);
  EXPECT_EQ(snap->routes[1]->limits.send_queue_bytes, 4096u);
}

TEST(BuildSnapshotTest, ClientIdParamPerKind) {
  dataplane::StatsRegistry stats(1);
  wsgate::v1::Route room = EchoRoute("room", "/chat/{room}/{who}");
  room.mutable_room()->set_client_id_param("who");
  wsgate::v1::Route ps = EchoRoute("ps", "/ps/{sid}");
  ps.mutable_pubsub()->set_session_param("sid");
  wsgate::v1::Route ps_default = EchoRoute("psd", "/psd/{session_id}");
  ps_default.mutable_pubsub();
  auto snap = Built({room, ps, ps_default}, 1, &stats);
  EXPECT_EQ(snap->routes[0]->limits.client_id_param, "who");
  EXPECT_EQ(snap->routes[1]->limits.client_id_param, "sid");
  EXPECT_EQ(snap->routes[2]->limits.client_id_param, "session_id");
}

TEST(BuildSnapshotTest, PubSubJwtSecretIsReadOnEveryBuildAndFailsClosed) {
  dataplane::StatsRegistry stats(1);
  std::string path = ::testing::TempDir() + "wsgate_jwt_secret_test";
  auto write = [&](const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  };
  wsgate::v1::Route r = EchoRoute("j", "/j/{sid}");
  auto* ps = r.mutable_pubsub();
  ps->set_session_param("sid");
  ps->set_auth(wsgate::v1::PubSubRoute::AUTH_JWT_HS256);
  ps->set_jwt_secret_file(path);
  ps->set_token_query_param("access_token");
  ps->set_token_subprotocol(true);
  ps->set_validate_json(true);
  ps->set_refuse_binary(true);
  r.mutable_limits()->set_ping_interval_ms(1500);
  r.mutable_limits()->set_ping_timeout_ms(700);
  write("first\r\n");
  auto snap = Built({r}, 1, &stats);
  const auto& x = snap->routes[0]->pubsub;
  EXPECT_EQ(x.auth, dataplane::PubSubSettings::Auth::kJwtHs256);
  EXPECT_EQ(x.jwt_secret, "first");  // trailing CR/LF removed
  EXPECT_EQ(x.session_param, "sid");
  EXPECT_EQ(x.token_query_param, "access_token");
  EXPECT_TRUE(x.token_subprotocol);
  EXPECT_TRUE(x.validate_json);
  EXPECT_TRUE(x.refuse_binary);
  EXPECT_EQ(snap->routes[0]->limits.ping_interval_ms, 1500u);
  EXPECT_EQ(snap->routes[0]->limits.ping_timeout_ms, 700u);
  write("rotated");
  EXPECT_EQ(Built({r}, 2, &stats)->routes[0]->pubsub.jwt_secret, "rotated");
  // Gone after validation: the route is built without a secret (its handshakes get 503).
  std::remove(path.c_str());
  EXPECT_EQ(Built({r}, 3, &stats)->routes[0]->pubsub.jwt_secret, "");
  ps->clear_jwt_secret_file();
  ps->set_jwt_secret_env("WSGATE_SNAPSHOT_TEST_JWT");
  ::setenv("WSGATE_SNAPSHOT_TEST_JWT", "from-env\n", 1);
  EXPECT_EQ(Built({r}, 4, &stats)->routes[0]->pubsub.jwt_secret, "from-env\n");  // as-is
  ::unsetenv("WSGATE_SNAPSHOT_TEST_JWT");
}

TEST(BuildSnapshotTest, RoomFormat) {
  dataplane::StatsRegistry stats(1);
  wsgate::v1::Route text = EchoRoute("t", "/t/{client_id}");
  text.mutable_room();
  wsgate::v1::Route json = EchoRoute("j", "/j/{client_id}");
  json.mutable_room()->set_format(wsgate::v1::RoomRoute::FORMAT_JSON);
  auto snap = Built({text, json}, 1, &stats);
  EXPECT_FALSE(snap->routes[0]->room.json_format);
  EXPECT_TRUE(snap->routes[1]->room.json_format);
}

TEST(BuildSnapshotTest, StatsPointerComesFromTheRegistryAndIsStable) {
  dataplane::StatsRegistry stats(1);
  auto s1 = Built({EchoRoute("e", "/e")}, 1, &stats);
  auto s2 = Built({EchoRoute("e", "/e2"), EchoRoute("f", "/f")}, 2, &stats);
  ASSERT_NE(s1->routes[0]->stats, nullptr);
  EXPECT_EQ(s1->routes[0]->stats, stats.ForRoute("e"));
  EXPECT_EQ(s2->routes[0]->stats, s1->routes[0]->stats);  // same name, same counters
  EXPECT_EQ(s2->routes[1]->stats, stats.ForRoute("f"));
  EXPECT_EQ(s1->routes[0]->stats->route(), "e");
}

TEST(BuildSnapshotTest, TableMatchesTheRoutes) {
  dataplane::StatsRegistry stats(1);
  auto snap = Built({EchoRoute("any", "/ws/{id}"), EchoRoute("admin", "/ws/admin")}, 3, &stats);
  auto m = snap->table.Match("/ws/admin?x");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route->name, "admin");
  m = snap->table.Match("/ws/c1");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route->name, "any");
  EXPECT_THAT(m->params, ElementsAre(Pair("id", "c1")));
}

TEST(BuildSnapshotTest, UntranslatableRouteIsAnErrorNotACrash) {
  dataplane::StatsRegistry stats(1);
  wsgate::v1::Route r;
  r.set_name("x");
  r.set_path("/x");  // no kind
  auto snap = BuildSnapshot({EchoRoute("e", "/e"), r}, 1, &stats);
  ASSERT_FALSE(snap.ok());
  EXPECT_EQ(snap.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(snap.status().message()), ::testing::StartsWith("routes[1].kind: "));
  // Nothing was registered for a build that failed.
  int registered = 0;
  stats.ForEach([&](const dataplane::RouteStats&) { ++registered; });
  EXPECT_EQ(registered, 0);
}

}  // namespace
}  // namespace wsgate::controlplane
