#include "dataplane/auth/jwt_hs256.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/text/base64.h"

namespace wsgate::dataplane::auth {

namespace {

// A JSON object parsed from bytes, or a discarded value (not JSON, or JSON but not an object).
nlohmann::json ParseObject(const std::string& bytes) {
  nlohmann::json j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return nlohmann::json(nlohmann::json::value_t::discarded);
  return j;
}

}  // namespace

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // An empty key is valid HMAC input, but OpenSSL wants a non-null pointer for it.
  static const unsigned char kEmpty = 0;
  const void* k = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
  if (HMAC(EVP_sha256(), k, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len) ==
      nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(mac), len);
}

JwtOutcome VerifyJwtHs256(std::string_view token, std::string_view secret,
                          std::string_view session_id, int64_t now, int64_t leeway) {
  size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return JwtOutcome::kMalformed;
  size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return JwtOutcome::kMalformed;
  }
  std::string_view header_b64 = token.substr(0, dot1);
  std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view signature_b64 = token.substr(dot2 + 1);
  if (header_b64.empty() || payload_b64.empty()) return JwtOutcome::kMalformed;

  std::string header_json;
  if (!text::Base64UrlDecode(header_b64, &header_json)) return JwtOutcome::kMalformed;
  nlohmann::json header = ParseObject(header_json);
  if (header.is_discarded()) return JwtOutcome::kMalformed;
  // The algorithm is fixed by the route, never chosen by the token: anything but HS256 ("none",
  // RS256 with the secret taken as a public key, ...) is refused before any verification.
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string() || alg->get_ref<const std::string&>() != "HS256") {
    return JwtOutcome::kWrongAlg;
  }
  // RFC 7515 4.1.11: extensions listed in "crit" must be understood; we understand none.
  if (header.contains("crit")) return JwtOutcome::kWrongAlg;

  std::string signature;
  if (!text::Base64UrlDecode(signature_b64, &signature)) return JwtOutcome::kMalformed;
  std::string expected = HmacSha256(secret, token.substr(0, dot2));
  if (expected.empty() || signature.size() != expected.size() ||
      CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0) {
    return JwtOutcome::kBadSignature;
  }

  std::string payload_json;
  if (!text::Base64UrlDecode(payload_b64, &payload_json)) return JwtOutcome::kMalformed;
  nlohmann::json claims = ParseObject(payload_json);
  if (claims.is_discarded()) return JwtOutcome::kMalformed;

  // NumericDate: seconds, possibly fractional (RFC 7519 2).
  auto numeric = [&](const char* name, double* out) {
    auto it = claims.find(name);
    if (it == claims.end()) return 0;
    if (!it->is_number() || !std::isfinite(it->get<double>())) return -1;
    *out = it->get<double>();
    return 1;
  };
  double exp = 0;
  double nbf = 0;
  int has_exp = numeric("exp", &exp);
  int has_nbf = numeric("nbf", &nbf);
  if (has_exp < 0 || has_nbf < 0) return JwtOutcome::kMalformed;
  if (has_exp > 0 && static_cast<double>(now) > exp + static_cast<double>(leeway)) {
    return JwtOutcome::kExpired;
  }
  if (has_nbf > 0 && static_cast<double>(now) + static_cast<double>(leeway) < nbf) {
    return JwtOutcome::kNotYetValid;
  }
  auto sid = claims.find("session_id");
  if (sid == claims.end() || !sid->is_string() ||
      sid->get_ref<const std::string&>() != session_id) {
    return JwtOutcome::kSessionMismatch;
  }
  return JwtOutcome::kOk;
}

int JwtHttpStatus(JwtOutcome outcome) {
  switch (outcome) {
    case JwtOutcome::kOk:
      return 0;
    case JwtOutcome::kMalformed:
      return 400;
    case JwtOutcome::kWrongAlg:
    case JwtOutcome::kBadSignature:
    case JwtOutcome::kExpired:
    case JwtOutcome::kNotYetValid:
      return 401;
    case JwtOutcome::kSessionMismatch:
      return 403;
  }
  return 401;
}

const char* JwtOutcomeReason(JwtOutcome outcome) {
  switch (outcome) {
    case JwtOutcome::kOk:
      return "";
    case JwtOutcome::kMalformed:
      return "malformed";
    case JwtOutcome::kWrongAlg:
      return "wrong_alg";
    case JwtOutcome::kBadSignature:
      return "bad_signature";
    case JwtOutcome::kExpired:
      return "expired";
    case JwtOutcome::kNotYetValid:
      return "not_yet_valid";
    case JwtOutcome::kSessionMismatch:
      return "session_mismatch";
  }
  return "unknown";
}

}  // namespace wsgate::dataplane::auth

