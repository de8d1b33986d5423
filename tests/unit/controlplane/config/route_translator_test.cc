// TranslateRoute: the one walk that validates a route and builds its runtime form.
#include "controlplane/config/route_translator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "controlplane/config/config_validator.h"
#include "controlplane/config/snapshot_builder.h"
#include "dataplane/outbound/http_client.h"
#include "tests/unit/controlplane/config/test_util.h"

namespace wsgate::controlplane {
namespace {

using testing::EchoRoute;
using testing::ProxyRoute;
using ::testing::StartsWith;
using wsgate::v1::Limits;
using wsgate::v1::Route;

Route Proxy() { return ProxyRoute("p", "/p/{client_id}", "ws://127.0.0.1:9000/echo"); }
Route Bridge() {
  Route r = EchoRoute("b", "/b");
  r.mutable_http_bridge()->add_allowed_targets("https://api.example.com/v1");
  return r;
}
Route External() {
  Route r = EchoRoute("x", "/x/{client_id}");
  r.mutable_external_client()->add_allowed_targets("ws://127.0.0.1:*");
  return r;
}
Route Room() {
  Route r = EchoRoute("room", "/chat/{room}/{client_id}");
  r.mutable_room()->set_room_param("room");
  return r;
}
Route PubSub() {
  Route r = EchoRoute("ps", "/ps/{session_id}");
  r.mutable_pubsub()->set_auth(wsgate::v1::PubSubRoute::AUTH_REDIS_TOKEN);
  return r;
}

// Valid routes of every kind, each also with limits set.
std::vector<Route> GoodRoutes() {
  std::vector<Route> out = {EchoRoute("e", "/e"), Proxy(), Bridge(), External(), Room(), PubSub()};
  for (Route r : std::vector<Route>(out)) {
    r.set_name(r.name() + "-limited");
    r.mutable_limits()->set_messages_per_second(5);
    r.mutable_limits()->set_send_queue_bytes(1024);
    r.mutable_limits()->set_ping_interval_ms(1000);
    out.push_back(r);
  }
  return out;
}

// One bad field at a time: the mutation and the field its error must name.
struct BadField {
  std::function<Route()> make;
  std::string field;
};

std::vector<BadField> BadFields() {
  return {
      {[] { return EchoRoute("", "/e"); }, "route.name"},
      {[] { return EchoRoute("Upper", "/e"); }, "route.name"},
      {[] { return EchoRoute("e", ""); }, "route.path"},
      {[] { return EchoRoute("e", "/ws/{id"); }, "route.path"},
      {[] {
         Route r = EchoRoute("e", "/e");
         r.clear_echo();
         return r;
       },
       "route.kind"},
      {[] {
         Route r = Proxy();
         r.mutable_websocket()->add_upstreams("http://h/");
         return r;
       },
       "route.websocket.upstreams[1]"},
      {[] {
         Route r = Proxy();
         r.mutable_websocket()->set_connect_timeout_ms(300001);
         return r;
       },
       "route.websocket.connect_timeout_ms"},
      {[] {
         Route r = Proxy();
         r.mutable_websocket()->add_forward_headers("X-\xc3\xa9");  // not a token
         return r;
       },
       "route.websocket.forward_headers[0]"},
      {[] {
         Route r = Proxy();
         (*r.mutable_websocket()->mutable_set_headers())["Upgrade"] = "x";
         return r;
       },
       "route.websocket.set_headers[\"Upgrade\"]"},
      {[] {
         Route r = Bridge();
         r.mutable_http_bridge()->add_allowed_targets("ws://x");
         return r;
       },
       "route.http_bridge.allowed_targets[1]"},
      {[] {
         Route r = Bridge();
         r.mutable_http_bridge()->mutable_tls()->set_verify(
             wsgate::v1::OutboundTls::VERIFY_CA_FILE);
         r.mutable_http_bridge()->mutable_tls()->set_ca_file("/nonexistent/ca.pem");
         return r;
       },
       "route.http_bridge.tls.ca_file"},
      {[] {
         Route r = Bridge();
         r.mutable_http_bridge()->set_max_redirects(2);
         return r;
       },
       "route.http_bridge.max_redirects"},
      {[] {
         Route r = External();
         r.mutable_external_client()->set_client_id_param("user");
         return r;
       },
       "route.external_client.client_id_param"},
      {[] {
         Route r = Room();
         r.mutable_room()->set_room_param("nope");
         return r;
       },
       "route.room.room_param"},
      {[] {
         Route r = PubSub();
         r.mutable_pubsub()->set_down_channel("d:{nope}");
         return r;
       },
       "route.pubsub.down_channel"},
      {[] {
         Route r = PubSub();
         r.mutable_pubsub()->set_auth(wsgate::v1::PubSubRoute::AUTH_JWT_HS256);
         r.mutable_pubsub()->set_jwt_secret_file("/nonexistent/jwt.secret");
         return r;
       },
       "route.pubsub.jwt_secret_file"},
      {[] {
         Route r = EchoRoute("e", "/e");
         r.mutable_limits()->set_message_burst(3);
         return r;
       },
       "route.limits.message_burst"},
      {[] {
         Route r = Room();
         r.mutable_limits()->set_send_queue_bytes(1024);
         r.mutable_limits()->set_slow_consumer_policy(Limits::SLOW_CONSUMER_POLICY_DROP_OLDEST);
         return r;
       },
       "route.limits.slow_consumer_policy"},
  };
}

TEST(TranslateRouteTest, ARouteThatValidatesAlwaysTranslates) {
  Limits defaults;
  defaults.set_idle_timeout_ms(5000);
  for (const Route& r : GoodRoutes()) {
    ASSERT_TRUE(ValidateRoute(r, "route").ok()) << r.name() << ": " << ValidateRoute(r, "route");
    for (const Limits& d : {Limits::default_instance(), defaults}) {
      auto t = TranslateRoute(r, "route", d);
      ASSERT_TRUE(t.ok()) << r.name() << ": " << t.status();
      ASSERT_NE(t->config, nullptr);
      EXPECT_EQ(t->config->name, r.name());
      EXPECT_EQ(t->config->path, r.path());
      EXPECT_EQ(t->config->stats, nullptr);  // resolved by BuildSnapshot
      EXPECT_EQ(t->path_shape, dataplane::PathTemplate::Parse(r.path())->Shape());
      EXPECT_TRUE(TranslateRoute(r, "route", d, UnreadableFiles::kFailClosed).ok());
    }
  }
  dataplane::StatsRegistry stats(1);
  auto snap = BuildSnapshot(GoodRoutes(), 1, &stats, defaults);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ((*snap)->routes.size(), GoodRoutes().size());
}

TEST(TranslateRouteTest, OneErrorPerBadFieldStillNamed) {
  for (const BadField& bad : BadFields()) {
    const Route r = bad.make();
    absl::Status validated = ValidateRoute(r, "route");
    auto translated = TranslateRoute(r, "route", Limits::default_instance());
    ASSERT_FALSE(translated.ok()) << bad.field;
    EXPECT_EQ(translated.status().code(), absl::StatusCode::kInvalidArgument) << bad.field;
    EXPECT_THAT(std::string(translated.status().message()), StartsWith(bad.field + ": "));
    EXPECT_EQ(validated, translated.status()) << bad.field;  // the same check, the same words
    // The caller's prefix is the only thing that changes.
    auto indexed = TranslateRoute(r, "routes[4]", Limits::default_instance());
    ASSERT_FALSE(indexed.ok());
    EXPECT_THAT(std::string(indexed.status().message()),
                StartsWith("routes[4]" + bad.field.substr(5) + ": "));
  }
}

TEST(TranslateRouteTest, BuildSnapshotNamesTheRouteByIndex) {
  std::vector<Route> routes = {EchoRoute("a", "/a"), EchoRoute("b", "/b")};
  routes[1].mutable_limits()->set_message_burst(3);
  dataplane::StatsRegistry stats(1);
  auto snap = BuildSnapshot(routes, 1, &stats);
  ASSERT_FALSE(snap.ok());
  EXPECT_THAT(std::string(snap.status().message()), StartsWith("routes[1].limits.message_burst: "));
}

TEST(TranslateRouteTest, UnreadableCaFileRefusesOnAdmissionAndFailsClosedOnRebuild) {
  Route r = Bridge();
  r.mutable_http_bridge()->mutable_tls()->set_verify(wsgate::v1::OutboundTls::VERIFY_CA_FILE);
  r.mutable_http_bridge()->mutable_tls()->set_ca_file("/nonexistent/ca.pem");
  auto refused = TranslateRoute(r, "route", Limits::default_instance());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              StartsWith("route.http_bridge.tls.ca_file: '/nonexistent/ca.pem': "));
  auto built = TranslateRoute(r, "route", Limits::default_instance(), UnreadableFiles::kFailClosed);
  ASSERT_TRUE(built.ok()) << built.status();
  ASSERT_NE(built->config->outbound, nullptr);
  EXPECT_EQ(built->config->outbound->tls, nullptr);  // https targets are unreachable
  // A config error stays an error on a rebuild.
  r.mutable_http_bridge()->mutable_tls()->clear_ca_file();
  EXPECT_FALSE(
      TranslateRoute(r, "route", Limits::default_instance(), UnreadableFiles::kFailClosed).ok());
}

TEST(TranslateRouteTest, UnreadableJwtSecretRefusesOnAdmissionAndFailsClosedOnRebuild) {
  Route r = EchoRoute("j", "/j/{session_id}");
  auto* ps = r.mutable_pubsub();
  ps->set_auth(wsgate::v1::PubSubRoute::AUTH_JWT_HS256);
  ps->set_jwt_secret_file("/nonexistent/jwt.secret");
  EXPECT_FALSE(TranslateRoute(r, "route", Limits::default_instance()).ok());
  auto built = TranslateRoute(r, "route", Limits::default_instance(), UnreadableFiles::kFailClosed);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->config->pubsub.auth, dataplane::PubSubSettings::Auth::kJwtHs256);
  EXPECT_EQ(built->config->pubsub.jwt_secret, "");  // every handshake gets 503
  // Naming both sources (or neither) is the config's fault, not the disk's: refused either way.
  ps->set_jwt_secret_env("PATH");
  auto both = TranslateRoute(r, "route", Limits::default_instance(), UnreadableFiles::kFailClosed);
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(std::string(both.status().message()),
            "route.pubsub.jwt_secret_file: set only one of jwt_secret_file and jwt_secret_env");
}

