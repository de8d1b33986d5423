// Verification of a JSON Web Token signed with HMAC-SHA256 (RFC 7519 / RFC 7515, JWS compact
// serialisation), for the pubsub kind's `jwt_hs256` auth mode. A pure function: no clock, no
// I/O (the caller passes "now"), so every outcome is unit-testable.
//
// What is accepted: exactly three base64url segments (no padding); a header that is a JSON
// object with "alg": "HS256" and no "crit"; a signature equal (constant-time compare) to
// HMAC-SHA256(secret, header "." payload); then a payload that is a JSON object whose
// "session_id" is a string equal to the expected one, "exp" (when present, a number) not older
// than now - leeway and "nbf" (when present, a number) not later than now + leeway. The
// signature is checked before the claims are parsed: unsigned JSON is never interpreted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace wsgate::dataplane::auth {

enum class JwtOutcome {
  kOk,
  kMalformed,        // not three base64url segments, header or claims not a JSON object,
                     // exp/nbf not numbers -> HTTP 400
  kWrongAlg,         // alg other than HS256 ("none" included) or a "crit" header -> 401
  kBadSignature,     // -> 401
  kExpired,          // exp + leeway < now -> 401
  kNotYetValid,      // nbf - leeway > now -> 401
  kSessionMismatch,  // session_id claim absent, not a string, or another session -> 403
};

// Clock skew tolerated on exp and nbf.
constexpr int64_t kJwtLeewaySeconds = 30;

JwtOutcome VerifyJwtHs256(std::string_view token, std::string_view secret,
                          std::string_view session_id, int64_t now_unix_seconds,
                          int64_t leeway_seconds = kJwtLeewaySeconds);

// The HTTP status of the handshake for an outcome (0 for kOk).
int JwtHttpStatus(JwtOutcome outcome);
// The reason label of wsgate_auth_failures_total ("malformed", "wrong_alg", "bad_signature",
// "expired", "not_yet_valid", "session_mismatch"; "" for kOk).
const char* JwtOutcomeReason(JwtOutcome outcome);

// Helpers, exposed for tests and for building tokens in tests.
// HMAC-SHA256(key, data): 32 raw bytes.
std::string HmacSha256(std::string_view key, std::string_view data);

}  // namespace wsgate::dataplane::auth
