// The `websocket` route kind (transparent reverse proxy) against a Beast echo upstream.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/integration/dataplane/test_support.h"

namespace wsgate::dataplane::testing {
namespace {

using std::chrono::milliseconds;

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto proxy = gw_.Proxy("proxy", "/proxy", {MakeUpstream(upstream_.port())});
    proxy->websocket.forward_headers = {"x-trace-id", "authorization"};
    proxy->websocket.set_headers = {{"X-Gateway", "wsgate"}};
    auto small = gw_.Proxy("small", "/small", {MakeUpstream(upstream_.port())});
    small->limits.max_message_bytes = 1024;
    auto refused = gw_.Proxy("refused", "/refused", {MakeUpstream(ClosedPort())});
    auto silent = gw_.Proxy("silent", "/silent", {MakeUpstream(silent_.port())});
    silent->websocket.connect_timeout = milliseconds(300);
    gw_.Start({proxy, small, refused, silent});
  }

  EchoUpstream upstream_{"chat.v2"};
  SilentListener silent_;
  Gateway gw_{2};
};

TEST_F(ProxyTest, ForwardsTextAndBinaryOfEverySizeBothWays) {
  for (bool text : {true, false}) {
    WsClient c;
    HandshakeResult h = c.Connect(gw_.port(), "/proxy");
    ASSERT_FALSE(h.ec) << h.ec.message();
    for (size_t size :
         {size_t{0}, size_t{125}, size_t{126}, size_t{65535}, size_t{65536}, size_t{16u << 20}}) {
      std::string payload(size, text ? 'p' : '\xfe');
      if (size > 0) payload[size / 2] = 'm';
      ASSERT_FALSE(c.Send(payload, text)) << size;
      Received r = c.Read();
      ASSERT_FALSE(r.ec) << size << ": " << r.ec.message();
      EXPECT_EQ(r.text, text);
      EXPECT_EQ(r.data.size(), size);
      EXPECT_TRUE(r.data == payload) << size;
    }
  }
  EXPECT_EQ(upstream_.connections(), 2);
}

TEST_F(ProxyTest, FragmentedMessageDeliveredWhole) {
  WsClient c;
  {
    HandshakeResult hh = c.Connect(gw_.port(), "/proxy");
    ASSERT_FALSE(hh.ec) << hh.ec.message() << " " << hh.status << " " << hh.body;
  }
  ASSERT_FALSE(c.SendFragmented({std::string(70000, 'a'), "b", std::string(10, 'c')}, false));
  Received r = c.Read();
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(r.data, std::string(70000, 'a') + "b" + std::string(10, 'c'));
  EXPECT_FALSE(r.text);
}

TEST_F(ProxyTest, ThousandPipelinedMessagesInOrder) {
  WsClient c;
  {
    HandshakeResult hh = c.Connect(gw_.port(), "/proxy");
    ASSERT_FALSE(hh.ec) << hh.ec.message() << " " << hh.status << " " << hh.body;
  }
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(c.Send("m" + std::to_string(i)));
  for (int i = 0; i < 1000; ++i) {
    Received r = c.Read();
    ASSERT_FALSE(r.ec) << i;
    ASSERT_EQ(r.data, "m" + std::to_string(i));
  }
}

TEST_F(ProxyTest, ClientCloseCodeAndReasonReachUpstream) {
  WsClient c;
  {
    HandshakeResult hh = c.Connect(gw_.port(), "/proxy");
    ASSERT_FALSE(hh.ec) << hh.ec.message() << " " << hh.status << " " << hh.body;
  }
  ASSERT_FALSE(c.Send("hi"));
  ASSERT_FALSE(c.Read().ec);
  ASSERT_FALSE(c.Close(4000, "client bye"));
  auto seen = upstream_.WaitForClose();
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->code, 4000);
  EXPECT_EQ(seen->reason, "client bye");
}

TEST_F(ProxyTest, UpstreamCloseCodeAndReasonReachClient) {
  WsClient c;
  {
    HandshakeResult hh = c.Connect(gw_.port(), "/proxy");
    ASSERT_FALSE(hh.ec) << hh.ec.message() << " " << hh.status << " " << hh.body;
  }
  ASSERT_FALSE(c.Send("cmd:close:4001:upstream bye"));
  websocket::close_reason cr = c.ReadUntilClosed();
  EXPECT_EQ(cr.code, 4001);
  EXPECT_EQ(cr.reason, "upstream bye");
  EXPECT_TRUE(WaitFor([&] { return Closes(gw_.Totals("proxy"), 4001) == 1; }));
}

