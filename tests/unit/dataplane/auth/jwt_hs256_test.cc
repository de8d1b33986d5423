#include "dataplane/auth/jwt_hs256.h"

#include "common/text/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace wsgate::dataplane::auth {
namespace {

constexpr int64_t kNow = 1'800'000'000;
constexpr char kSecret[] = "0123456789abcdef0123456789abcdef";

// Builds a compact JWS from raw header and claims text, signed with `secret`.
std::string Sign(const std::string& header, const std::string& claims,
                 const std::string& secret = kSecret) {
  std::string input = wsgate::text::Base64UrlEncode(header) + "." + wsgate::text::Base64UrlEncode(claims);
  return input + "." + wsgate::text::Base64UrlEncode(HmacSha256(secret, input));
}

const std::string kHs256 = R"({"alg":"HS256","typ":"JWT"})";

TEST(Base64Url, RoundTripsAndRefusesOtherAlphabets) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00\x01"}) {
    std::string back;
    ASSERT_TRUE(wsgate::text::Base64UrlDecode(wsgate::text::Base64UrlEncode(s), &back));
    EXPECT_EQ(back, s);
  }
  std::string out;
  EXPECT_EQ(wsgate::text::Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(wsgate::text::Base64UrlDecode("+/8", &out));     // standard base64 alphabet
  EXPECT_FALSE(wsgate::text::Base64UrlDecode("Zm9vYg==", &out));  // padding
  EXPECT_FALSE(wsgate::text::Base64UrlDecode("Zm9vY", &out));     // impossible length
  EXPECT_FALSE(wsgate::text::Base64UrlDecode("Zm 9v", &out));
}

TEST(HmacSha256, MatchesRfc4231TestCase2) {
  std::string mac = HmacSha256("Jefe", "what do ya want for nothing?");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : mac) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 15]);
  }
  EXPECT_EQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(JwtHs256, GoodTokenIsAccepted) {
  EXPECT_EQ(VerifyJwtHs256(Sign(kHs256, R"({"session_id":"S1"})"), kSecret, "S1", kNow),
            JwtOutcome::kOk);
  EXPECT_EQ(VerifyJwtHs256(Sign(kHs256, R"({"session_id":"S1","exp":1800000060,"nbf":1799999990})"),
                           kSecret, "S1", kNow),
            JwtOutcome::kOk);
}

TEST(JwtHs256, OtherSecretIsBadSignature) {
  std::string t = Sign(kHs256, R"({"session_id":"S1"})", "another secret");
  EXPECT_EQ(VerifyJwtHs256(t, kSecret, "S1", kNow), JwtOutcome::kBadSignature);
  EXPECT_EQ(JwtHttpStatus(JwtOutcome::kBadSignature), 401);
}

TEST(JwtHs256, TamperedClaimsAreBadSignature) {
  std::string good = Sign(kHs256, R"({"session_id":"S1"})");
  std::string other = Sign(kHs256, R"({"session_id":"S2"})");
  // S2's claims with S1's signature.
  std::string forged = other.substr(0, other.rfind('.')) + good.substr(good.rfind('.'));
  EXPECT_EQ(VerifyJwtHs256(forged, kSecret, "S2", kNow), JwtOutcome::kBadSignature);
  // A truncated signature.
  EXPECT_EQ(VerifyJwtHs256(good.substr(0, good.size() - 3), kSecret, "S1", kNow),
            JwtOutcome::kBadSignature);
}

TEST(JwtHs256, OtherAlgorithmsAreRefused) {
  // alg "none" with an empty signature: the classic bypass.
  std::string none = wsgate::text::Base64UrlEncode(R"({"alg":"none"})") + "." +
                     wsgate::text::Base64UrlEncode(R"({"session_id":"S1"})") + ".";
  EXPECT_EQ(VerifyJwtHs256(none, kSecret, "S1", kNow), JwtOutcome::kWrongAlg);
  // Correctly HMAC-signed, but the header names another algorithm.
  EXPECT_EQ(VerifyJwtHs256(Sign(R"({"alg":"HS512"})", R"({"session_id":"S1"})"), kSecret, "S1",
                           kNow),
            JwtOutcome::kWrongAlg);
  EXPECT_EQ(VerifyJwtHs256(Sign(R"({"alg":"RS256"})", R"({"session_id":"S1"})"), kSecret, "S1",
                           kNow),
            JwtOutcome::kWrongAlg);
  EXPECT_EQ(VerifyJwtHs256(Sign(R"({"typ":"JWT"})", R"({"session_id":"S1"})"), kSecret, "S1",
                           kNow),
            JwtOutcome::kWrongAlg);
  EXPECT_EQ(VerifyJwtHs256(Sign(R"({"alg":"hs256"})", R"({"session_id":"S1"})"), kSecret, "S1",
                           kNow),
            JwtOutcome::kWrongAlg);
  EXPECT_EQ(VerifyJwtHs256(Sign(R"({"alg":"HS256","crit":["b64"]})", R"({"session_id":"S1"})"),
                           kSecret, "S1", kNow),
            JwtOutcome::kWrongAlg);
  EXPECT_EQ(JwtHttpStatus(JwtOutcome::kWrongAlg), 401);
}

