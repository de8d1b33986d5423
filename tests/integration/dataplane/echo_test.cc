// The `echo` route kind through a real DataPlane (2 workers) with a Beast client.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/integration/dataplane/test_support.h"

namespace wsgate::dataplane::testing {
namespace {

const std::vector<size_t> kSizes = {0, 1, 125, 126, 65535, 65536, 16u << 20};

std::string Payload(size_t size, bool text) {
  std::string s(size, 'x');
  for (size_t i = 0; i < size; ++i) {
    s[i] = text ? static_cast<char>('a' + i % 26) : static_cast<char>(i * 31 + 7);
  }
  return s;
}

class EchoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto small = gw_.Echo("small", "/small");
    small->limits.max_message_bytes = 1024;
    gw_.Start({gw_.Echo("echo", "/echo"), small});
  }
  Gateway gw_{2};
};

TEST_F(EchoTest, EchoesTextAndBinaryOfEverySize) {
  for (bool text : {true, false}) {
    WsClient c;
    HandshakeResult h = c.Connect(gw_.port(), "/echo");
    ASSERT_FALSE(h.ec) << h.ec.message();
    EXPECT_EQ(h.status, 101);
    for (size_t size : kSizes) {
      std::string payload = Payload(size, text);
      ASSERT_FALSE(c.Send(payload, text)) << size;
      Received r = c.Read();
      ASSERT_FALSE(r.ec) << size << ": " << r.ec.message();
      EXPECT_EQ(r.text, text) << size;
      EXPECT_EQ(r.data.size(), size);
      EXPECT_TRUE(r.data == payload) << "payload differs at size " << size;
    }
    EXPECT_FALSE(c.Close(1000, "done"));
  }
}

TEST_F(EchoTest, FragmentedMessageComesBackWhole) {
  WsClient c;
  ASSERT_FALSE(c.Connect(gw_.port(), "/echo").ec);
  ASSERT_FALSE(c.SendFragmented({"frag", "ment", "ed!"}));
  Received r = c.Read();
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(r.data, "fragmented!");
  EXPECT_TRUE(r.text);
}

TEST_F(EchoTest, ThousandPipelinedMessagesInOrder) {
  WsClient c;
  ASSERT_FALSE(c.Connect(gw_.port(), "/echo").ec);
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(c.Send("m" + std::to_string(i)));
  for (int i = 0; i < 1000; ++i) {
    Received r = c.Read();
    ASSERT_FALSE(r.ec) << i;
    ASSERT_EQ(r.data, "m" + std::to_string(i));
  }
}

TEST_F(EchoTest, CloseCodeAndReasonAreAnswered) {
  WsClient c;
  ASSERT_FALSE(c.Connect(gw_.port(), "/echo").ec);
  ASSERT_FALSE(c.Close(4000, "client bye"));
  EXPECT_EQ(c.stream().reason().code, 4000);
  EXPECT_EQ(c.stream().reason().reason, "client bye");
  EXPECT_TRUE(WaitFor([&] { return Closes(gw_.Totals("echo"), 4000) == 1; }));
}

TEST_F(EchoTest, OversizeMessageClosesWith1009) {
  WsClient c;
  ASSERT_FALSE(c.Connect(gw_.port(), "/small").ec);
  ASSERT_FALSE(c.Send(std::string(1024, 'a')));  // exactly the limit: fine
  Received r = c.Read();
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(r.data.size(), 1024u);
  c.Send(std::string(1025, 'a'));
  EXPECT_EQ(c.ReadUntilClosed().code, 1009);
  EXPECT_TRUE(WaitFor([&] { return Closes(gw_.Totals("small"), 1009) == 1; }));
}

TEST_F(EchoTest, CountersMove) {
  {
    WsClient c;
    ASSERT_FALSE(c.Connect(gw_.port(), "/echo").ec);
    EXPECT_TRUE(WaitFor([&] { return gw_.Totals("echo").connections_active == 1; }));
    ASSERT_FALSE(c.Send("hello"));
    ASSERT_FALSE(c.Send(std::string(1000, 'b'), false));
    ASSERT_FALSE(c.Read().ec);
    ASSERT_FALSE(c.Read().ec);
    ASSERT_FALSE(c.Close(1000, ""));
  }
  EXPECT_TRUE(WaitFor([&] { return gw_.Totals("echo").connections_active == 0; }));
  RouteTotals t = gw_.Totals("echo");
  EXPECT_EQ(Outcome(t, ConnectionOutcome::kAccepted), 1u);
  EXPECT_EQ(t.messages[static_cast<int>(Direction::kFromClient)], 2u);
  EXPECT_EQ(t.messages[static_cast<int>(Direction::kToClient)], 2u);
  EXPECT_EQ(t.bytes[static_cast<int>(Direction::kFromClient)], 1005u);
  EXPECT_EQ(t.bytes[static_cast<int>(Direction::kToClient)], 1005u);
  EXPECT_EQ(Closes(t, 1000), 1u);
}

TEST_F(EchoTest, ManyConnectionsSpreadOverWorkers) {
  // Every connection works whichever worker's listener the kernel picks.
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(std::make_unique<WsClient>());
    ASSERT_FALSE(clients.back()->Connect(gw_.port(), "/echo").ec) << i;
  }
  for (int i = 0; i < 20; ++i) {
    ASSERT_FALSE(clients[i]->Send("c" + std::to_string(i)));
    Received r = clients[i]->Read();
    ASSERT_FALSE(r.ec);
    EXPECT_EQ(r.data, "c" + std::to_string(i));
  }
  EXPECT_EQ(gw_.dp().workers(), 2);
  // SO_REUSEPORT spreads by a hash of the 4-tuple: with 20 connections both workers get some
  // (all on one would happen with probability 2^-19).
  RouteStats* stats = gw_.stats().ForRoute("echo");
  for (int w = 0; w < 2; ++w) {
    EXPECT_GT(stats->ForWorker(w).connections[static_cast<int>(ConnectionOutcome::kAccepted)].Get(),
              0u)
        << "worker " << w;
  }
}

}  // namespace
}  // namespace wsgate::dataplane::testing
