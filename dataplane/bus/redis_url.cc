#include "dataplane/bus/redis_url.h"

#include <charconv>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace wsgate::dataplane::bus {
namespace {

// Debian's Abseil is built with its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0).
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(std::string_view in, std::string_view what) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("REDIS_URL: truncated %-escape in the ", AV(what)));
    }
    int hi = HexValue(in[i + 1]);
    int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(absl::StrCat("REDIS_URL: bad %-escape in the ", AV(what)));
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

bool ParseDecimal(std::string_view s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v > max) return false;
  *out = v;
  return true;
}

}  // namespace

absl::StatusOr<RedisEndpoint> ParseRedisUrl(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (url.empty()) return absl::InvalidArgumentError("REDIS_URL: empty");
  if (url.size() > 4096) return absl::InvalidArgumentError("REDIS_URL: longer than 4096 bytes");
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("REDIS_URL: contains whitespace or a control character");
    }
  }
  if (absl::StartsWithIgnoreCase(AV(url), "rediss://")) {
    return absl::InvalidArgumentError("REDIS_URL: rediss:// (TLS) is not supported");
  }
  if (!absl::StartsWithIgnoreCase(AV(url), AV(kScheme))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "REDIS_URL: must start with redis:// (form redis://[:password@]host:port[/db]),"
        " got \"",
        AV(url.substr(0, 32)), "\""));
  }
  std::string_view rest = url.substr(kScheme.size());
  RedisEndpoint ep;

  // Path: "/db" (an empty path or a lone "/" means db 0). Query strings are not supported.
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return absl::InvalidArgumentError("REDIS_URL: query strings and fragments are not supported");
  }
  std::string_view path;
  // The authority ends at the first '/' after the last '@' (a password may contain '/' only
  // percent-encoded, like any URL, but be lenient and split at the last '@' first).
  size_t at = rest.rfind('@');
  size_t slash = rest.find('/', at == std::string_view::npos ? 0 : at + 1);
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) path = rest.substr(slash + 1);
  if (!path.empty()) {
    uint64_t db = 0;
    if (!ParseDecimal(path, 1u << 20, &db)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "REDIS_URL: the database after '/' must be a number, got \"", AV(path), "\""));
    }
    ep.db = static_cast<int>(db);
  }

  // Userinfo.
  std::string_view hostport = authority;
  if (at != std::string_view::npos && at < authority.size()) {
    std::string_view userinfo = authority.substr(0, at);
    hostport = authority.substr(at + 1);
    size_t colon = userinfo.find(':');
    std::string_view user = userinfo.substr(0, colon);
    std::string_view pass =
        colon == std::string_view::npos ? std::string_view() : userinfo.substr(colon + 1);
    if (colon == std::string_view::npos) {
      // "redis://secret@host": redis-rs reads this as a username with no password, which is of
      // no use for AUTH; refuse it rather than guess.
      return absl::InvalidArgumentError(
          "REDIS_URL: credentials need a ':' (redis://:password@host or "
          "redis://user:password@host)");
    }
    auto u = PercentDecode(user, "username");
    if (!u.ok()) return u.status();
    auto p = PercentDecode(pass, "password");
    if (!p.ok()) return p.status();
    ep.username = *std::move(u);
    ep.password = *std::move(p);
    if (ep.password.empty() && !ep.username.empty()) {
      return absl::InvalidArgumentError("REDIS_URL: a username needs a password");
    }
  }

  // Host and port.
  std::string_view host;
  std::string_view port;
  if (!hostport.empty() && hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError("REDIS_URL: '[' without ']' in the host");
    }
    host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return absl::InvalidArgumentError("REDIS_URL: junk after the IPv6 address");
      }
      port = after.substr(1);
      if (port.empty()) return absl::InvalidArgumentError("REDIS_URL: empty port");
    }
  } else {
    size_t colon = hostport.find(':');
    host = hostport.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = hostport.substr(colon + 1);
      if (port.empty()) return absl::InvalidArgumentError("REDIS_URL: empty port");
    }
  }
  if (host.empty()) return absl::InvalidArgumentError("REDIS_URL: missing host");
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' &&
        c != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("REDIS_URL: invalid character '", std::string(1, c), "' in the host"));
    }
  }
  if (!port.empty()) {
    uint64_t p = 0;
    if (!ParseDecimal(port, 65535, &p) || p == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("REDIS_URL: the port must be a number in 1-65535, got \"", AV(port), "\""));
    }
    ep.port = static_cast<uint16_t>(p);
  }
  ep.host = std::string(host);
  return ep;
}

}  // namespace wsgate::dataplane::bus
