// RedactSecrets: every kind of secret a log line may carry is replaced, and lines without one
// come out unchanged.
#include "common/text/redact.h"

#include <gtest/gtest.h>

#include <string>

namespace wsgate::text {
namespace {

constexpr char kJwt[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzZXNzaW9uX2lkIjoiczEifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

TEST(RedactSecrets, LeavesOrdinaryLinesAlone) {
  for (const std::string line :
       {"route echo created (path /echo, config version 3)",
        "external_client ext: client c1 connected",
        R"({"type":"connect_external","url":"ws://127.0.0.1:9/x?room=5","headers":{"X-Trace":"abc"}})",
        R"(audit {"role":"admin","token_id":"ops-1","method":"wsgate.v1.RouteService/PutRoute"})",
        "basically fine; the bearer of bad news", "3 bearer tokens from /run/tokens", "key: value", ""}) {
    EXPECT_EQ(RedactSecrets(line), line);
  }
}

TEST(RedactSecrets, JsonHeaderValues) {
  EXPECT_EQ(RedactSecrets(R"({"headers":{"Authorization":"Bearer abc.def","Cookie":"sid=1; b=2",)"
                          R"("X-Api-Token":"t0k","set-cookie":["a=1","b=2"],"Accept":"*/*"}})"),
            R"({"headers":{"Authorization":"<redacted>","Cookie":"<redacted>",)"
            R"("X-Api-Token":"<redacted>","set-cookie":"<redacted>","Accept":"*/*"}})");
  // A name spelled with escapes is still the name the parser will see.
  EXPECT_EQ(RedactSecrets(R"({"Auth\u006frization" : "x\"y"})"),
            R"({"Auth\u006frization" : "<redacted>"})");
  EXPECT_EQ(RedactSecrets(R"({"Proxy-Authorization":"Basic dXNlcjpwYXNz"})"),
            R"({"Proxy-Authorization":"<redacted>"})");
  EXPECT_EQ(RedactSecrets(R"({"client_secret":"s3cr3t","session_id":"s1"})"),
            R"({"client_secret":"<redacted>","session_id":"s1"})");
}

TEST(RedactSecrets, JwtsAnywhere) {
  EXPECT_EQ(RedactSecrets(std::string("token was ") + kJwt + " (expired)"),
            "token was <redacted> (expired)");
  EXPECT_EQ(RedactSecrets(std::string("[\"wsgate.jwt.") + kJwt + "\"]"),
            "[\"wsgate.jwt.<redacted>\"]");
}

TEST(RedactSecrets, BearerAndBasicCredentials) {
  EXPECT_EQ(RedactSecrets("authorization: Bearer s3cr3t-t0ken was refused"),
            "authorization: <redacted>");
  EXPECT_EQ(RedactSecrets("got Bearer s3cr3t-t0ken"), "got Bearer <redacted>");
  EXPECT_EQ(RedactSecrets("subprotocols wsgate.bearer, wsgate.bearer.0ne-time"),
            "subprotocols wsgate.bearer, wsgate.bearer.<redacted>");
  EXPECT_EQ(RedactSecrets("Basic dXNlcjpwYXNz"), "Basic <redacted>");
}

TEST(RedactSecrets, QueryParameters) {
  EXPECT_EQ(RedactSecrets("GET /a/ws/s1?access_token=abc123&x=1 -> 401"),
            "GET /a/ws/s1?access_token=<redacted>&x=1 -> 401");
  EXPECT_EQ(RedactSecrets(R"({"url":"ws://h/p?room=1&api_key=k3y#f"})"),
            R"({"url":"ws://h/p?room=1&api_key=<redacted>#f"})");
  EXPECT_EQ(RedactSecrets("/x?token=t&sig=s"), "/x?token=<redacted>&sig=<redacted>");
}

TEST(RedactSecrets, HeaderLines) {
  EXPECT_EQ(RedactSecrets("GET / HTTP/1.1\r\nCookie: sid=1; theme=dark\r\nHost: a\r\n"),
            "GET / HTTP/1.1\r\nCookie: <redacted>\r\nHost: a\r\n");
  // The same lines inside a JSON string (an upstream echoing its request headers).
  EXPECT_EQ(RedactSecrets(R"({"content":"cookie: sid=1\nx-api-token: t\nhost: a"})"),
            R"({"content":"cookie: <redacted>\nx-api-token: <redacted>\nhost: a"})");
}

TEST(RedactSecrets, UnterminatedInputsDoNotOverrun) {
  EXPECT_EQ(RedactSecrets(R"({"Authorization":"abc)"), R"({"Authorization":"<redacted>")");
  EXPECT_EQ(RedactSecrets(R"({"Cookie":["a)"), R"({"Cookie":"<redacted>")");
  EXPECT_EQ(RedactSecrets("\"abc"), "\"abc");
  EXPECT_EQ(RedactSecrets("?token="), "?token=<redacted>");
}

TEST(IsSecretName, Names) {
  for (const char* n : {"Authorization", "COOKIE", "Set-Cookie", "proxy-authorization",
                        "X-Auth-Token", "x-secret", "password", "X-API-Key"}) {
    EXPECT_TRUE(IsSecretName(n)) << n;
  }
  for (const char* n : {"Accept", "token_id", "jwt_secret_env", "token_query_param",
                        "token_subprotocol", "session_id", "Sec-WebSocket-Key"}) {
    EXPECT_FALSE(IsSecretName(n)) << n;
  }
}

}  // namespace
}  // namespace wsgate::text
