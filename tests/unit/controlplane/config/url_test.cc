#include "controlplane/config/url.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace wsgate::controlplane {
namespace {

using ::testing::HasSubstr;

dataplane::UpstreamUrl MustParse(const std::string& url) {
  auto u = ParseWsUrl(url);
  EXPECT_TRUE(u.ok()) << url << ": " << u.status();
  return u.ok() ? *u : dataplane::UpstreamUrl();
}

std::string ErrorOf(const std::string& url) {
  auto u = ParseWsUrl(url);
  EXPECT_FALSE(u.ok()) << url;
  return std::string(u.status().message());
}

TEST(ParseWsUrlTest, Parts) {
  auto u = MustParse("ws://127.0.0.1:9000/echo?x=1");
  EXPECT_EQ(u.url, "ws://127.0.0.1:9000/echo?x=1");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 9000);
  EXPECT_EQ(u.path_and_query, "/echo?x=1");
}

TEST(ParseWsUrlTest, Defaults) {
  auto u = MustParse("ws://backend.svc.cluster.local");
  EXPECT_EQ(u.host, "backend.svc.cluster.local");
  EXPECT_EQ(u.port, 80);
  EXPECT_EQ(u.path_and_query, "/");
  EXPECT_EQ(MustParse("ws://h?q=1").path_and_query, "/?q=1");
  EXPECT_EQ(MustParse("WS://h:1/").port, 1);
  EXPECT_EQ(MustParse("ws://h:65535").port, 65535);
}

TEST(ParseWsUrlTest, Secure) {
  auto u = MustParse("wss://backend.example/x");
  EXPECT_TRUE(u.secure);
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(MustParse("WSS://h:8443").port, 8443);
  EXPECT_FALSE(MustParse("ws://h").secure);
}

TEST(ParseWsUrlTest, Ipv6) {
  auto u = MustParse("ws://[::1]:8080/x");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 8080);
  EXPECT_EQ(u.path_and_query, "/x");
  EXPECT_THAT(ErrorOf("ws://[::1/x"), HasSubstr("closing ']'"));
  EXPECT_THAT(ErrorOf("ws://[zz]/x"), HasSubstr("not an IPv6 address"));
  EXPECT_THAT(ErrorOf("ws://[::1]x/"), HasSubstr("after the IPv6 address"));
}

TEST(ParseWsUrlTest, Refused) {
  EXPECT_THAT(ErrorOf(""), HasSubstr("must not be empty"));
  EXPECT_THAT(ErrorOf("http://h/"), HasSubstr("scheme must be ws:// or wss:// (got http://)"));
  EXPECT_THAT(ErrorOf("h:80/x"), HasSubstr("is not a ws:// URL"));
  EXPECT_THAT(ErrorOf("ws://h:0/"), HasSubstr("out of range"));
  EXPECT_THAT(ErrorOf("ws://h:99999/"), HasSubstr("out of range"));
  EXPECT_THAT(ErrorOf("ws://h:123456/"), HasSubstr("not a number"));
  EXPECT_THAT(ErrorOf("ws://h:/"), HasSubstr("not a number"));
  EXPECT_THAT(ErrorOf("ws://h:-1/"), HasSubstr("not a number"));
  EXPECT_THAT(ErrorOf("ws://:80/"), HasSubstr("host is missing"));
  EXPECT_THAT(ErrorOf("ws://u:p@h/"), HasSubstr("user info"));
  EXPECT_THAT(ErrorOf("ws://h/x#f"), HasSubstr("fragment"));
  EXPECT_THAT(ErrorOf("ws://h/a b"), HasSubstr("whitespace"));
  EXPECT_THAT(ErrorOf("ws://h\r\n/"), HasSubstr("whitespace"));
  EXPECT_THAT(ErrorOf("ws://h$x/"), HasSubstr("invalid character '$'"));
}

}  // namespace
}  // namespace wsgate::controlplane
