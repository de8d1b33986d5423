// JWT HS256 verification (dataplane/auth/jwt_hs256.h), two ways:
// - the input as a token: any outcome, never a crash; kOk only for a token whose signature is
//   the HMAC of its first two segments under the secret.
// - the input as the claims of a token signed with the right key and an HS256 header: the
//   signature and algorithm are then right, so the outcome is never kBadSignature or kWrongAlg.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/text/base64.h"
#include "dataplane/auth/jwt_hs256.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace auth = wsgate::dataplane::auth;
using wsgate::text::Base64UrlEncode;

constexpr std::string_view kSecret = "fuzz-secret-0123456789abcdef";
constexpr std::string_view kSession = "sess-1";
constexpr int64_t kNow = 1'700'000'000;

void CheckOutcome(auth::JwtOutcome outcome) {
  const int status = auth::JwtHttpStatus(outcome);
  FUZZ_CHECK(outcome == auth::JwtOutcome::kOk ? status == 0
                                             : (status == 400 || status == 401 || status == 403));
  FUZZ_CHECK(auth::JwtOutcomeReason(outcome) != nullptr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const auth::JwtOutcome as_token = auth::VerifyJwtHs256(input, kSecret, kSession, kNow);
  CheckOutcome(as_token);
  if (as_token == auth::JwtOutcome::kOk) {
    const size_t last_dot = input.rfind('.');
    FUZZ_CHECK(last_dot != std::string_view::npos);
    FUZZ_CHECK(input.substr(last_dot + 1) ==
               Base64UrlEncode(auth::HmacSha256(kSecret, input.substr(0, last_dot))));
  }
  CheckOutcome(auth::VerifyJwtHs256(input, "", "", 0, 0));

  const std::string signing_input = Base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                                    Base64UrlEncode(input);
  const std::string token =
      signing_input + "." + Base64UrlEncode(auth::HmacSha256(kSecret, signing_input));
  const auth::JwtOutcome signed_claims = auth::VerifyJwtHs256(token, kSecret, kSession, kNow);
  CheckOutcome(signed_claims);
  FUZZ_CHECK(signed_claims != auth::JwtOutcome::kBadSignature);
  FUZZ_CHECK(signed_claims != auth::JwtOutcome::kWrongAlg);
  // The same token under another secret never verifies.
  const auth::JwtOutcome other = auth::VerifyJwtHs256(token, "another secret", kSession, kNow);
  FUZZ_CHECK(other != auth::JwtOutcome::kOk);
  return 0;
}
