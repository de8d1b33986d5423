// UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
// Pure function.
#pragma once

#include <string_view>

namespace wsgate::dataplane::bus {

bool IsValidUtf8(std::string_view s);

}  // namespace wsgate::dataplane::bus
