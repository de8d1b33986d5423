#include "common/text/url.h"

#include <arpa/inet.h>

#include <cctype>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/text/ascii.h"

namespace wsgate::text {
namespace {

constexpr size_t kMaxUrlBytes = 8192;
constexpr size_t kMaxHostBytes = 253;

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// Path and query keep every printable ASCII byte except the few that are never valid there;
// spaces and non-ASCII bytes are percent-encoded (as browsers do), so the request line stays
// well-formed whatever the client typed.
absl::StatusOr<std::string> NormalisePathOrQuery(std::string_view in, bool is_path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (unsigned char c : in) {
    if (IsControl(c)) return absl::InvalidArgumentError("control character in URL");
    if (c == '\\' && is_path) return absl::InvalidArgumentError("backslash in URL path");
    if (c == ' ' || c >= 0x80 || c == '"' || c == '<' || c == '>' || c == '`' || c == '{' ||
        c == '}' || c == '|' || c == '^' || c == '\\') {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

bool IsHostChar(char c) {
  return text::IsAlnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

// RFC 3986 section 5.2.4.
std::string RemoveDotSegments(std::string_view path) {
  std::vector<std::string_view> out;
  std::vector<std::string_view> segments;
  for (size_t start = 0;;) {
    size_t slash = path.find('/', start);
    segments.push_back(path.substr(start, slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  // A leading '/' gives an empty first segment; keep the path absolute.
  bool trailing_slash = false;
  for (size_t i = 1; i < segments.size(); ++i) {
    std::string_view seg = segments[i];
    bool last = i + 1 == segments.size();
    if (seg == ".") {
      trailing_slash = last;
    } else if (seg == "..") {
      if (!out.empty()) out.pop_back();
      trailing_slash = last;
    } else {
      out.push_back(seg);
      trailing_slash = false;
    }
  }
  std::string result;
  for (std::string_view seg : out) result += text::Cat("/", seg);
  if (result.empty()) result = "/";
  if (trailing_slash && result.back() != '/') result.push_back('/');
  return result;
}

}  // namespace

uint16_t DefaultPort(std::string_view scheme) {
  return (scheme == "https" || scheme == "wss") ? 443 : 80;
}

std::string Url::Target() const { return has_query ? text::Cat(path, "?", query) : path; }

std::string Url::HostHeader() const {
  std::string h = host_is_ipv6 ? text::Cat("[", host, "]") : host;
  if (port != DefaultPort(scheme)) h += text::Cat(":", port);
  return h;
}

std::string Url::ToString() const { return text::Cat(scheme, "://", HostHeader(), Target()); }

absl::StatusOr<Url> ParseUrl(std::string_view input) {
  if (input.size() > kMaxUrlBytes) return absl::InvalidArgumentError("URL too long");
  size_t sep = input.find("://");
  if (sep == std::string_view::npos) {
    return absl::InvalidArgumentError("URL is not absolute (no scheme://)");
  }
  Url url;
  url.scheme = text::Lower(input.substr(0, sep));
  if (url.scheme != "http" && url.scheme != "https" && url.scheme != "ws" && url.scheme != "wss") {
    return absl::InvalidArgumentError(text::Cat("unsupported URL scheme '", url.scheme, "'"));
  }
  std::string_view rest = input.substr(sep + 3);
  size_t fragment = rest.find('#');
  if (fragment != std::string_view::npos) rest = rest.substr(0, fragment);
  size_t authority_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view path_and_query =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);

  for (unsigned char c : authority) {
    if (IsControl(c) || c == ' ' || c >= 0x80 || c == '\\' || c == '%') {
      return absl::InvalidArgumentError(
          IsControl(c) || c == ' ' || c >= 0x80
              ? std::string("invalid character in URL host")
              : text::Cat("invalid character '", static_cast<char>(c), "' in URL host"));
    }
  }
  if (authority.find('@') != std::string_view::npos) {
    // "http://allowed.example@evil.example/" reads differently to people and to parsers.
    return absl::InvalidArgumentError("user info in URL is not allowed");
  }
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError("IPv6 address is missing its closing ']'");
    }
    std::string literal(authority.substr(1, close - 1));
    in6_addr addr6;
    if (inet_pton(AF_INET6, literal.c_str(), &addr6) != 1) {
      return absl::InvalidArgumentError(text::Cat("'[", literal, "]' is not an IPv6 address"));
    }
    char canonical[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &addr6, canonical, sizeof(canonical));
    url.host = canonical;
    url.host_is_ipv6 = true;
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return absl::InvalidArgumentError("unexpected text after the IPv6 address");
      }
      port_text = after.substr(1);
      has_port = true;
    }
  } else {
    size_t colon = authority.find(':');
    std::string_view host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    if (host.empty()) return absl::InvalidArgumentError("host is missing");
    if (host.size() > kMaxHostBytes) return absl::InvalidArgumentError("URL host too long");
    for (char c : host) {
      if (!IsHostChar(c)) {
        return absl::InvalidArgumentError(
            text::Cat("host '", host, "' has an invalid character '", c, "'"));
      }
    }
    // After the one trailing dot a fully qualified name may have: another one ("a..") is an
    // empty label too (found by tests/fuzz/fuzz_url.cc: "a.." parsed as the host "a.").
    if (host.front() == '.' || host.back() == '.' || host.find("..") != std::string_view::npos) {
      return absl::InvalidArgumentError("empty label in URL host");
    }
    url.host = text::Lower(host);
  }
  if (has_port) {
    if (port_text.empty() || port_text.size() > 5 ||
        port_text.find_first_not_of("0123456789") != std::string_view::npos) {
      return absl::InvalidArgumentError(
          text::Cat("port '", port_text, "' is not a number in 1..65535"));
    }
    uint32_t port = 0;
    for (char c : port_text) port = port * 10 + static_cast<uint32_t>(c - '0');
    if (port == 0 || port > 65535) {
      return absl::InvalidArgumentError(
          text::Cat("port ", port_text, " is out of range (1..65535)"));
    }
    url.port = static_cast<uint16_t>(port);
    url.explicit_port = true;
  } else {
    url.port = DefaultPort(url.scheme);
  }

  size_t q = path_and_query.find('?');
  std::string_view path = path_and_query.substr(0, q);
  if (path.empty()) path = "/";
  auto norm_path = NormalisePathOrQuery(path, /*is_path=*/true);
  if (!norm_path.ok()) return norm_path.status();
  url.path = *std::move(norm_path);
  if (q != std::string_view::npos) {
    auto norm_query = NormalisePathOrQuery(path_and_query.substr(q + 1), /*is_path=*/false);
    if (!norm_query.ok()) return norm_query.status();
    url.query = *std::move(norm_query);
    url.has_query = true;
  }
  return url;
}

absl::StatusOr<Url> ResolveReference(const Url& base, std::string_view location) {
  if (location.empty()) return absl::InvalidArgumentError("empty Location");
  size_t colon = location.find(':');
  size_t first_delim = location.find_first_of("/?#");
  bool has_scheme = colon != std::string_view::npos && colon > 0 &&
                    (first_delim == std::string_view::npos || colon < first_delim) &&
                    std::isalpha(static_cast<unsigned char>(location[0]));
  if (has_scheme) return ParseUrl(location);
  std::string origin = text::Cat(base.scheme, "://", base.HostHeader());
  if (location.substr(0, 2) == "//") return ParseUrl(text::Cat(base.scheme, ":", location));
  std::string_view path_part = location.substr(0, location.find_first_of("?#"));
  std::string tail(location.substr(path_part.size()));
  std::string path;
  if (path_part.empty()) {
    // "?q" replaces the query; "#f" alone keeps the base's query.
    path = base.path;
    if (!tail.empty() && tail.front() == '#') tail = base.has_query ? "?" + base.query : "";
  } else if (path_part.front() == '/') {
    path = std::string(path_part);
  } else {
    size_t slash = base.path.rfind('/');
    path = text::Cat(base.path.substr(0, slash + 1), path_part);
  }
  return ParseUrl(text::Cat(origin, RemoveDotSegments(path), tail));
}

}  // namespace wsgate::text
