// Secrets out of log lines. Every line the process logs passes through RedactSecrets (the log
// sink does it, common/log.cc), so a token, a credential header or a JWT never reaches a log at
// any level, whatever the component logs: a client's connect_external command with its headers,
// an HTTP bridge answer with Set-Cookie, a URL with ?access_token=.
//
// What is replaced by kRedacted:
// - the value of a JSON member whose (unescaped) name is a secret name (IsSecretName): a string
//   value's content, or a whole array value;
// - the value of a "Name: value" header line with a secret name (to the end of the line);
// - the credentials after "Bearer" / "Basic" (a space or a '.' between: the pubsub token
//   subprotocol is "wsgate.bearer.TOKEN");
// - anything that looks like a JWT (eyJ... with two dots: base64url of '{"');
// - the value of a query parameter whose name holds token, secret, password, key, auth, sig or
//   credential (?access_token=..., &api_key=...).
// Over-redacting is the safe side: a configuration field that merely names a secret (its
// variable or file) may be redacted too. Linear in the input.
#pragma once

#include <string>
#include <string_view>

namespace wsgate::text {

inline constexpr std::string_view kRedacted = "<redacted>";

// Authorization, Proxy-Authorization, Cookie, Set-Cookie, and any name holding "token",
// "secret", "password" or "api-key"/"api_key"/"apikey" (ASCII case-insensitive), except
// identifiers and options about one: names ending in "_id", "-id", "_param", "_env", "_file",
// "_subprotocol".
bool IsSecretName(std::string_view name);

// `in` with the secrets above replaced; `in` unchanged when it holds none.
std::string RedactSecrets(std::string_view in);

}  // namespace wsgate::text
