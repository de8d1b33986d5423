// Base64 (RFC 4648 section 4) and base64url (section 5, no padding, as JWT uses it). Pure.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace wsgate::text {

std::string Base64Encode(std::string_view bytes);
// Strict: padding optional but consistent, no whitespace, unused trailing bits zero (so one
// text decodes to one value). INVALID_ARGUMENT says what is wrong.
absl::StatusOr<std::string> Base64Decode(std::string_view text);

std::string Base64UrlEncode(std::string_view bytes);
// False on a character outside the base64url alphabet or an impossible length.
bool Base64UrlDecode(std::string_view text, std::string* out);

}  // namespace wsgate::text
