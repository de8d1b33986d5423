#include "common/text/base64.h"
#include "common/text/utf8.h"
#include "dataplane/protocol/encoding.h"

#include <gtest/gtest.h>

#include <string>

namespace wsgate::dataplane::protocol {
namespace {

TEST(Base64, KnownVectors) {
  EXPECT_EQ(wsgate::text::Base64Encode(""), "");
  EXPECT_EQ(wsgate::text::Base64Encode("f"), "Zg==");
  EXPECT_EQ(wsgate::text::Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(wsgate::text::Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(wsgate::text::Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(*wsgate::text::Base64Decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(*wsgate::text::Base64Decode("Zm9vYmE"), "fooba");  // padding optional
}

TEST(Base64, RoundTripsEveryByteValueAndLength) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t len = 0; len <= all.size(); len += 7) {
    std::string bytes = all.substr(0, len);
    auto back = wsgate::text::Base64Decode(wsgate::text::Base64Encode(bytes));
    ASSERT_TRUE(back.ok()) << len;
    EXPECT_EQ(*back, bytes);
  }
}

TEST(Base64, RejectsMalformed) {
  EXPECT_FALSE(wsgate::text::Base64Decode("Zm9v YmFy").ok());  // whitespace
  EXPECT_FALSE(wsgate::text::Base64Decode("Zm9v-_").ok());     // URL-safe alphabet
  EXPECT_FALSE(wsgate::text::Base64Decode("Z").ok());          // impossible length
  EXPECT_FALSE(wsgate::text::Base64Decode("Zm9=").ok());       // non-zero trailing bits
  EXPECT_FALSE(wsgate::text::Base64Decode("Zg=").ok());        // padding to a wrong length
  EXPECT_FALSE(wsgate::text::Base64Decode("Zg===").ok());
}

TEST(Utf8, AcceptsValidRejectsInvalid) {
  EXPECT_TRUE(wsgate::text::IsValidUtf8(""));
  EXPECT_TRUE(wsgate::text::IsValidUtf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(wsgate::text::IsValidUtf8("\x89PNG\r\n\x1a\n"));
}

TEST(PercentEncode, OnlyUnreservedStays) {
  EXPECT_EQ(PercentEncodeComponent("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(PercentEncodeComponent("a b&c=d/é+"), "a%20b%26c%3Dd%2F%C3%A9%2B");
}

TEST(Timestamp, SeedFormatWithMilliseconds) {
  using namespace std::chrono;
  // 2025-01-01T12:00:00.000Z, the seed's example.
  system_clock::time_point t{seconds{1735732800}};
  EXPECT_EQ(FormatTimestamp(t), "2025-01-01T12:00:00.000Z");
  EXPECT_EQ(FormatTimestamp(t + milliseconds{7}), "2025-01-01T12:00:00.007Z");
  EXPECT_EQ(FormatTimestamp(t + milliseconds{59999}), "2025-01-01T12:00:59.999Z");
}

TEST(JsonNesting, CountsOutsideStringsOnly) {
  EXPECT_FALSE(JsonNestingExceeds(R"({"a":[1,{"b":2}]})", 3));
  EXPECT_TRUE(JsonNestingExceeds(R"({"a":[1,{"b":2}]})", 2));
  EXPECT_FALSE(JsonNestingExceeds(R"({"a":"[[[[[[\"[[["})", 1));
  EXPECT_TRUE(JsonNestingExceeds(std::string(100000, '['), 64));
}

}  // namespace
}  // namespace wsgate::dataplane::protocol
