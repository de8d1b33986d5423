// The external client's seed JSON codec (dataplane/protocol/external_client_codec.h): the
// client's commands, and the events sent back. Invariants: a parsed connect has a URL and header
// values that cannot split an HTTP head; a parsed send of text carries the content as its
// payload; an error carries a message; every event built from the input bytes (a received text
// or binary message, a sent echo, an error text) is valid JSON.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "dataplane/protocol/external_client_codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace protocol = wsgate::dataplane::protocol;

bool HasSplitter(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

void CheckEvent(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!j.is_discarded());
  FUZZ_CHECK(j.is_object() && j.contains("type"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const protocol::ExternalCommand cmd = protocol::ParseExternalCommand(input);
  if (const auto* c = std::get_if<protocol::ConnectExternal>(&cmd)) {
    FUZZ_CHECK(!c->url.empty());
    for (const auto& [name, value] : c->headers) {
      FUZZ_CHECK(!name.empty());
      FUZZ_CHECK(!HasSplitter(name) && !HasSplitter(value));
    }
  } else if (const auto* s = std::get_if<protocol::SendExternalMessage>(&cmd)) {
    if (!s->binary) FUZZ_CHECK(s->payload == s->content);
    CheckEvent(protocol::MessageSentEvent(s->content, protocol::Clock::time_point{}));
    CheckEvent(protocol::MessageReceivedEvent(s->payload, s->binary, protocol::Clock::now()));
  } else if (const auto* e = std::get_if<protocol::ExternalCommandError>(&cmd)) {
    FUZZ_CHECK(!e->message.empty());
    CheckEvent(protocol::InvalidFormatEvent(e->message, protocol::Clock::time_point{}));
  }
  const auto t = protocol::Clock::time_point{} + std::chrono::milliseconds(size * 1234567);
  CheckEvent(protocol::MessageReceivedEvent(input, /*binary=*/true, t));
  CheckEvent(protocol::MessageSentEvent(input, t));
  CheckEvent(protocol::SendErrorEvent(input, t));
  CheckEvent(protocol::InvalidFormatEvent(input, t));
  CheckEvent(protocol::ConnectionErrorEvent(input, protocol::ExternalErrorCode::kFailed, t));
  CheckEvent(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kConnected, t));
  return 0;
}
