#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "dataplane/routing/path_template.h"
#include "dataplane/routing/route_config.h"

namespace wsgate::dataplane {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

std::shared_ptr<const RouteConfig> Route(const std::string& name, const std::string& path) {
  auto r = std::make_shared<RouteConfig>();
  r->name = name;
  r->path = path;
  return r;
}

std::string MatchName(const RouteTable& table, const std::string& target) {
  auto m = table.Match(target);
  return m ? m->route->name : "<none>";
}

TEST(RouteTableTest, NoMatch) {
  RouteTable table({Route("echo", "/echo")});
  EXPECT_EQ(MatchName(table, "/nope"), "<none>");
  EXPECT_EQ(MatchName(table, "/echo/"), "<none>");
  EXPECT_EQ(MatchName(table, ""), "<none>");
  EXPECT_EQ(MatchName(RouteTable({}), "/echo"), "<none>");
}

TEST(RouteTableTest, QueryStringIsIgnored) {
  RouteTable table({Route("echo", "/echo"), Route("ws", "/ws/{id}")});
  EXPECT_EQ(MatchName(table, "/echo?token=abc"), "echo");
  EXPECT_EQ(MatchName(table, "/echo?"), "echo");
  EXPECT_EQ(MatchName(table, "/echo#x"), "echo");
  auto m = table.Match("/ws/c1?x=/y");
  ASSERT_TRUE(m);
  EXPECT_THAT(m->params, ElementsAre(Pair("id", "c1")));
  EXPECT_EQ(MatchName(table, "/ws/?x=1"), "<none>");
}

TEST(RouteTableTest, CapturesParams) {
  RouteTable table({Route("agent", "/{agent_id}/ws/{session_id}")});
  auto m = table.Match("/a1/ws/s%202");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route->name, "agent");
  EXPECT_THAT(m->params, ElementsAre(Pair("agent_id", "a1"), Pair("session_id", "s 2")));
}

TEST(RouteTableTest, LiteralBeatsParameterWhateverTheInputOrder) {
  for (bool reversed : {false, true}) {
    std::vector<std::shared_ptr<const RouteConfig>> routes = {Route("param", "/ws/{id}"),
                                                              Route("literal", "/ws/admin")};
    if (reversed) std::swap(routes[0], routes[1]);
    RouteTable table(routes);
    EXPECT_EQ(MatchName(table, "/ws/admin"), "literal") << reversed;
    EXPECT_EQ(MatchName(table, "/ws/other"), "param") << reversed;
  }
}

TEST(RouteTableTest, FirstDifferingSegmentDecides) {
  // For "/x/ws/y" both match; they first differ at segment 0, where "/x" is a literal, so
  // "/x/{b}/{c}" wins even though the other template has more literals later on.
  for (bool reversed : {false, true}) {
    std::vector<std::shared_ptr<const RouteConfig>> routes = {Route("later", "/{a}/ws/y"),
                                                              Route("first", "/x/{b}/{c}")};
    if (reversed) std::swap(routes[0], routes[1]);
    RouteTable table(routes);
    EXPECT_EQ(MatchName(table, "/x/ws/y"), "first") << reversed;
    EXPECT_EQ(MatchName(table, "/z/ws/y"), "later") << reversed;
    EXPECT_EQ(MatchName(table, "/x/q/r"), "first") << reversed;
    EXPECT_EQ(MatchName(table, "/z/q/y"), "<none>") << reversed;
  }
}

TEST(RouteTableTest, ManyTemplatesOfDifferentLengths) {
  RouteTable table({Route("root", "/"), Route("echo", "/echo"), Route("any1", "/{a}"),
                    Route("ws", "/ws/{client_id}"), Route("any2", "/{a}/{b}"),
                    Route("agent", "/{agent_id}/ws/{session_id}"),
                    Route("api", "/api/websocket/connect/{client_id}")});
  EXPECT_EQ(MatchName(table, "/"), "root");
  EXPECT_EQ(MatchName(table, "/echo"), "echo");
  EXPECT_EQ(MatchName(table, "/other"), "any1");
  EXPECT_EQ(MatchName(table, "/ws/c1"), "ws");
  EXPECT_EQ(MatchName(table, "/x/c1"), "any2");
  EXPECT_EQ(MatchName(table, "/a/ws/s"), "agent");
  EXPECT_EQ(MatchName(table, "/api/websocket/connect/c9"), "api");
  EXPECT_EQ(MatchName(table, "/api/websocket/connect/c9/x"), "<none>");
}

TEST(RouteKindNameTest, Names) {
  EXPECT_STREQ(RouteKindName(RouteKind::kWebSocket), "websocket");
  EXPECT_STREQ(RouteKindName(RouteKind::kEcho), "echo");
  EXPECT_STREQ(RouteKindName(RouteKind::kHttpBridge), "http_bridge");
  EXPECT_STREQ(RouteKindName(RouteKind::kExternalClient), "external_client");
  EXPECT_STREQ(RouteKindName(RouteKind::kRoom), "room");
  EXPECT_STREQ(RouteKindName(RouteKind::kPubSub), "pubsub");
}

}  // namespace
}  // namespace wsgate::dataplane
