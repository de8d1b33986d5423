// The request-head parser the transport uses to route before websocketpp reads the request.
#include "dataplane/transport/request_head.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace wsgate::dataplane::transport {
namespace {

const std::string kUpgrade =
    "GET /ws/7?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol:  c ,,\r\n"
    "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n";

TEST(RequestHeadTest, ParsesAnUpgrade) {
  HeadParseResult r = ParseRequestHead(kUpgrade + "frame bytes");
  ASSERT_EQ(r.status, HeadStatus::kComplete);
  EXPECT_EQ(r.head_bytes, kUpgrade.size());
  EXPECT_EQ(r.head.method, "GET");
  EXPECT_EQ(r.head.target, "/ws/7?x=1");
  EXPECT_TRUE(r.head.is_websocket_upgrade);
  EXPECT_TRUE(r.head.websocket_handshake_plausible);
  EXPECT_EQ(r.head.subprotocols, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(r.head.Header("x-forwarded-for"), "1.1.1.1, 2.2.2.2");
  EXPECT_TRUE(r.head.HasHeader("host"));
  EXPECT_FALSE(r.head.HasHeader("cookie"));
}

TEST(RequestHeadTest, EveryPrefixIsIncomplete) {
  for (size_t n = 0; n < kUpgrade.size(); ++n) {
    EXPECT_EQ(ParseRequestHead(kUpgrade.substr(0, n)).status, HeadStatus::kIncomplete) << n;
  }
}

TEST(RequestHeadTest, PlainGetIsNotAnUpgrade) {
  HeadParseResult r = ParseRequestHead("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(r.status, HeadStatus::kComplete);
  EXPECT_FALSE(r.head.is_websocket_upgrade);
  // POST with upgrade headers is not a WebSocket handshake either.
  r = ParseRequestHead("POST /x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
  ASSERT_EQ(r.status, HeadStatus::kComplete);
  EXPECT_FALSE(r.head.is_websocket_upgrade);
}

TEST(RequestHeadTest, ImplausibleHandshakes) {
  auto without = [](const std::string& drop) {
    std::string s = kUpgrade;
    size_t at = s.find(drop);
    s.erase(at, s.find("\r\n", at) + 2 - at);
    return ParseRequestHead(s).head;
  };
  EXPECT_FALSE(without("Sec-WebSocket-Key").websocket_handshake_plausible);
  EXPECT_FALSE(without("Sec-WebSocket-Version").websocket_handshake_plausible);
  EXPECT_FALSE(without("Upgrade: websocket").is_websocket_upgrade);
}

TEST(RequestHeadTest, MalformedAndTooLarge) {
  EXPECT_EQ(ParseRequestHead("HELLO\r\n\r\n").status, HeadStatus::kMalformed);
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nNo colon\r\n\r\n").status, HeadStatus::kMalformed);
  EXPECT_EQ(ParseRequestHead(std::string("\0\1\2\3\r\n\r\n", 8)).status, HeadStatus::kMalformed);
  std::string big = "GET / HTTP/1.1\r\nX: " + std::string(kMaxRequestHeadBytes, 'a') + "\r\n\r\n";
  EXPECT_EQ(ParseRequestHead(big).status, HeadStatus::kTooLarge);
  // Incomplete but already at the cap: too large, not "wait for more".
  EXPECT_EQ(ParseRequestHead(big.substr(0, kMaxRequestHeadBytes)).status, HeadStatus::kTooLarge);
}

TEST(RequestHeadTest, ArbitraryBytesNeverCrash) {
  // A cheap stand-in for a fuzzer: mutations of a valid head plus random garbage.
  std::mt19937 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    std::string input = kUpgrade;
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % input.size();
      switch (rng() % 3) {
        case 0:
          input[at] = static_cast<char>(rng());
          break;
        case 1:
          input.erase(at, 1 + rng() % 16);
          break;
        default:
          input.insert(at, std::string(1 + rng() % 64, static_cast<char>(rng())));
          break;
      }
      if (input.empty()) input = "G";
    }
    HeadParseResult r = ParseRequestHead(input);
    if (r.status == HeadStatus::kComplete) {
      EXPECT_LE(r.head_bytes, input.size());
      EXPECT_FALSE(r.head.method.empty());
    }
  }
}

TEST(RequestHeadTest, TargetPath) {
  EXPECT_EQ(TargetPath("/a/b?c=d"), "/a/b");
  EXPECT_EQ(TargetPath("/a#f"), "/a");
  EXPECT_EQ(TargetPath("/a"), "/a");
}

}  // namespace
}  // namespace wsgate::dataplane::transport

namespace wsgate::dataplane::transport {
namespace {

TEST(RequestHeadTest, HandshakeProblemsAreNamed) {
  using Problem = RequestHead::HandshakeProblem;
  auto problem = [](const std::string& version, const std::string& key) {
    std::string s = "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    if (!version.empty()) s += "Sec-WebSocket-Version: " + version + "\r\n";
    if (!key.empty()) s += "Sec-WebSocket-Key: " + key + "\r\n";
    HeadParseResult r = ParseRequestHead(s + "\r\n");
    EXPECT_EQ(r.status, HeadStatus::kComplete);
    return r.head.handshake_problem;
  };
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  EXPECT_EQ(problem("13", key), Problem::kNone);
  EXPECT_EQ(problem("8", key), Problem::kBadVersion);
  EXPECT_EQ(problem("13, 8", key), Problem::kBadVersion);
  EXPECT_EQ(problem("", key), Problem::kNoVersion);
  EXPECT_EQ(problem("13", ""), Problem::kBadKey);
  EXPECT_EQ(problem("13", "abc"), Problem::kBadKey);
  // A plain request has no handshake problem at all.
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nHost: h\r\n\r\n").head.handshake_problem,
            Problem::kNone);
}

TEST(RequestHeadTest, WebSocketKeyIsTheBase64OfSixteenBytes) {
  EXPECT_TRUE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(IsValidWebSocketKey(" dGhlIHNhbXBsZSBub25jZQ== "));
  EXPECT_FALSE(IsValidWebSocketKey("abc"));
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ"));     // no padding
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ=a"));   // bad padding
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZ!=="));   // not base64
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZXh0cmE="));  // 20 bytes
}

}  // namespace
}  // namespace wsgate::dataplane::transport
