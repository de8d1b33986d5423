#include "controlplane/config/url.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace wsgate::controlplane {
namespace {

bool IsHostChar(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_'; }

}  // namespace

absl::StatusOr<dataplane::UpstreamUrl> ParseWsUrl(std::string_view url) {
  if (url.empty()) return absl::InvalidArgumentError("must not be empty");
  for (char c : url) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return absl::InvalidArgumentError(
          "must not contain whitespace, control or non-ASCII characters");
    }
  }
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", std::string(url), "' is not a ws:// URL"));
  }
  std::string scheme = absl::AsciiStrToLower(std::string(url.substr(0, sep)));
  if (scheme != "ws" && scheme != "wss") {
    return absl::InvalidArgumentError(absl::StrCat("scheme must be ws:// or wss:// (got ",
                                                   std::string(url.substr(0, sep + 3)), ")"));
  }
  std::string_view rest = url.substr(sep + 3);
  if (rest.find('#') != std::string_view::npos) {
    return absl::InvalidArgumentError("must not have a fragment ('#')");
  }
  size_t auth_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, auth_end);
  std::string_view tail =
      auth_end == std::string_view::npos ? std::string_view() : rest.substr(auth_end);
  if (authority.find('@') != std::string_view::npos) {
    return absl::InvalidArgumentError("must not carry user info ('user@host')");
  }

  dataplane::UpstreamUrl out;
  out.url = std::string(url);
  out.secure = scheme == "wss";
  if (out.secure) out.port = 443;
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError("IPv6 address is missing its closing ']'");
    }
    std::string_view v6 = authority.substr(1, close - 1);
    if (v6.empty() || v6.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos ||
        v6.find(':') == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("'[", std::string(v6), "]' is not an IPv6 address"));
    }
    out.host = std::string(v6);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        return absl::InvalidArgumentError("unexpected text after the IPv6 address");
      }
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    size_t colon = authority.find(':');
    std::string_view host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
    if (host.empty()) return absl::InvalidArgumentError("host is missing");
    for (char c : host) {
      if (!IsHostChar(c)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "host '", std::string(host), "' has an invalid character '", std::string(1, c), "'"));
      }
    }
    out.host = std::string(host);
  }
  if (has_port) {
    if (port_text.empty() || port_text.size() > 5 ||
        port_text.find_first_not_of("0123456789") != std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("port '", std::string(port_text), "' is not a number in 1..65535"));
    }
    int port = std::stoi(std::string(port_text));
    if (port < 1 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("port ", std::string(port_text), " is out of range (1..65535)"));
    }
    out.port = static_cast<uint16_t>(port);
  }
  if (tail.empty()) {
    out.path_and_query = "/";
  } else if (tail[0] == '?') {
    out.path_and_query = absl::StrCat("/", std::string(tail));
  } else {
    out.path_and_query = std::string(tail);
  }
  return out;
}

}  // namespace wsgate::controlplane
