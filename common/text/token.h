// Character classes of HTTP (RFC 9110) that header names, subprotocols and credentials use.
// Pure and header-only.
#pragma once

#include <string_view>

namespace wsgate::text {

inline bool IsAsciiAlnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// tchar (RFC 9110 section 5.6.2): header names, subprotocol names, methods.
inline bool IsTokenChar(unsigned char c) {
  return IsAsciiAlnum(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// token68 (RFC 9110 section 11.2) without the trailing '=': bearer credentials.
inline bool IsToken68Char(unsigned char c) {
  return IsAsciiAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

inline bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace wsgate::text
