#include "dataplane/outbound/target_policy.h"

#include <gtest/gtest.h>

namespace wsgate::dataplane::outbound {
namespace {

using boost::asio::ip::make_address;

TargetPolicy Policy(std::vector<std::string> targets, std::vector<std::string> ranges = {}) {
  auto p = TargetPolicy::Create(targets, ranges);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : TargetPolicy();
}

TEST(TargetRule, Parses) {
  auto r = ParseTargetRule("HTTPS://API.example.com/v1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->scheme, "https");
  EXPECT_EQ(r->host_pattern, "api.example.com");
  EXPECT_EQ(r->port, 443);
  EXPECT_EQ(r->path_prefix, "/v1");
  EXPECT_EQ(ParseTargetRule("http://*.example.com")->host_pattern, "*.example.com");
  EXPECT_FALSE(ParseTargetRule("http://localhost:*")->port.has_value());
  EXPECT_EQ(ParseTargetRule("http://[::1]:8080/")->host_pattern, "::1");
  EXPECT_EQ(ParseTargetRule("http://[::1]:8080/")->path_prefix, "");
  for (const char* bad : {"example.com", "ftp://h", "http://", "http://h:99999", "http://a@h",
                          "http://h/?q", "http://h/a/../b", "http://*.[::1]", "http://*."}) {
    EXPECT_FALSE(ParseTargetRule(bad).ok()) << bad;
  }
  EXPECT_FALSE(TargetPolicy::Create({"http://h"}, {"everything"}).ok());
}

TEST(TargetPolicy, EmptyAllowsNothing) {
  EXPECT_EQ(TargetPolicy().Check("https://example.com/"), RefusalReason::kScheme);
}

TEST(TargetPolicy, SchemeHostPortPatterns) {
  auto p = Policy({"https://api.example.com", "https://*.cdn.example.net", "http://h:*"});
  EXPECT_EQ(p.Check("https://api.example.com/anything?x=1"), std::nullopt);
  EXPECT_EQ(p.Check("https://API.EXAMPLE.COM./x"), std::nullopt);
  EXPECT_EQ(p.Check("http://api.example.com/"), RefusalReason::kHost);  // http rule is for h
  EXPECT_EQ(p.Check("ws://api.example.com/"), RefusalReason::kScheme);
  EXPECT_EQ(p.Check("https://api.example.com:8443/"), RefusalReason::kHost);  // port 443 only
  EXPECT_EQ(p.Check("https://evil.com/"), RefusalReason::kHost);
  EXPECT_EQ(p.Check("https://api.example.com.evil.com/"), RefusalReason::kHost);
  EXPECT_EQ(p.Check("https://a.cdn.example.net/"), std::nullopt);
  EXPECT_EQ(p.Check("https://a.b.cdn.example.net/"), std::nullopt);
  EXPECT_EQ(p.Check("https://cdn.example.net/"), RefusalReason::kHost);
  EXPECT_EQ(p.Check("https://xcdn.example.net/"), RefusalReason::kHost);
  EXPECT_EQ(p.Check("http://h:1/"), std::nullopt);
  EXPECT_EQ(p.Check("http://h:65535/"), std::nullopt);
  EXPECT_EQ(p.Check("http://user@h/"), RefusalReason::kBadUrl);
  EXPECT_EQ(p.Check("not a url"), RefusalReason::kBadUrl);
}

TEST(TargetPolicy, PathPrefix) {
  auto p = Policy({"https://api.example.com/v1", "https://api.example.com/pub/"});
  EXPECT_EQ(p.Check("https://api.example.com/v1"), std::nullopt);
  EXPECT_EQ(p.Check("https://api.example.com/v1/users?x=1"), std::nullopt);
  EXPECT_EQ(p.Check("https://api.example.com/v1?x=1"), std::nullopt);
  EXPECT_EQ(p.Check("https://api.example.com/v1beta"), RefusalReason::kPath);
  EXPECT_EQ(p.Check("https://api.example.com/"), RefusalReason::kPath);
  EXPECT_EQ(p.Check("https://api.example.com/pub/x"), std::nullopt);
  EXPECT_EQ(p.Check("https://api.example.com/pub"), RefusalReason::kPath);
  // Ways out of the prefix once a server normalises the path.
  EXPECT_EQ(p.Check("https://api.example.com/v1/../admin"), RefusalReason::kPath);
  EXPECT_EQ(p.Check("https://api.example.com/v1/%2e%2E/admin"), RefusalReason::kPath);
  EXPECT_EQ(p.Check("https://api.example.com/v1/./x"), RefusalReason::kPath);
  EXPECT_EQ(p.Check("https://api.example.com/v1%2f..%2fadmin"), RefusalReason::kPath);
  EXPECT_EQ(p.Check("https://api.example.com/v1/..%5cadmin"), RefusalReason::kPath);
}

TEST(ClassifyAddress, EveryRefusedRange) {
  struct Case {
    const char* addr;
    std::optional<RefusalReason> want;
  };
  const Case cases[] = {
      {"93.184.216.34", std::nullopt},
      {"8.8.8.8", std::nullopt},
      {"2606:2800:220:1:248:1893:25c8:1946", std::nullopt},
      {"127.0.0.1", RefusalReason::kLoopback},
      {"127.255.0.9", RefusalReason::kLoopback},
      {"::1", RefusalReason::kLoopback},
      {"10.0.0.1", RefusalReason::kPrivate},
      {"172.16.0.1", RefusalReason::kPrivate},
      {"172.31.255.255", RefusalReason::kPrivate},
      {"172.32.0.1", std::nullopt},
      {"172.15.255.255", std::nullopt},
      {"192.168.1.1", RefusalReason::kPrivate},
      {"100.64.0.1", RefusalReason::kPrivate},
      {"fc00::1", RefusalReason::kPrivate},
      {"fdff:ffff::1", RefusalReason::kPrivate},
      {"169.254.169.254", RefusalReason::kLinkLocal},
      {"169.254.0.1", RefusalReason::kLinkLocal},
      {"fe80::1", RefusalReason::kLinkLocal},
      {"febf::1", RefusalReason::kLinkLocal},
      {"0.0.0.0", RefusalReason::kUnspecified},
      {"0.1.2.3", RefusalReason::kUnspecified},
      {"::", RefusalReason::kUnspecified},
      {"224.0.0.1", RefusalReason::kReserved},
      {"255.255.255.255", RefusalReason::kReserved},
      {"ff02::1", RefusalReason::kReserved},
      // IPv4 carried in IPv6 is judged as the IPv4 address it carries.
      {"::ffff:127.0.0.1", RefusalReason::kLoopback},
      {"::ffff:169.254.169.254", RefusalReason::kLinkLocal},
      {"::ffff:10.1.2.3", RefusalReason::kPrivate},
      {"::ffff:0.0.0.0", RefusalReason::kUnspecified},
      {"::ffff:8.8.8.8", std::nullopt},
      {"::127.0.0.1", RefusalReason::kLoopback},
      {"64:ff9b::a9fe:a9fe", RefusalReason::kLinkLocal},
      {"2002:7f00:1::", RefusalReason::kLoopback},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ClassifyAddress(make_address(c.addr)), c.want) << c.addr;
  }
}

TEST(TargetPolicy, AddressRangesRefusedUnlessExplicitlyAllowed) {
  auto strict = Policy({"http://*:*"});
  EXPECT_EQ(strict.CheckAddress(make_address("127.0.0.1")), RefusalReason::kLoopback);
  EXPECT_EQ(strict.CheckAddress(make_address("::ffff:127.0.0.1")), RefusalReason::kLoopback);
  EXPECT_EQ(strict.CheckAddress(make_address("169.254.169.254")), RefusalReason::kLinkLocal);
  EXPECT_EQ(strict.CheckAddress(make_address("8.8.8.8")), std::nullopt);

  auto loopback = Policy({"http://*:*"}, {"loopback"});
  EXPECT_EQ(loopback.CheckAddress(make_address("127.0.0.1")), std::nullopt);
  EXPECT_EQ(loopback.CheckAddress(make_address("::1")), std::nullopt);
  EXPECT_EQ(loopback.CheckAddress(make_address("::ffff:127.0.0.1")), std::nullopt);
  // Allowing one range opens no other.
  EXPECT_EQ(loopback.CheckAddress(make_address("10.0.0.1")), RefusalReason::kPrivate);
  EXPECT_EQ(loopback.CheckAddress(make_address("169.254.169.254")), RefusalReason::kLinkLocal);

  auto all = Policy({"http://*:*"}, {"private", "link_local", "unspecified", "reserved"});
  EXPECT_EQ(all.CheckAddress(make_address("10.0.0.1")), std::nullopt);
  EXPECT_EQ(all.CheckAddress(make_address("169.254.169.254")), std::nullopt);
  EXPECT_EQ(all.CheckAddress(make_address("0.0.0.0")), std::nullopt);
  EXPECT_EQ(all.CheckAddress(make_address("224.0.0.1")), std::nullopt);
  EXPECT_EQ(all.CheckAddress(make_address("127.0.0.1")), RefusalReason::kLoopback);
}

TEST(RefusalReason, StableNames) {
  EXPECT_STREQ(RefusalReasonName(RefusalReason::kBadUrl), "bad_url");
  EXPECT_STREQ(RefusalReasonName(RefusalReason::kScheme), "scheme");
  EXPECT_STREQ(RefusalReasonName(RefusalReason::kHost), "host");
  EXPECT_STREQ(RefusalReasonName(RefusalReason::kPath), "path");
  EXPECT_STREQ(RefusalReasonName(RefusalReason::kLoopback), "loopback");
  EXPECT_STREQ(RefusalReasonName(RefusalReason::kPrivate), "private");
  EXPECT_STREQ(RefusalReasonName(RefusalReason::kLinkLocal), "link_local");
  EXPECT_STREQ(RefusalReasonName(RefusalReason::kUnspecified), "unspecified");
  EXPECT_STREQ(RefusalReasonName(RefusalReason::kReserved), "reserved");
}

}  // namespace
}  // namespace wsgate::dataplane::outbound
