#include "common/text/base64.h"
#include "common/text/utf8.h"
#include "dataplane/protocol/external_client_codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "dataplane/protocol/encoding.h"

namespace wsgate::dataplane::protocol {
namespace {

using nlohmann::json;

const Clock::time_point kNoon{std::chrono::seconds{1735732800}};  // 2025-01-01T12:00:00.000Z

TEST(ParseExternalCommand, SeedConnect) {
  auto cmd = ParseExternalCommand(R"({"type": "connect_external", "url": "wss://echo.websocket.org",
      "protocols": ["protocol1", "protocol2"], "headers": {"Authorization": "Bearer token"}})");
  auto* c = std::get_if<ConnectExternal>(&cmd);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->url, "wss://echo.websocket.org");
  EXPECT_EQ(c->protocols, (std::vector<std::string>{"protocol1", "protocol2"}));
  ASSERT_EQ(c->headers.size(), 1u);
  EXPECT_EQ(c->headers[0].first, "Authorization");
  EXPECT_EQ(c->headers[0].second, "Bearer token");
  // protocols and headers are optional (the seed's Python example sends neither).
  auto bare = ParseExternalCommand(R"({"type":"connect_external","url":"ws://h/"})");
  ASSERT_TRUE(std::holds_alternative<ConnectExternal>(bare));
}

TEST(ParseExternalCommand, SendTextAndBinary) {
  auto text = ParseExternalCommand(
      R"({"type":"send_message","content":"Hello WebSocket server!","message_type":"text"})");
  auto* t = std::get_if<SendExternalMessage>(&text);
  ASSERT_NE(t, nullptr);
  EXPECT_FALSE(t->binary);
  EXPECT_EQ(t->payload, "Hello WebSocket server!");
  // message_type defaults to text (the seed's JavaScript example omits it).
  auto dflt = ParseExternalCommand(R"({"type":"send_message","content":"Hello World!"})");
  EXPECT_FALSE(std::get<SendExternalMessage>(dflt).binary);
  std::string bytes("\x00\x01\xfe\xff", 4);
  auto bin = ParseExternalCommand(R"({"type":"send_message","message_type":"binary","content":")" +
                                  wsgate::text::Base64Encode(bytes) + "\"}");
  auto* b = std::get_if<SendExternalMessage>(&bin);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(b->binary);
  EXPECT_EQ(b->payload, bytes);
  EXPECT_EQ(b->content, wsgate::text::Base64Encode(bytes));
}

TEST(ParseExternalCommand, Disconnect) {
  EXPECT_TRUE(std::holds_alternative<DisconnectExternal>(
      ParseExternalCommand(R"({"type":"disconnect_external"})")));
}

TEST(ParseExternalCommand, EveryBadInputIsAnError) {
  for (const std::string& msg : std::vector<std::string>{
           "",
           "nope",
           "[1]",
           "\"connect_external\"",
           "{}",
           R"({"type":5})",
           R"({"type":"CONNECT_EXTERNAL","url":"ws://h/"})",
           R"({"type":"subscribe"})",
           R"({"type":"connect_external"})",
           R"({"type":"connect_external","url":""})",
           R"({"type":"connect_external","url":7})",
           R"({"type":"connect_external","url":"ws://h/","protocols":"p"})",
           R"({"type":"connect_external","url":"ws://h/","protocols":[1]})",
           R"({"type":"connect_external","url":"ws://h/","protocols":["a b"]})",
           R"({"type":"connect_external","url":"ws://h/","headers":["x"]})",
           R"({"type":"connect_external","url":"ws://h/","headers":{"X":1}})",
           R"({"type":"connect_external","url":"ws://h/","headers":{"X":"a\nb"}})",
           R"({"type":"connect_external","url":"ws://h/","headers":{"Sec-WebSocket-Key":"x"}})",
           R"({"type":"connect_external","url":"ws://h/","headers":{"Host":"evil"}})",
           R"({"type":"send_message"})",
           R"({"type":"send_message","content":5})",
           R"({"type":"send_message","content":"x","message_type":"json"})",
           R"({"type":"send_message","content":"x","message_type":1})",
           R"({"type":"send_message","content":"not base64!","message_type":"binary"})",
           std::string(R"({"type":"send_message","content":)") + std::string(5000, '[') + "}",
       }) {
    auto cmd = ParseExternalCommand(msg);
    auto* e = std::get_if<ExternalCommandError>(&cmd);
    ASSERT_NE(e, nullptr) << msg;
    EXPECT_FALSE(e->message.empty());
  }
}

