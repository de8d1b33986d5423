// ParseRedisUrl and IsValidUtf8: pure functions.
#include "common/text/base64.h"
#include "common/text/utf8.h"
#include "dataplane/bus/redis_url.h"

#include <gtest/gtest.h>

#include <string>


namespace wsgate::dataplane::bus {
namespace {

TEST(ParseRedisUrlTest, SeedFormWithDefaults) {
  auto ep = ParseRedisUrl("redis://127.0.0.1:6379");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->host, "127.0.0.1");
  EXPECT_EQ(ep->port, 6379);
  EXPECT_EQ(ep->db, 0);
  EXPECT_EQ(ep->password, "");
  EXPECT_EQ(ep->username, "");

  ep = ParseRedisUrl("redis://redis.default.svc");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->host, "redis.default.svc");
  EXPECT_EQ(ep->port, 6379);

  ep = ParseRedisUrl("REDIS://localhost/");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->host, "localhost");
  EXPECT_EQ(ep->db, 0);
}

TEST(ParseRedisUrlTest, PasswordUserAndDb) {
  auto ep = ParseRedisUrl("redis://:s3cret@10.0.0.5:6380/3");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->host, "10.0.0.5");
  EXPECT_EQ(ep->port, 6380);
  EXPECT_EQ(ep->password, "s3cret");
  EXPECT_EQ(ep->username, "");
  EXPECT_EQ(ep->db, 3);

  ep = ParseRedisUrl("redis://app:p%40ss%2Fw0rd@host:1/15");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->username, "app");
  EXPECT_EQ(ep->password, "p@ss/w0rd");
  EXPECT_EQ(ep->port, 1);
  EXPECT_EQ(ep->db, 15);

  // An unencoded '@' in the password: the last '@' ends the credentials.
  ep = ParseRedisUrl("redis://:a@b@host:7000");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->password, "a@b");
  EXPECT_EQ(ep->host, "host");
}

TEST(ParseRedisUrlTest, Ipv6InBrackets) {
  auto ep = ParseRedisUrl("redis://[::1]:6390/1");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->host, "::1");
  EXPECT_EQ(ep->port, 6390);
  EXPECT_EQ(ep->db, 1);
  ep = ParseRedisUrl("redis://[::1]");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->port, 6379);
}

struct BadUrl {
  const char* url;
  const char* mentions;  // a word the error message must contain
};

class ParseRedisUrlBadTest : public ::testing::TestWithParam<BadUrl> {};

TEST_P(ParseRedisUrlBadTest, IsAClearError) {
  auto ep = ParseRedisUrl(GetParam().url);
  ASSERT_FALSE(ep.ok()) << GetParam().url << " parsed as host " << ep->host;
  EXPECT_EQ(ep.status().code(), absl::StatusCode::kInvalidArgument);
  std::string msg(ep.status().message());
  EXPECT_NE(msg.find("REDIS_URL"), std::string::npos) << msg;
  EXPECT_NE(msg.find(GetParam().mentions), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, ParseRedisUrlBadTest,
    ::testing::Values(
        BadUrl{"", "empty"}, BadUrl{"127.0.0.1:6379", "redis://"},
        BadUrl{"http://127.0.0.1:6379", "redis://"}, BadUrl{"rediss://host:6380", "TLS"},
        BadUrl{"unix:///tmp/r.sock", "redis://"}, BadUrl{"redis://", "host"},
        BadUrl{"redis://:6379", "host"}, BadUrl{"redis://host:", "port"},
        BadUrl{"redis://host:0", "port"}, BadUrl{"redis://host:65536", "port"},
        BadUrl{"redis://host:12ab", "port"}, BadUrl{"redis://host:-1", "port"},
        BadUrl{"redis://host:99999999999999999999", "port"}, BadUrl{"redis://host/abc", "database"},
        BadUrl{"redis://host/-1", "database"}, BadUrl{"redis://host/1/2", "database"},
        BadUrl{"redis://host?db=1", "query"}, BadUrl{"redis://ho st:1", "whitespace"},
        BadUrl{"redis://host:1\n", "control"}, BadUrl{"redis://secret@host", "':'"},
        BadUrl{"redis://user:@host", "password"}, BadUrl{"redis://:pa%zzss@host", "escape"},
        BadUrl{"redis://:pass%4@host", "escape"}, BadUrl{"redis://[::1:6379", "']'"},
        BadUrl{"redis://[::1]x", "IPv6"}, BadUrl{"redis://ho/st!:1", "database"},
        BadUrl{"redis://h!st:1", "host"}));

TEST(Utf8Test, AcceptsValidText) {
  EXPECT_TRUE(wsgate::text::IsValidUtf8(""));
  EXPECT_TRUE(wsgate::text::IsValidUtf8("plain ascii"));
  EXPECT_TRUE(wsgate::text::IsValidUtf8(std::string("nul\0inside", 10)));  // U+0000 is valid UTF-8
  EXPECT_TRUE(wsgate::text::IsValidUtf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_TRUE(wsgate::text::IsValidUtf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
}

TEST(Utf8Test, RejectsInvalidSequences) {
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xff"));
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\x80"));                  // lone continuation
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xc3"));                  // truncated
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xe2\x82"));              // truncated
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xc0\xaf"));              // overlong '/'
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xe0\x80\xaf"));          // overlong
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xed\xa0\x80"));          // surrogate U+D800
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xf4\x90\x80\x80"));      // above U+10FFFF
  EXPECT_FALSE(wsgate::text::IsValidUtf8("ok\xc3(bad"));            // bad continuation
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xf8\x88\x80\x80\x80"));  // 5-byte form
}

}  // namespace
}  // namespace wsgate::dataplane::bus