TEST_F(ProxyTest, AbruptUpstreamDropClosesClientWith1011) {
  WsClient c;
  {
    HandshakeResult hh = c.Connect(gw_.port(), "/proxy");
    ASSERT_FALSE(hh.ec) << hh.ec.message() << " " << hh.status << " " << hh.body;
  }
  ASSERT_FALSE(c.Send("cmd:drop"));
  websocket::close_reason cr = c.ReadUntilClosed();
  EXPECT_EQ(cr.code, 1011);
  EXPECT_EQ(cr.reason, "upstream went away");
}

TEST_F(ProxyTest, VanishedClientClosesUpstreamWith1001) {
  WsClient c;
  {
    HandshakeResult hh = c.Connect(gw_.port(), "/proxy");
    ASSERT_FALSE(hh.ec) << hh.ec.message() << " " << hh.status << " " << hh.body;
  }
  ASSERT_FALSE(c.Send("hi"));
  ASSERT_FALSE(c.Read().ec);
  c.Abort();
  auto seen = upstream_.WaitForClose();
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->code, 1001);
  EXPECT_TRUE(WaitFor([&] { return gw_.Totals("proxy").connections_active == 0; }));
}

TEST_F(ProxyTest, RefusedUpstreamIs502) {
  WsClient c;
  HandshakeResult h = c.Connect(gw_.port(), "/refused");
  EXPECT_EQ(h.ec, websocket::error::upgrade_declined);
  EXPECT_EQ(h.status, 502);
  EXPECT_FALSE(h.body.empty());
  EXPECT_EQ(Outcome(gw_.Totals("refused"), ConnectionOutcome::kUpstreamError), 1u);
}

TEST_F(ProxyTest, SilentUpstreamIs504AfterConnectTimeout) {
  WsClient c;
  auto start = std::chrono::steady_clock::now();
  HandshakeResult h = c.Connect(gw_.port(), "/silent");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(h.ec, websocket::error::upgrade_declined);
  EXPECT_EQ(h.status, 504);
  // Not a timing assertion: only that the answer came from the 300 ms route timeout and not
  // from some much later backstop (websocketpp's own timers are 5-10 s).
  EXPECT_LT(took, std::chrono::seconds(4));
  EXPECT_EQ(Outcome(gw_.Totals("silent"), ConnectionOutcome::kUpstreamTimeout), 1u);
}

TEST_F(ProxyTest, SubprotocolNegotiatedThroughTheProxy) {
  WsClient c;
  HandshakeResult h = c.Connect(gw_.port(), "/proxy", {}, {"chat.v1", "chat.v2"});
  ASSERT_FALSE(h.ec);
  EXPECT_EQ(h.subprotocol, "chat.v2");
  ASSERT_EQ(upstream_.requests().size(), 1u);
  EXPECT_EQ(upstream_.requests()[0].at("sec-websocket-protocol"), "chat.v1, chat.v2");

  WsClient none;
  HandshakeResult h2 = none.Connect(gw_.port(), "/proxy", {}, {"chat.v1"});
  ASSERT_FALSE(h2.ec);
  EXPECT_EQ(h2.subprotocol, "");
}

TEST_F(ProxyTest, ForwardedHeadersAndXForwardedForSeenByUpstream) {
  WsClient c;
  HandshakeResult h = c.Connect(
      gw_.port(), "/proxy",
      {{"X-Trace-Id", "abc123"}, {"X-Forwarded-For", "10.1.2.3"}, {"X-Not-Forwarded", "secret"}});
  ASSERT_FALSE(h.ec);
  auto reqs = upstream_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  const auto& up = reqs[0];
  EXPECT_EQ(up.at("x-trace-id"), "abc123");
  EXPECT_EQ(up.at("x-forwarded-for"), "10.1.2.3, 127.0.0.1");
  EXPECT_EQ(up.at("x-gateway"), "wsgate");
  EXPECT_EQ(up.count("x-not-forwarded"), 0u);
  EXPECT_EQ(up.count("authorization"), 0u);  // listed but not sent by the client

  WsClient c2;
  ASSERT_FALSE(c2.Connect(gw_.port(), "/proxy").ec);
  ASSERT_EQ(upstream_.requests().size(), 2u);
  EXPECT_EQ(upstream_.requests()[1].at("x-forwarded-for"), "127.0.0.1");
}

TEST_F(ProxyTest, OversizeMessageClosesWith1009) {
  WsClient c;
  ASSERT_FALSE(c.Connect(gw_.port(), "/small").ec);
  ASSERT_FALSE(c.Send(std::string(1024, 'a')));
  ASSERT_EQ(c.Read().data.size(), 1024u);
  c.Send(std::string(4096, 'a'));
  EXPECT_EQ(c.ReadUntilClosed().code, 1009);
  // The upstream leg does not outlive the client leg.
  EXPECT_TRUE(WaitFor([&] { return upstream_.ended() == 1; }));
}

