// A JSON string literal for `s` (quotes, backslashes and control characters escaped), for
// one-line JSON that is built without a JSON library: Connect error bodies and audit log lines.
// Bytes >= 0x80 pass through unchanged, so valid UTF-8 stays valid. Pure and header-only.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace wsgate::text {

inline std::string JsonQuote(absl::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20) {
      out += "\\u00";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace wsgate::text