TEST(JwtHs256, ExpiryHonouredWithLeeway) {
  std::string just_expired = Sign(kHs256, R"({"session_id":"S1","exp":1799999980})");
  EXPECT_EQ(VerifyJwtHs256(just_expired, kSecret, "S1", kNow), JwtOutcome::kOk);  // 20 s < 30 s
  std::string expired = Sign(kHs256, R"({"session_id":"S1","exp":1799999960})");
  EXPECT_EQ(VerifyJwtHs256(expired, kSecret, "S1", kNow), JwtOutcome::kExpired);
  EXPECT_EQ(VerifyJwtHs256(just_expired, kSecret, "S1", kNow, 0), JwtOutcome::kExpired);
  EXPECT_EQ(JwtHttpStatus(JwtOutcome::kExpired), 401);
}

TEST(JwtHs256, NotBeforeHonouredWithLeeway) {
  std::string soon = Sign(kHs256, R"({"session_id":"S1","nbf":1800000020})");
  EXPECT_EQ(VerifyJwtHs256(soon, kSecret, "S1", kNow), JwtOutcome::kOk);
  std::string later = Sign(kHs256, R"({"session_id":"S1","nbf":1800000100})");
  EXPECT_EQ(VerifyJwtHs256(later, kSecret, "S1", kNow), JwtOutcome::kNotYetValid);
  EXPECT_EQ(JwtHttpStatus(JwtOutcome::kNotYetValid), 401);
}

TEST(JwtHs256, SessionMismatchIs403) {
  EXPECT_EQ(VerifyJwtHs256(Sign(kHs256, R"({"session_id":"S2"})"), kSecret, "S1", kNow),
            JwtOutcome::kSessionMismatch);
  EXPECT_EQ(VerifyJwtHs256(Sign(kHs256, R"({"sub":"S1"})"), kSecret, "S1", kNow),
            JwtOutcome::kSessionMismatch);
  EXPECT_EQ(VerifyJwtHs256(Sign(kHs256, R"({"session_id":1})"), kSecret, "1", kNow),
            JwtOutcome::kSessionMismatch);
  EXPECT_EQ(JwtHttpStatus(JwtOutcome::kSessionMismatch), 403);
  EXPECT_STREQ(JwtOutcomeReason(JwtOutcome::kSessionMismatch), "session_mismatch");
}

TEST(JwtHs256, MalformedSegmentsAre400) {
  std::string good = Sign(kHs256, R"({"session_id":"S1"})");
  for (const std::string& t :
       {std::string(""), std::string("abc"), std::string("a.b"), good + ".extra",
        "." + good.substr(good.find('.')), std::string("a$b.c.d"),
        good.substr(0, good.rfind('.') + 1) + "not*base64"}) {
    EXPECT_EQ(VerifyJwtHs256(t, kSecret, "S1", kNow), JwtOutcome::kMalformed) << t;
  }
  EXPECT_EQ(JwtHttpStatus(JwtOutcome::kMalformed), 400);
}

TEST(JwtHs256, NonJsonIs400) {
  // Header not JSON.
  EXPECT_EQ(VerifyJwtHs256(Sign("not json", R"({"session_id":"S1"})"), kSecret, "S1", kNow),
            JwtOutcome::kMalformed);
  // Signed claims that are not JSON, or JSON but not an object.
  EXPECT_EQ(VerifyJwtHs256(Sign(kHs256, "not json"), kSecret, "S1", kNow),
            JwtOutcome::kMalformed);
  EXPECT_EQ(VerifyJwtHs256(Sign(kHs256, R"(["S1"])"), kSecret, "S1", kNow),
            JwtOutcome::kMalformed);
  // exp that is not a number.
  EXPECT_EQ(VerifyJwtHs256(Sign(kHs256, R"({"session_id":"S1","exp":"soon"})"), kSecret, "S1",
                           kNow),
            JwtOutcome::kMalformed);
}

}  // namespace
}  // namespace wsgate::dataplane::auth
