// The external WebSocket client message formats (seed 003): the client's commands
// (connect_external, send_message, disconnect_external) and the gateway's events
// (connection_status, connection_error, message_received, message_sent, send_error, error), each
// event with an ISO-8601 UTC "timestamp" with milliseconds.
//
// Pure functions of their input, no I/O; `now` is a parameter so tests can pin it.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace wsgate::dataplane::protocol {

// {"type": "connect_external", "url": .., "protocols": [..], "headers": {..}}
struct ConnectExternal {
  std::string url;  // not yet checked against any policy
  std::vector<std::string> protocols;
  // Values validated (no CR/LF/NUL); handshake headers (Host, Sec-WebSocket-*, Upgrade, ...)
  // are refused because the gateway's client sets them.
  std::vector<std::pair<std::string, std::string>> headers;
};

// {"type": "send_message", "content": .., "message_type": "text"|"binary"}; message_type is
// optional and defaults to "text".
struct SendExternalMessage {
  bool binary = false;
  std::string payload;  // what goes on the wire: the text, or the base64-decoded bytes
  std::string content;  // the client's content as sent, echoed back by message_sent
};

// {"type": "disconnect_external"}
struct DisconnectExternal {};

// An answer for the client: always an `error` event with code INVALID_FORMAT.
struct ExternalCommandError {
  std::string message;
};

using ExternalCommand =
    std::variant<ConnectExternal, SendExternalMessage, DisconnectExternal, ExternalCommandError>;

// Parses one client text message. Never throws.
ExternalCommand ParseExternalCommand(std::string_view message);

enum class ConnectionStatus { kConnecting, kConnected, kDisconnected, kError };
const char* ConnectionStatusName(ConnectionStatus status);  // "connecting", ...

// The "code" of a connection_error event. TIMEOUT and AUTH_FAILED are the seed's; the rest are
// the issue's. kFailed covers what none of those name (TLS failure, a non-101 answer other than
// 401/403, a dropped handshake).
enum class ExternalErrorCode {
  kTimeout,        // TIMEOUT: connect + handshake beyond the route's connect timeout
  kAuthFailed,     // AUTH_FAILED: the handshake got 401 or 403
  kRefused,        // REFUSED: connection refused / host unreachable / resolve failure
  kNotAllowed,     // NOT_ALLOWED: the allow-list or address ranges refused the target
  kLimitExceeded,  // LIMIT_EXCEEDED: the client_id already has the maximum of connections
  kFailed,         // CONNECTION_FAILED: anything else
};
const char* ExternalErrorCodeName(ExternalErrorCode code);

using Clock = std::chrono::system_clock;

std::string ConnectionStatusEvent(ConnectionStatus status, Clock::time_point now);
std::string ConnectionErrorEvent(std::string_view error, ExternalErrorCode code,
                                 Clock::time_point now);
// content is the text, or base64 of the bytes for a binary message.
std::string MessageReceivedEvent(std::string_view payload, bool binary, Clock::time_point now);
std::string MessageSentEvent(std::string_view content, Clock::time_point now);
std::string SendErrorEvent(std::string_view error, Clock::time_point now);
// {"type": "error", "error": .., "code": "INVALID_FORMAT", "timestamp": ..}
std::string InvalidFormatEvent(std::string_view error, Clock::time_point now);

}  // namespace wsgate::dataplane::protocol
