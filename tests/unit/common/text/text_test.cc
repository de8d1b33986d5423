// The shared text functions: token characters, UTF-8, base64 and base64url, JSON quoting.
#include <gtest/gtest.h>

#include <string>

#include "common/text/base64.h"
#include "common/text/json_quote.h"
#include "common/text/token.h"
#include "common/text/utf8.h"

namespace wsgate::text {
namespace {

TEST(TokenTest, Rfc9110Tchar) {
  EXPECT_TRUE(IsToken("chat.v2"));
  EXPECT_TRUE(IsToken("!#$%&'*+-.^_`|~09azAZ"));
  EXPECT_FALSE(IsToken(""));
  for (char c : std::string("()<>@,;:\\\"/[]?={} \t\x7f\x01")) {
    EXPECT_FALSE(IsTokenChar(static_cast<unsigned char>(c))) << static_cast<int>(c);
  }
  EXPECT_FALSE(IsTokenChar(0xc3));  // no obs-text in a token
}

TEST(TokenTest, Token68) {
  for (char c : std::string("aZ09-._~+/")) EXPECT_TRUE(IsToken68Char(static_cast<unsigned char>(c)));
  for (char c : std::string(" ,;\"=")) EXPECT_FALSE(IsToken68Char(static_cast<unsigned char>(c)));
}

TEST(Utf8Test, AsciiFastPathStillSeesAnInvalidByteAfterEightAsciiBytes) {
  // The validator skips ASCII 8 bytes at a time: an invalid byte at every offset around a chunk
  // boundary must still be found.
  for (size_t at = 0; at < 24; ++at) {
    std::string s(24, 'a');
    s[at] = '\xff';
    EXPECT_FALSE(IsValidUtf8(s)) << at;
    s[at] = 'b';
    EXPECT_TRUE(IsValidUtf8(s)) << at;
  }
  EXPECT_TRUE(IsValidUtf8("12345678\xc3\xa9" "12345678"));
  EXPECT_FALSE(IsValidUtf8("12345678\xc3"));
}

TEST(Utf8Test, RejectsOverlongsSurrogatesAndOutOfRange) {
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));
}

TEST(Base64Test, RoundTripsAndRefusesNonCanonicalText) {
  for (const std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    absl::StatusOr<std::string> back = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(back.ok()) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_FALSE(Base64Decode("Zm9=").ok());   // unused bits set
  EXPECT_FALSE(Base64Decode("Z").ok());      // impossible length
  EXPECT_FALSE(Base64Decode("Zm-v").ok());   // base64url alphabet
  EXPECT_FALSE(Base64Decode("Zm 9v").ok());  // whitespace
}

TEST(Base64Test, UrlAlphabetWithoutPadding) {
  std::string out;
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  ASSERT_TRUE(Base64UrlDecode("-_8", &out));
  EXPECT_EQ(out, "\xfb\xff");
  EXPECT_FALSE(Base64UrlDecode("+/8", &out));
  EXPECT_FALSE(Base64UrlDecode("-_8=", &out));
}

TEST(JsonQuoteTest, EscapesWhatJsonRequiresAndKeepsUtf8) {
  EXPECT_EQ(JsonQuote(""), "\"\"");
  EXPECT_EQ(JsonQuote("route.path: 'a\"b'"), "\"route.path: 'a\\\"b'\"");
  EXPECT_EQ(JsonQuote("a\\b"), "\"a\\\\b\"");
  EXPECT_EQ(JsonQuote(std::string("\n\t\x01\0", 4)), "\"\\u000a\\u0009\\u0001\\u0000\"");
  EXPECT_EQ(JsonQuote("h\xc3\xa9"), "\"h\xc3\xa9\"");  // UTF-8 passes through
}

}  // namespace
}  // namespace wsgate::text
