// Process-wide logging: spdlog behind a tiny facade, text or JSON lines.
// Thread-safe. Hot paths must check `LogEnabled(level)` before building a message.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace wsgate::common {

enum class LogFormat { kText, kJson };

// level: "trace", "debug", "info", "warn", "error", "off". Unknown level -> InvalidArgument.
absl::Status InitLogging(LogFormat format, std::string_view level);

}  // namespace wsgate::common
