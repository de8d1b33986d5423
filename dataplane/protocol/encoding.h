// Small encoders shared by the codecs: query-component percent-encoding, the seed's timestamp
// format and a JSON nesting pre-check. Base64 and UTF-8 validation are common/text/.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace wsgate::dataplane::protocol {

// Percent-encodes everything but the RFC 3986 unreserved set (A-Z a-z 0-9 - . _ ~), so a space
// becomes %20, never '+': the result means the same to every server.
std::string PercentEncodeComponent(std::string_view text);

// "2025-01-01T12:00:00.000Z": ISO-8601, UTC, milliseconds, as in seed 003.
std::string FormatTimestamp(std::chrono::system_clock::time_point t);

// True when the JSON text nests arrays/objects deeper than `max_depth`. Serialising and
// destroying JSON values recurses, so text nested a million levels deep must be refused before it
// is parsed. Strings are skipped correctly; the text need not be valid JSON.
bool JsonNestingExceeds(std::string_view text, size_t max_depth);

// Nesting limit applied to client messages and upstream JSON bodies.
inline constexpr size_t kMaxJsonDepth = 64;

}  // namespace wsgate::dataplane::protocol
