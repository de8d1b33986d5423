// Where a pubsub route's auth token may come from. Browsers cannot set an
// Authorization header on a WebSocket, so a route may also accept the token
//  - as a query parameter (`?access_token=T`, name configurable), or
//  - as a subprotocol, the way Kubernetes does it: the client offers
//    ["wsgate.bearer", "wsgate.bearer.<T>"]; the server selects "wsgate.bearer" (never the
//    offer that carries the secret), which browsers require (they fail a connection whose
//    server selects none of the offered subprotocols). T must be made of RFC 9110 token
//    characters, which a JWT (base64url and '.') always is.
// A pure function over the request head's parts: trivially testable, logs nothing.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace wsgate::dataplane::auth {

inline constexpr std::string_view kBearerSubprotocol = "wsgate.bearer";
inline constexpr std::string_view kBearerSubprotocolPrefix = "wsgate.bearer.";

struct TokenSourceOptions {
  std::string query_param;   // empty: the query string is not looked at
  bool subprotocol = false;  // accept "wsgate.bearer.<T>"
};

struct FoundToken {
  enum class Source { kNone, kHeader, kQuery, kSubprotocol };
  Source source = Source::kNone;
  std::string token;  // set when ok
  // kNone with an empty error: no token anywhere (400 "missing"). A non-empty error: a token
  // was offered but is malformed (400, the error says how, without the token).
  std::string error;
  bool ok() const { return source != Source::kNone && error.empty(); }
};

// Looks in order at the Authorization header (when `has_authorization`), then the subprotocol
// offers, then the query string of `target`; the first place that has a token decides (a
// malformed Authorization header is not rescued by a query parameter).
FoundToken FindToken(bool has_authorization, std::string_view authorization,
                     std::string_view target, const std::vector<std::string>& subprotocols,
                     const TokenSourceOptions& options);

// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 6750's
// token68 characters); empty when anything else.
std::string BearerToken(std::string_view header);

// The form-decoded value of query parameter `name` in `target` ("/p?a=1&b=2"); the first one
// when repeated. kBroken: present, but its percent-encoding is not (value left empty).
enum class QueryLookup { kAbsent, kFound, kBroken };
QueryLookup QueryParam(std::string_view target, std::string_view name, std::string* value);

}  // namespace wsgate::dataplane::auth