TEST(TranslateRouteTest, LimitsAreTheEffectiveOnesOverTheDefaults) {
  Limits defaults;
  defaults.set_messages_per_second(10);
  defaults.set_send_queue_bytes(4096);
  defaults.set_slow_consumer_policy(Limits::SLOW_CONSUMER_POLICY_DROP_OLDEST);
  auto room = TranslateRoute(Room(), "route", defaults);
  ASSERT_TRUE(room.ok()) << room.status();
  EXPECT_DOUBLE_EQ(room->config->limits.messages_per_second, 10);
  EXPECT_EQ(room->config->limits.message_burst, 10u);
  // DROP_OLDEST from the defaults becomes CLOSE on a kind the worker does not send for.
  EXPECT_EQ(room->config->limits.slow_consumer, dataplane::RouteLimits::SlowConsumer::kClose);
  EXPECT_EQ(room->config->limits.client_id_param, "client_id");
  auto proxy = TranslateRoute(Proxy(), "route", defaults);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  EXPECT_EQ(proxy->config->limits.slow_consumer, dataplane::RouteLimits::SlowConsumer::kDropOldest);
  EXPECT_EQ(proxy->config->limits.client_id_param, "client_id");  // a {client_id} parameter
}

}  // namespace
}  // namespace wsgate::controlplane
