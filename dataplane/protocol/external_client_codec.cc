#include "dataplane/protocol/external_client_codec.h"

#include "common/text/base64.h"
#include "common/text/token.h"
#include "common/text/utf8.h"

#include <nlohmann/json.hpp>

#include "dataplane/protocol/encoding.h"
#include "common/text/ascii.h"

namespace wsgate::dataplane::protocol {
namespace {

using Json = nlohmann::ordered_json;

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

ExternalCommandError Invalid(std::string message) {
  return ExternalCommandError{std::move(message)};
}

// The WebSocket client builds the handshake itself; letting a client set these would break it or
// let it talk to another virtual host behind an allowed address.
bool IsReservedHeader(std::string_view lower) {
  return lower == "host" || lower == "connection" || lower == "upgrade" ||
         lower == "content-length" || lower == "transfer-encoding" ||
         text::StartsWith(lower, "sec-websocket-");
}

ExternalCommand ParseConnect(const Json& msg) {
  ConnectExternal cmd;
  auto url = msg.find("url");
  if (url == msg.end() || !url->is_string() || url->get_ref<const std::string&>().empty()) {
    return Invalid("connect_external needs a url (string)");
  }
  cmd.url = url->get<std::string>();
  if (auto it = msg.find("protocols"); it != msg.end() && !it->is_null()) {
    if (!it->is_array()) return Invalid("protocols must be an array of strings");
    for (const Json& p : *it) {
      if (!p.is_string() || p.get_ref<const std::string&>().empty()) {
        return Invalid("protocols must be an array of strings");
      }
      for (unsigned char c : p.get_ref<const std::string&>()) {
        if (!wsgate::text::IsTokenChar(c)) return Invalid("invalid subprotocol name");
      }
      cmd.protocols.push_back(p.get<std::string>());
    }
  }
  if (auto it = msg.find("headers"); it != msg.end() && !it->is_null()) {
    if (!it->is_object()) return Invalid("headers must be an object");
    for (const auto& [name, value] : it->items()) {
      if (name.empty() || name.size() > 256) return Invalid("invalid header name");
      for (unsigned char c : name) {
        if (!wsgate::text::IsTokenChar(c)) return Invalid("invalid header name");
      }
      if (IsReservedHeader(text::Lower(name))) {
        return Invalid(text::Cat("header '", name, "' is set by the gateway"));
      }
      if (!value.is_string()) return Invalid(text::Cat("header '", name, "' must be a string"));
      const std::string& text = value.get_ref<const std::string&>();
      for (unsigned char c : text) {
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
          return Invalid(text::Cat("header '", name, "' holds a control character"));
        }
      }
      cmd.headers.emplace_back(name, text);
    }
  }
  return cmd;
}

ExternalCommand ParseSend(const Json& msg) {
  SendExternalMessage cmd;
  auto content = msg.find("content");
  if (content == msg.end() || !content->is_string()) {
    return Invalid("send_message needs a content (string)");
  }
  cmd.content = content->get<std::string>();
  if (auto it = msg.find("message_type"); it != msg.end() && !it->is_null()) {
    if (!it->is_string()) return Invalid("message_type must be \"text\" or \"binary\"");
    const std::string& type = it->get_ref<const std::string&>();
    if (type == "binary") {
      cmd.binary = true;
    } else if (type != "text") {
      return Invalid("message_type must be \"text\" or \"binary\"");
    }
  }
  if (cmd.binary) {
    auto bytes = wsgate::text::Base64Decode(cmd.content);
    if (!bytes.ok()) return Invalid("binary content must be base64");
    cmd.payload = *std::move(bytes);
  } else {
    cmd.payload = cmd.content;
  }
  return cmd;
}

Json Event(const char* type) {
  Json j = Json::object();
  j["type"] = type;
  return j;
}

std::string Finish(Json j, Clock::time_point now) {
  j["timestamp"] = FormatTimestamp(now);
  return Dump(j);
}

}  // namespace

ExternalCommand ParseExternalCommand(std::string_view message) {
  if (JsonNestingExceeds(message, kMaxJsonDepth)) return Invalid("Invalid message format");
  Json msg = Json::parse(message, nullptr, /*allow_exceptions=*/false);
  // The seed's wording for both cases.
  if (msg.is_discarded() || !msg.is_object()) return Invalid("Invalid message format");
  auto type = msg.find("type");
  if (type == msg.end() || !type->is_string()) {
    return Invalid("Invalid message format: missing type");
  }
  const std::string& t = type->get_ref<const std::string&>();
  if (t == "connect_external") return ParseConnect(msg);
  if (t == "send_message") return ParseSend(msg);
  if (t == "disconnect_external") return DisconnectExternal{};
  return Invalid(text::Cat("Invalid message format: unknown type ", Dump(Json(t.substr(0, 64)))));
}

const char* ConnectionStatusName(ConnectionStatus status) {
  switch (status) {
    case ConnectionStatus::kConnecting:
      return "connecting";
    case ConnectionStatus::kConnected:
      return "connected";
    case ConnectionStatus::kDisconnected:
      return "disconnected";
    case ConnectionStatus::kError:
      return "error";
  }
  return "error";
}

const char* ExternalErrorCodeName(ExternalErrorCode code) {
  switch (code) {
    case ExternalErrorCode::kTimeout:
      return "TIMEOUT";
    case ExternalErrorCode::kAuthFailed:
      return "AUTH_FAILED";
    case ExternalErrorCode::kRefused:
      return "REFUSED";
    case ExternalErrorCode::kNotAllowed:
      return "NOT_ALLOWED";
    case ExternalErrorCode::kLimitExceeded:
      return "LIMIT_EXCEEDED";
    case ExternalErrorCode::kFailed:
      return "CONNECTION_FAILED";
  }
  return "CONNECTION_FAILED";
}

std::string ConnectionStatusEvent(ConnectionStatus status, Clock::time_point now) {
  Json j = Event("connection_status");
  j["status"] = ConnectionStatusName(status);
  return Finish(std::move(j), now);
}

std::string ConnectionErrorEvent(std::string_view error, ExternalErrorCode code,
                                 Clock::time_point now) {
  Json j = Event("connection_error");
  j["error"] = error;
  j["code"] = ExternalErrorCodeName(code);
  return Finish(std::move(j), now);
}

std::string MessageReceivedEvent(std::string_view payload, bool binary, Clock::time_point now) {
  Json j = Event("message_received");
  j["content"] = binary ? wsgate::text::Base64Encode(payload) : std::string(payload);
  j["message_type"] = binary ? "binary" : "text";
  return Finish(std::move(j), now);
}

std::string MessageSentEvent(std::string_view content, Clock::time_point now) {
  Json j = Event("message_sent");
  j["content"] = content;
  return Finish(std::move(j), now);
}

std::string SendErrorEvent(std::string_view error, Clock::time_point now) {
  Json j = Event("send_error");
  j["error"] = error;
  return Finish(std::move(j), now);
}

std::string InvalidFormatEvent(std::string_view error, Clock::time_point now) {
  Json j = Event("error");
  j["error"] = error;
  j["code"] = "INVALID_FORMAT";
  return Finish(std::move(j), now);
}

}  // namespace wsgate::dataplane::protocol
