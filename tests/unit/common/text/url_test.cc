#include "common/text/url.h"

#include <gtest/gtest.h>

namespace wsgate::text {
namespace {

TEST(ParseUrl, SplitsAndNormalises) {
  auto u = ParseUrl("HTTPS://Api.Example.COM./v1/items?x=1#frag");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "api.example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_FALSE(u->explicit_port);
  EXPECT_EQ(u->path, "/v1/items");
  EXPECT_EQ(u->query, "x=1");
  EXPECT_EQ(u->Target(), "/v1/items?x=1");
  EXPECT_EQ(u->HostHeader(), "api.example.com");
  EXPECT_EQ(u->ToString(), "https://api.example.com/v1/items?x=1");
}

TEST(ParseUrl, PortsAndIpv6) {
  auto u = ParseUrl("http://[0:0::1]:8080");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_TRUE(u->host_is_ipv6);
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->path, "/");
  EXPECT_EQ(u->HostHeader(), "[::1]:8080");
  EXPECT_EQ(ParseUrl("ws://h:80/")->HostHeader(), "h");
  EXPECT_EQ(ParseUrl("wss://h")->port, 443);
}

TEST(ParseUrl, EncodesSpacesAndNonAscii) {
  auto u = ParseUrl("http://h/a b/\xc3\xa9?q=a b");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->Target(), "/a%20b/%C3%A9?q=a%20b");
}

TEST(ParseUrl, RejectsAmbiguousOrBroken) {
  for (const char* bad : {"",
                          "example.com/x",
                          "ftp://h/",
                          "file:///etc/passwd",
                          "http://",
                          "http:///x",
                          "http://user:pw@h/",
                          "http://allowed.example@evil.example/",
                          "http://h:0/",
                          "http://h:65536/",
                          "http://h:/",
                          "http://h:8o/",
                          "http://h\\@evil/",
                          "http://h%2e/",
                          "http://h\r\n/",
                          "http://a..b/",
                          "http://.a/",
                          "http://[::1/",
                          "http://[zz::1]/",
                          "http://[::1]x/",
                          "http://h/\x01",
                          "http://h/a\\..\\b",
                          "http://xn--h\xc3\xa9/"}) {
    EXPECT_FALSE(ParseUrl(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseUrl(std::string("http://h/") + std::string(9000, 'a')).ok());
}

TEST(ResolveReference, AllForms) {
  auto base = *ParseUrl("https://a.example/x/y/z?q=1");
  EXPECT_EQ(ResolveReference(base, "http://b.example/p")->ToString(), "http://b.example/p");
  EXPECT_EQ(ResolveReference(base, "//c.example/p")->ToString(), "https://c.example/p");
  EXPECT_EQ(ResolveReference(base, "/root?r=2")->ToString(), "https://a.example/root?r=2");
  EXPECT_EQ(ResolveReference(base, "w")->ToString(), "https://a.example/x/y/w");
  EXPECT_EQ(ResolveReference(base, "../w")->ToString(), "https://a.example/x/w");
  EXPECT_EQ(ResolveReference(base, "../../../../w")->ToString(), "https://a.example/w");
  EXPECT_EQ(ResolveReference(base, "?n=3")->ToString(), "https://a.example/x/y/z?n=3");
  EXPECT_EQ(ResolveReference(base, "#f")->ToString(), "https://a.example/x/y/z?q=1");
  EXPECT_FALSE(ResolveReference(base, "").ok());
  EXPECT_FALSE(ResolveReference(base, "gopher://x/").ok());
}

}  // namespace
}  // namespace wsgate::text
