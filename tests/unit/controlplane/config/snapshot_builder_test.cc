#include "controlplane/config/snapshot_builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/unit/controlplane/config/test_util.h"

namespace wsgate::controlplane {
namespace {

using testing::EchoRoute;
using ::testing::ElementsAre;
using ::testing::Pair;
using testing::ProxyRoute;

TEST(BuildSnapshotTest, DefaultsAreFilledIn) {
  dataplane::StatsRegistry stats(1);
  auto snap = BuildSnapshot({ProxyRoute("p", "/p", "ws://h/x")}, 7, &stats);
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
  auto snap = BuildSnapshot({p, EchoRoute("e", "/e")}, 9, &stats);
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

TEST(BuildSnapshotTest, StatsPointerComesFromTheRegistryAndIsStable) {
  dataplane::StatsRegistry stats(1);
  auto s1 = BuildSnapshot({EchoRoute("e", "/e")}, 1, &stats);
  auto s2 = BuildSnapshot({EchoRoute("e", "/e2"), EchoRoute("f", "/f")}, 2, &stats);
  ASSERT_NE(s1->routes[0]->stats, nullptr);
  EXPECT_EQ(s1->routes[0]->stats, stats.ForRoute("e"));
  EXPECT_EQ(s2->routes[0]->stats, s1->routes[0]->stats);  // same name, same counters
  EXPECT_EQ(s2->routes[1]->stats, stats.ForRoute("f"));
  EXPECT_EQ(s1->routes[0]->stats->route(), "e");
}

TEST(BuildSnapshotTest, TableMatchesTheRoutes) {
  dataplane::StatsRegistry stats(1);
  auto snap =
      BuildSnapshot({EchoRoute("any", "/ws/{id}"), EchoRoute("admin", "/ws/admin")}, 3, &stats);
  auto m = snap->table.Match("/ws/admin?x");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route->name, "admin");
  m = snap->table.Match("/ws/c1");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route->name, "any");
  EXPECT_THAT(m->params, ElementsAre(Pair("id", "c1")));
}

TEST(BuildSnapshotDeathTest, UnvalidatedRouteCrashesLoudly) {
  dataplane::StatsRegistry stats(1);
  wsgate::v1::Route r;
  r.set_name("x");
  r.set_path("/x");  // no kind
  EXPECT_DEATH(BuildSnapshot({r}, 1, &stats), "");
}

}  // namespace
}  // namespace wsgate::controlplane