TEST(ExternalEvents, MatchTheSeedExactly) {
  EXPECT_EQ(json::parse(ConnectionStatusEvent(ConnectionStatus::kConnected, kNoon)),
            json::parse(R"({"type":"connection_status","status":"connected",
                            "timestamp":"2025-01-01T12:00:00.000Z"})"));
  for (auto [s, name] : {std::pair{ConnectionStatus::kConnecting, "connecting"},
                         std::pair{ConnectionStatus::kDisconnected, "disconnected"},
                         std::pair{ConnectionStatus::kError, "error"}}) {
    EXPECT_EQ(json::parse(ConnectionStatusEvent(s, kNoon))["status"], name);
  }
  EXPECT_EQ(
      json::parse(ConnectionErrorEvent("Connection timeout", ExternalErrorCode::kTimeout, kNoon)),
      json::parse(R"({"type":"connection_error","error":"Connection timeout",
                            "code":"TIMEOUT","timestamp":"2025-01-01T12:00:00.000Z"})"));
  EXPECT_EQ(json::parse(MessageReceivedEvent("Response from server", false, kNoon)),
            json::parse(R"({"type":"message_received","content":"Response from server",
                            "message_type":"text","timestamp":"2025-01-01T12:00:00.000Z"})"));
  json bin = json::parse(MessageReceivedEvent(std::string("\x00\xff", 2), true, kNoon));
  EXPECT_EQ(bin["message_type"], "binary");
  EXPECT_EQ(*wsgate::text::Base64Decode(bin["content"].get<std::string>()), std::string("\x00\xff", 2));
  EXPECT_EQ(json::parse(MessageSentEvent("Original message content", kNoon)),
            json::parse(R"({"type":"message_sent","content":"Original message content",
                            "timestamp":"2025-01-01T12:00:00.000Z"})"));
  EXPECT_EQ(json::parse(SendErrorEvent("Failed to send message", kNoon)),
            json::parse(R"({"type":"send_error","error":"Failed to send message",
                            "timestamp":"2025-01-01T12:00:00.000Z"})"));
  EXPECT_EQ(json::parse(InvalidFormatEvent("Invalid message format", kNoon)),
            json::parse(R"({"type":"error","error":"Invalid message format",
                            "code":"INVALID_FORMAT","timestamp":"2025-01-01T12:00:00.000Z"})"));
}

TEST(ExternalEvents, ErrorCodeNames) {
  EXPECT_STREQ(ExternalErrorCodeName(ExternalErrorCode::kTimeout), "TIMEOUT");
  EXPECT_STREQ(ExternalErrorCodeName(ExternalErrorCode::kAuthFailed), "AUTH_FAILED");
  EXPECT_STREQ(ExternalErrorCodeName(ExternalErrorCode::kRefused), "REFUSED");
  EXPECT_STREQ(ExternalErrorCodeName(ExternalErrorCode::kNotAllowed), "NOT_ALLOWED");
  EXPECT_STREQ(ExternalErrorCodeName(ExternalErrorCode::kLimitExceeded), "LIMIT_EXCEEDED");
  EXPECT_STREQ(ExternalErrorCodeName(ExternalErrorCode::kFailed), "CONNECTION_FAILED");
}

}  // namespace
}  // namespace wsgate::dataplane::protocol
