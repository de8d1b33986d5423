// UTF-8 validation (RFC 3629): the one check that text frames, close reasons, bus payloads and
// RPC arguments share. Pure.
#pragma once

#include <string_view>

namespace wsgate::text {

// False for overlong encodings, surrogates (U+D800..U+DFFF), code points above U+10FFFF and
// truncated sequences.
bool IsValidUtf8(std::string_view bytes);

}  // namespace wsgate::text
