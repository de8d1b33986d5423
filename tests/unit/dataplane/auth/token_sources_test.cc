#include "dataplane/auth/token_sources.h"

#include <gtest/gtest.h>

namespace wsgate::dataplane::auth {
namespace {

using Source = FoundToken::Source;

TEST(BearerToken, ParsesTheHeader) {
  EXPECT_EQ(BearerToken("Bearer abc.DEF-_~+/="), "abc.DEF-_~+/=");
  EXPECT_EQ(BearerToken("bearer  tok "), "tok");
  EXPECT_EQ(BearerToken("Basic abc"), "");
  EXPECT_EQ(BearerToken("Bearer "), "");
  EXPECT_EQ(BearerToken("Bearer a b"), "");
}

TEST(QueryParam, FindsAndDecodes) {
  std::string v;
  EXPECT_EQ(QueryParam("/a/ws/S?x=1&access_token=ab%2Bc", "access_token", &v),
            QueryLookup::kFound);
  EXPECT_EQ(v, "ab+c");
  EXPECT_EQ(QueryParam("/a/ws/S?access_token=a+b", "access_token", &v), QueryLookup::kFound);
  EXPECT_EQ(v, "a b");
  EXPECT_EQ(QueryParam("/a/ws/S", "access_token", &v), QueryLookup::kAbsent);
  EXPECT_EQ(QueryParam("/a/ws/S?xaccess_token=1", "access_token", &v), QueryLookup::kAbsent);
  EXPECT_EQ(QueryParam("/a/ws/S?access_token=%zz", "access_token", &v), QueryLookup::kBroken);
  EXPECT_EQ(v, "");
  EXPECT_EQ(QueryParam("/a/ws/S?access_token=%2", "access_token", &v), QueryLookup::kBroken);
}

TEST(FindToken, HeaderFirst) {
  TokenSourceOptions o{"access_token", true};
  FoundToken f = FindToken(true, "Bearer h", "/p?access_token=q", {"wsgate.bearer", "wsgate.bearer.s"}, o);
  EXPECT_TRUE(f.ok());
  EXPECT_EQ(f.source, Source::kHeader);
  EXPECT_EQ(f.token, "h");
  // A malformed header is not rescued by another source.
  f = FindToken(true, "Basic h", "/p?access_token=q", {}, o);
  EXPECT_FALSE(f.ok());
  EXPECT_EQ(f.source, Source::kHeader);
  EXPECT_FALSE(f.error.empty());
}

TEST(FindToken, Subprotocol) {
  TokenSourceOptions o{"", true};
  FoundToken f = FindToken(false, "", "/p", {"chat", "wsgate.bearer", "wsgate.bearer.a.b.c"}, o);
  EXPECT_TRUE(f.ok());
  EXPECT_EQ(f.source, Source::kSubprotocol);
  EXPECT_EQ(f.token, "a.b.c");
  // Without the plain "wsgate.bearer" offer the server could not select a safe subprotocol.
  f = FindToken(false, "", "/p", {"wsgate.bearer.a.b.c"}, o);
  EXPECT_EQ(f.source, Source::kSubprotocol);
  EXPECT_FALSE(f.ok());
  f = FindToken(false, "", "/p", {"wsgate.bearer", "wsgate.bearer."}, o);
  EXPECT_FALSE(f.ok());
  // Not enabled on the route: ignored (missing).
  f = FindToken(false, "", "/p", {"wsgate.bearer", "wsgate.bearer.x"}, TokenSourceOptions{});
  EXPECT_EQ(f.source, Source::kNone);
  EXPECT_TRUE(f.error.empty());
}

TEST(FindToken, QueryParameter) {
  TokenSourceOptions o{"access_token", false};
  FoundToken f = FindToken(false, "", "/p?access_token=abc.def", {}, o);
  EXPECT_TRUE(f.ok());
  EXPECT_EQ(f.source, Source::kQuery);
  EXPECT_EQ(f.token, "abc.def");
  f = FindToken(false, "", "/p?access_token=", {}, o);
  EXPECT_FALSE(f.ok());
  EXPECT_EQ(f.source, Source::kQuery);
  f = FindToken(false, "", "/p?access_token=%zz", {}, o);
  EXPECT_FALSE(f.ok());
  EXPECT_EQ(f.source, Source::kQuery);
  f = FindToken(false, "", "/p?other=abc", {}, o);
  EXPECT_EQ(f.source, Source::kNone);
  // Not enabled on the route: ignored.
  f = FindToken(false, "", "/p?access_token=abc", {}, TokenSourceOptions{});
  EXPECT_EQ(f.source, Source::kNone);
}

}  // namespace
}  // namespace wsgate::dataplane::auth
