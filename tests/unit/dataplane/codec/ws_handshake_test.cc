// The relay's handshake codec: the exact bytes it writes and every answer it gives on an
// upstream's response head, whole, split at every byte, and followed by frames.
#include "dataplane/codec/ws_handshake.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>

namespace wsgate::dataplane::relay {

// Readable failures: gtest finds this by argument-dependent lookup.
void PrintTo(UpstreamAnswer answer, std::ostream* os) {
  // In the order the enum declares them.
  static const char* const kNames[] = {"kIncomplete", "kAccepted", "kRefused", "kMalformed",
                                       "kTooLarge"};
  const auto i = static_cast<size_t>(answer);
  if (i < sizeof kNames / sizeof kNames[0]) {
    *os << kNames[i];
  } else {
    *os << "UpstreamAnswer(" << i << ")";
  }
}

namespace {

using namespace std::string_literals;

// RFC 6455 section 1.3's example.
constexpr char kRfcKey[] = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr char kRfcAccept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::string Head101(const std::string& extra = "") {
  return std::string(
             "HTTP/1.1 101 Switching Protocols\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Accept: ") +
         kRfcAccept + "\r\n" + extra + "\r\n";
}

TEST(WebSocketAccept, RfcExample) { EXPECT_EQ(WebSocketAccept(kRfcKey), kRfcAccept); }

TEST(WebSocketAccept, DependsOnTheKey) {
  EXPECT_NE(WebSocketAccept("AAAAAAAAAAAAAAAAAAAAAA=="), kRfcAccept);
  EXPECT_EQ(WebSocketAccept("AAAAAAAAAAAAAAAAAAAAAA==").size(), 28u);
}

TEST(WebSocketKey, Base64OfTheNonce) {
  const uint8_t nonce[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  EXPECT_EQ(WebSocketKey(nonce), "AAECAwQFBgcICQoLDA0ODw==");
  // The RFC's key is the base64 of the 16 bytes "the sample nonce".
  const std::string sample = "the sample nonce";
  uint8_t rfc_nonce[16];
  for (size_t i = 0; i < 16; ++i) rfc_nonce[i] = static_cast<uint8_t>(sample[i]);
  EXPECT_EQ(WebSocketKey(rfc_nonce), kRfcKey);
}

TEST(BuildUpstreamRequest, ExactBytes) {
  UpstreamRequest request;
  request.host = "echo.internal:9000";
  request.target = "/chat/room?id=7&x=%20";
  request.key = kRfcKey;
  request.subprotocols = {"chat.v2", "chat"};
  request.headers = {
      {"User-Agent", "curl/8.0"}, {"Cookie", "a=1; b=2"}, {"X-Forwarded-For", "10.0.0.1"}};
  EXPECT_EQ(BuildUpstreamRequest(request),
            "GET /chat/room?id=7&x=%20 HTTP/1.1\r\n"
            "Host: echo.internal:9000\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: chat.v2, chat\r\n"
            "User-Agent: curl/8.0\r\n"
            "Cookie: a=1; b=2\r\n"
            "X-Forwarded-For: 10.0.0.1\r\n"
            "\r\n");
}

TEST(BuildUpstreamRequest, NoProtocolHeaderWithoutOffersAndNoUserAgentOfItsOwn) {
  UpstreamRequest request;
  request.host = "up";
  request.target = "/";
  request.key = kRfcKey;
  EXPECT_EQ(BuildUpstreamRequest(request),
            "GET / HTTP/1.1\r\n"
            "Host: up\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n");
}

TEST(BuildUpstreamRequest, HeadersThatCouldSplitTheHeadAreLeftOut) {
  UpstreamRequest request;
  request.host = "up";
  request.target = "/";
  request.key = kRfcKey;
  request.subprotocols = {"ok", "bad\r\nX-Injected: 1", "bad one", ""};
  request.headers = {
      {"X-Keep-1", "v1"},
      {"X-Bad-Value", "a\r\nX-Injected: 1"},
      {"X-Bad-Lf", "a\nX-Injected: 1"},
      {"X-Bad-Cr", "a\rb"},
      {"X-Bad-Nul", "a\0b"s},
      {"X-Bad-Ctl", "a\x01z"},
      {"X-Bad-Del", "a\x7fz"},
      {"X-Injected: 1\r\nX-Name", "v"},
      {"Bad Name", "v"},
      {"Bad:Name", "v"},
      {"Bad(Name)", "v"},
      {"Bad\0Name"s, "v"},
      {"", "v"},
      {"X-Keep-2", "tab\tand space ok, \xc3\xa9"},
      {"x!#$%&'*+-.^_`|~09az", "token chars all allowed"},
  };
  EXPECT_EQ(BuildUpstreamRequest(request),
            "GET / HTTP/1.1\r\n"
            "Host: up\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: ok\r\n"
            "X-Keep-1: v1\r\n"
            "X-Keep-2: tab\tand space ok, \xc3\xa9\r\n"
            "x!#$%&'*+-.^_`|~09az: token chars all allowed\r\n"
            "\r\n");
}

TEST(BuildUpstreamRequest, HandshakeHeadersAmongTheExtrasAreLeftOut) {
  UpstreamRequest request;
  request.host = "up";
  request.target = "/";
  request.key = kRfcKey;
  request.headers = {{"host", "evil"},
                     {"Upgrade", "h2c"},
                     {"CONNECTION", "close"},
                     {"Sec-WebSocket-Key", "x"},
                     {"Sec-WebSocket-Version", "8"},
                     {"Sec-WebSocket-Protocol", "other"},
                     {"Sec-WebSocket-Extensions", "permessage-deflate"},
                     {"Origin", "https://example.com"}};
  EXPECT_EQ(BuildUpstreamRequest(request),
            "GET / HTTP/1.1\r\n"
            "Host: up\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Origin: https://example.com\r\n"
            "\r\n");
}

TEST(BuildSwitchingProtocols, ExactBytes) {
  EXPECT_EQ(BuildSwitchingProtocols(kRfcAccept, ""),
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Server: wsgate\r\n"
            "\r\n");
  EXPECT_EQ(BuildSwitchingProtocols(kRfcAccept, "chat.v2"),
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: chat.v2\r\n"
            "Server: wsgate\r\n"
            "\r\n");
}

TEST(ParseUpstreamResponse, OurOwn101IsAccepted) {
  // What the relay sends its clients is what it accepts from upstreams.
  const std::string head = BuildSwitchingProtocols(kRfcAccept, "chat");
  const UpstreamResponse r = ParseUpstreamResponse(head, kRfcAccept);
  EXPECT_EQ(r.answer, UpstreamAnswer::kAccepted) << r.error;
  EXPECT_EQ(r.status, 101);
  EXPECT_EQ(r.subprotocol, "chat");
  EXPECT_EQ(r.head_bytes, head.size());
}

TEST(ParseUpstreamResponse, AcceptedWithoutSubprotocol) {
  const std::string head = Head101();
  const UpstreamResponse r = ParseUpstreamResponse(head, kRfcAccept);
  EXPECT_EQ(r.answer, UpstreamAnswer::kAccepted) << r.error;
  EXPECT_EQ(r.status, 101);
  EXPECT_EQ(r.subprotocol, "");
  EXPECT_EQ(r.head_bytes, head.size());
  EXPECT_EQ(r.error, "");
}

TEST(ParseUpstreamResponse, TokensAreCaseInsensitiveAndConnectionIsAList) {
  const std::string head = std::string(
                               "HTTP/1.1 101 OK\r\n"
                               "upgrade: WebSocket\r\n"
                               "connection: keep-alive, UPGRADE\r\n"
                               "sec-websocket-accept: ") +
                           kRfcAccept + "\r\nsec-websocket-protocol: chat\r\n\r\n";
  const UpstreamResponse r = ParseUpstreamResponse(head, kRfcAccept);
  EXPECT_EQ(r.answer, UpstreamAnswer::kAccepted) << r.error;
  EXPECT_EQ(r.subprotocol, "chat");
}

TEST(ParseUpstreamResponse, ConnectionTokenMayBeOnASecondLine) {
  const std::string head = std::string(
                               "HTTP/1.1 101 Switching Protocols\r\n"
                               "Connection: keep-alive\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: upgrade\r\n"
                               "Sec-WebSocket-Accept: ") +
                           kRfcAccept + "\r\n\r\n";
  EXPECT_EQ(ParseUpstreamResponse(head, kRfcAccept).answer, UpstreamAnswer::kAccepted);
}

TEST(ParseUpstreamResponse, FramesAfterTheHeadAreNotPartOfIt) {
  const std::string head = Head101("Sec-WebSocket-Protocol: chat\r\n");
  // An unmasked text frame "hi" and the start of a second frame: what an upstream may send at
  // once after its 101.
  const std::string frames("\x81\x02hi\x82\x05", 6);
  const UpstreamResponse r = ParseUpstreamResponse(head + frames, kRfcAccept);
  EXPECT_EQ(r.answer, UpstreamAnswer::kAccepted) << r.error;
  EXPECT_EQ(r.head_bytes, head.size());
  EXPECT_EQ(r.subprotocol, "chat");
  // Frame bytes that happen to look like HTTP do not change that either.
  const std::string text = head + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  const UpstreamResponse again = ParseUpstreamResponse(text, kRfcAccept);
  EXPECT_EQ(again.answer, UpstreamAnswer::kAccepted);
  EXPECT_EQ(again.head_bytes, head.size());
}

// Every prefix shorter than the head is kIncomplete; from the full head on, with any number of
// following bytes, the answer is the same and head_bytes is the head's length.
void ExpectSplitEverywhere(const std::string& head, const std::string& after, UpstreamAnswer answer,
                           int status) {
  const std::string bytes = head + after;
  for (size_t n = 0; n <= bytes.size(); ++n) {
    SCOPED_TRACE("prefix of " + std::to_string(n) + " bytes");
    const UpstreamResponse r =
        ParseUpstreamResponse(std::string_view(bytes).substr(0, n), kRfcAccept);
    if (n < head.size()) {
      ASSERT_EQ(r.answer, UpstreamAnswer::kIncomplete) << r.error;
      EXPECT_EQ(r.head_bytes, 0u);
    } else {
      ASSERT_EQ(r.answer, answer) << r.error;
      EXPECT_EQ(r.status, status);
      EXPECT_EQ(r.head_bytes, head.size());
    }
  }
}

TEST(ParseUpstreamResponse, AcceptedHeadSplitAtEveryByte) {
  ExpectSplitEverywhere(Head101("Sec-WebSocket-Protocol: chat\r\n"),
                        std::string("\x81\x03"
                                    "abc\x88\x02\x03\xe8",
                                    9),
                        UpstreamAnswer::kAccepted, 101);
}

TEST(ParseUpstreamResponse, RefusedHeadSplitAtEveryByte) {
  ExpectSplitEverywhere("HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\n", "forbidden",
                        UpstreamAnswer::kRefused, 403);
  ExpectSplitEverywhere("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                        std::string("\x81\x00", 2), UpstreamAnswer::kRefused, 101);
}

TEST(ParseUpstreamResponse, OtherStatusIsRefusedWithThatStatus) {
  const std::string head =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\n";
  const UpstreamResponse r = ParseUpstreamResponse(head + "busy", kRfcAccept);
  EXPECT_EQ(r.answer, UpstreamAnswer::kRefused);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.head_bytes, head.size());
  EXPECT_NE(r.error.find("503"), std::string::npos) << r.error;
  // Even a 200 with the right headers is not a WebSocket answer.
  const UpstreamResponse ok =
      ParseUpstreamResponse(std::string("HTTP/1.1 200 OK\r\nUpgrade: websocket\r\n"
                                        "Connection: Upgrade\r\nSec-WebSocket-Accept: ") +
                                kRfcAccept + "\r\nContent-Length: 0\r\n\r\n",
                            kRfcAccept);
  EXPECT_EQ(ok.answer, UpstreamAnswer::kRefused);
  EXPECT_EQ(ok.status, 200);
}

struct RefusedCase {
  const char* name;
  std::string head;
  const char* error_mentions;
};

TEST(ParseUpstreamResponse, InvalidWebSocketAnswersAreRefused) {
  const std::string accept = std::string("Sec-WebSocket-Accept: ") + kRfcAccept + "\r\n";
  const std::string status = "HTTP/1.1 101 Switching Protocols\r\n";
  const RefusedCase cases[] = {
      {"no Upgrade", status + "Connection: Upgrade\r\n" + accept + "\r\n", "Upgrade"},
      {"Upgrade not websocket",
       status + "Upgrade: h2c\r\nConnection: Upgrade\r\n" + accept + "\r\n", "Upgrade"},
      {"Upgrade websocket only as a part",
       status + "Upgrade: websockets\r\nConnection: Upgrade\r\n" + accept + "\r\n", "Upgrade"},
      {"no Connection", status + "Upgrade: websocket\r\n" + accept + "\r\n", "Connection"},
      {"Connection without upgrade",
       status + "Upgrade: websocket\r\nConnection: keep-alive\r\n" + accept + "\r\n", "Connection"},
      {"no accept", status + "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
       "Sec-WebSocket-Accept"},
      {"wrong accept",
       status + "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
       "Sec-WebSocket-Accept"},
      {"empty accept",
       status + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept:\r\n\r\n",
       "Sec-WebSocket-Accept"},
      {"two accepts",
       status + "Upgrade: websocket\r\nConnection: Upgrade\r\n" + accept + accept + "\r\n",
       "Sec-WebSocket-Accept"},
      {"two subprotocols in one line", Head101("Sec-WebSocket-Protocol: chat, superchat\r\n"),
       "subprotocol"},
      {"two subprotocol lines",
       Head101("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n"),
       "Sec-WebSocket-Protocol"},
      {"empty subprotocol", Head101("Sec-WebSocket-Protocol:\r\n"), "Sec-WebSocket-Protocol"},
      {"subprotocol not a token", Head101("Sec-WebSocket-Protocol: a b\r\n"),
       "Sec-WebSocket-Protocol"},
      {"extension not offered", Head101("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
       "extension"},
  };
  for (const RefusedCase& c : cases) {
    SCOPED_TRACE(c.name);
    const UpstreamResponse r = ParseUpstreamResponse(c.head, kRfcAccept);
    EXPECT_EQ(r.answer, UpstreamAnswer::kRefused) << r.error;
    EXPECT_EQ(r.status, 101);
    EXPECT_EQ(r.head_bytes, c.head.size());
    EXPECT_EQ(r.subprotocol, "");
    EXPECT_NE(r.error.find(c.error_mentions), std::string::npos) << r.error;
  }
}

TEST(ParseUpstreamResponse, ErrorsQuoteTheUpstreamShortly) {
  const std::string value(4000, 'x');
  const UpstreamResponse r =
      ParseUpstreamResponse(Head101("Sec-WebSocket-Extensions: " + value + "\r\n"), kRfcAccept);
  EXPECT_EQ(r.answer, UpstreamAnswer::kRefused);
  EXPECT_NE(r.error.find("'xxxx"), std::string::npos) << r.error;
  EXPECT_LT(r.error.size(), 200u);
}

TEST(ParseUpstreamResponse, AcceptIsComparedWithTheExpectedOne) {
  const std::string head = Head101();
  EXPECT_EQ(ParseUpstreamResponse(head, kRfcAccept).answer, UpstreamAnswer::kAccepted);
  EXPECT_EQ(ParseUpstreamResponse(head, WebSocketAccept("AAECAwQFBgcICQoLDA0ODw==")).answer,
            UpstreamAnswer::kRefused);
}

TEST(ParseUpstreamResponse, GarbageIsMalformed) {
  const std::string cases[] = {
      "garbage\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",  // a request, not a response
      "HTTP/1.1 abc Switching Protocols\r\n\r\n",
      "HTTP/1.1 101 Switching Protocols\r\nNo colon here\r\n\r\n",
      "HTTP/1.1 101 Switching Protocols\r\nBad Name: v\r\n\r\n",
      "HTTP/1.1 101 Switching Protocols\r\nX: a\0b\r\n\r\n"s,
      "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
      "\x81\x02hi\r\n\r\n"s,  // a frame where the head should be
  };
  for (const std::string& bytes : cases) {
    SCOPED_TRACE(bytes);
    const UpstreamResponse r = ParseUpstreamResponse(bytes, kRfcAccept);
    EXPECT_EQ(r.answer, UpstreamAnswer::kMalformed);
    EXPECT_FALSE(r.error.empty());
  }
}

TEST(ParseUpstreamResponse, NotHttp11IsMalformed) {
  const std::string head = std::string(
                               "HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: ") +
                           kRfcAccept + "\r\n\r\n";
  const UpstreamResponse r = ParseUpstreamResponse(head, kRfcAccept);
  EXPECT_EQ(r.answer, UpstreamAnswer::kMalformed);
  EXPECT_EQ(r.status, 101);
  EXPECT_NE(r.error.find("HTTP/1.0"), std::string::npos) << r.error;
}

TEST(ParseUpstreamResponse, NothingYetIsIncomplete) {
  const UpstreamResponse r = ParseUpstreamResponse("", kRfcAccept);
  EXPECT_EQ(r.answer, UpstreamAnswer::kIncomplete);
  EXPECT_EQ(r.head_bytes, 0u);
  EXPECT_EQ(ParseUpstreamResponse("HTTP/1.1 101 Switching Protocols\r\n", kRfcAccept).answer,
            UpstreamAnswer::kIncomplete);
}

TEST(ParseUpstreamResponse, HeadMustEndWithinMaxBytes) {
  const std::string head = Head101();
  const std::string frames("\x81\x02hi", 4);
  // A head of exactly max_bytes is fine, with or without frames after it.
  EXPECT_EQ(ParseUpstreamResponse(head, kRfcAccept, head.size()).answer, UpstreamAnswer::kAccepted);
  const UpstreamResponse with_frames =
      ParseUpstreamResponse(head + frames, kRfcAccept, head.size());
  EXPECT_EQ(with_frames.answer, UpstreamAnswer::kAccepted) << with_frames.error;
  EXPECT_EQ(with_frames.head_bytes, head.size());
  // One byte longer is too large, however many bytes have arrived.
  for (size_t n : {head.size() - 1, head.size(), head.size() + frames.size()}) {
    SCOPED_TRACE(n);
    const UpstreamResponse r = ParseUpstreamResponse(std::string_view(head + frames).substr(0, n),
                                                     kRfcAccept, head.size() - 1);
    EXPECT_EQ(r.answer, UpstreamAnswer::kTooLarge);
    EXPECT_FALSE(r.error.empty());
  }
  // Fewer than max_bytes without the blank line is only incomplete.
  EXPECT_EQ(
      ParseUpstreamResponse(head.substr(0, head.size() - 2), kRfcAccept, head.size() - 1).answer,
      UpstreamAnswer::kIncomplete);
}

TEST(ParseUpstreamResponse, DefaultLimitIs16KiB) {
  // Headers that never end: incomplete below 16 KiB, too large from there on. The fields alone
  // stay under the limit, so this also checks that the start line counts towards it.
  std::string bytes = "HTTP/1.1 101 Switching Protocols\r\n";
  while (bytes.size() < 16 * 1024 - 100) bytes += "X-Filler: 0123456789abcdef0123456789\r\n";
  EXPECT_EQ(ParseUpstreamResponse(bytes, kRfcAccept).answer, UpstreamAnswer::kIncomplete);
  bytes.resize(16 * 1024, 'x');
  EXPECT_EQ(ParseUpstreamResponse(bytes, kRfcAccept).answer, UpstreamAnswer::kTooLarge);
  // A long status line counts as well.
  std::string long_reason = "HTTP/1.1 101 " + std::string(16 * 1024, 'r');
  EXPECT_EQ(ParseUpstreamResponse(long_reason, kRfcAccept).answer, UpstreamAnswer::kTooLarge);
  // And a complete head that is longer than the limit is too large, not accepted.
  std::string big =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      std::string(kRfcAccept) + "\r\n";
  while (big.size() < 17 * 1024) big += "X-Filler: 0123456789abcdef0123456789\r\n";
  big += "\r\n";
  EXPECT_EQ(ParseUpstreamResponse(big, kRfcAccept).answer, UpstreamAnswer::kTooLarge);
  EXPECT_EQ(ParseUpstreamResponse(big, kRfcAccept, big.size()).answer, UpstreamAnswer::kAccepted);
  // Beast's own header_limit counts the status line and the fields separately: a head of a
  // 9 KiB status line and 9 KiB of fields must still be too large for a 16 KiB limit.
  std::string split =
      "HTTP/1.1 101 " + std::string(9 * 1024, 'r') +
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + kRfcAccept +
      "\r\nX-Filler: " + std::string(9 * 1024, 'f') + "\r\n\r\n";
  EXPECT_EQ(ParseUpstreamResponse(split, kRfcAccept).answer, UpstreamAnswer::kTooLarge);
  EXPECT_EQ(ParseUpstreamResponse(split, kRfcAccept, split.size()).answer,
            UpstreamAnswer::kAccepted);
}

}  // namespace
}  // namespace wsgate::dataplane::relay