TEST_F(ProxyTest, BadHandshakeIsRefusedWithoutContactingUpstream) {
  std::string missing_key =
      "GET /proxy HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  EXPECT_EQ(StatusOf(RawExchange(gw_.port(), missing_key)), 400);
  std::string bad_version =
      "GET /proxy HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n";
  // RFC 6455 section 4.4: an unsupported version is 426 with the version spoken (was 400).
  std::string answer = RawExchange(gw_.port(), bad_version);
  EXPECT_EQ(StatusOf(answer), 426);
  EXPECT_NE(answer.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_EQ(upstream_.requests().size(), 0u);
}

TEST_F(ProxyTest, ClientVanishingWhileUpstreamConnectsLeaksNothing) {
  // The silent upstream holds the upstream leg in "connecting"; the client drops meanwhile.
  {
    std::string head =
        "GET /silent HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    net::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), gw_.port()));
    net::write(s, net::buffer(head));
    s.set_option(net::socket_base::linger(true, 0));
    s.close();
  }
  EXPECT_TRUE(WaitFor([&] {
    return Outcome(gw_.Totals("silent"), ConnectionOutcome::kUpstreamTimeout) +
               Outcome(gw_.Totals("silent"), ConnectionOutcome::kRejected) ==
           1;
  }));
  EXPECT_EQ(gw_.Totals("silent").connections_active, 0);
  // The gateway still serves.
  WsClient c;
  {
    HandshakeResult hh = c.Connect(gw_.port(), "/proxy");
    ASSERT_FALSE(hh.ec) << hh.ec.message() << " " << hh.status << " " << hh.body;
  }
}

TEST_F(ProxyTest, CountersMove) {
  {
    WsClient c;
    {
      HandshakeResult hh = c.Connect(gw_.port(), "/proxy");
      ASSERT_FALSE(hh.ec) << hh.ec.message() << " " << hh.status << " " << hh.body;
    }
    ASSERT_FALSE(c.Send("abc"));
    ASSERT_FALSE(c.Read().ec);
    ASSERT_FALSE(c.Close(1000, ""));
  }
  EXPECT_TRUE(WaitFor([&] { return Closes(gw_.Totals("proxy"), 1000) == 1; }));
  RouteTotals t = gw_.Totals("proxy");
  EXPECT_EQ(Outcome(t, ConnectionOutcome::kAccepted), 1u);
  EXPECT_EQ(t.messages[static_cast<int>(Direction::kFromClient)], 1u);
  EXPECT_EQ(t.messages[static_cast<int>(Direction::kToClient)], 1u);
  EXPECT_EQ(t.bytes[static_cast<int>(Direction::kFromClient)], 3u);
  EXPECT_EQ(t.bytes[static_cast<int>(Direction::kToClient)], 3u);
  EXPECT_EQ(t.upstream_connect_count, 1u);
  EXPECT_EQ(t.connections_active, 0);
}

TEST(ProxyEarlyUpstream, GreetingAndCloseBeforeClientHandshakeFinishesAreDelivered) {
  // The upstream speaks and closes as soon as its own handshake is done, i.e. while the
  // client's handshake may still be in progress: nothing may be lost or reordered.
  EchoUpstream upstream("", {"hello", "world", "cmd:close:4002:bye"});
  Gateway gw(2);
  gw.Start({gw.Proxy("early", "/early", {MakeUpstream(upstream.port())})});
  for (int i = 0; i < 5; ++i) {
    WsClient c;
    HandshakeResult h = c.Connect(gw.port(), "/early");
    ASSERT_FALSE(h.ec) << h.ec.message() << " " << h.status;
    EXPECT_EQ(c.Read().data, "hello");
    EXPECT_EQ(c.Read().data, "world");
    websocket::close_reason cr = c.ReadUntilClosed();
    EXPECT_EQ(cr.code, 4002);
    EXPECT_EQ(cr.reason, "bye");
  }
}

TEST(ProxyRoundRobin, AlternatesBetweenUpstreams) {
  EchoUpstream a, b;
  Gateway gw(1);
  gw.Start({gw.Proxy("rr", "/rr", {MakeUpstream(a.port()), MakeUpstream(b.port())})});
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<WsClient>());
    ASSERT_FALSE(clients.back()->Connect(gw.port(), "/rr").ec);
  }
  EXPECT_EQ(a.requests().size(), 2u);
  EXPECT_EQ(b.requests().size(), 2u);
}

}  // namespace
}  // namespace wsgate::dataplane::testing
