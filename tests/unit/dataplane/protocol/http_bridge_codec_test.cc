#include "common/text/base64.h"
#include "common/text/utf8.h"
#include "dataplane/protocol/http_bridge_codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "dataplane/protocol/encoding.h"

namespace wsgate::dataplane::protocol {
namespace {

using nlohmann::json;

BridgeRequest ParseOk(const std::string& msg) {
  auto r = ParseBridgeRequest(msg);
  if (auto* e = std::get_if<BridgeError>(&r)) {
    ADD_FAILURE() << msg << " -> " << BridgeErrorCodeName(e->code) << ": " << e->message;
    return {};
  }
  return std::get<BridgeRequest>(std::move(r));
}

BridgeError ParseErr(const std::string& msg) {
  auto r = ParseBridgeRequest(msg);
  if (!std::holds_alternative<BridgeError>(r)) {
    ADD_FAILURE() << msg << " parsed";
    return {BridgeErrorCode::kInvalidFormat, "", std::nullopt};
  }
  return std::get<BridgeError>(std::move(r));
}

TEST(ParseBridgeRequest, SeedPostExample) {
  auto r = ParseOk(R"({"url": "http://example.com/api/resource", "method": "POST",
                       "data": {"key": "value"}})");
  EXPECT_EQ(r.method, HttpMethod::kPost);
  EXPECT_EQ(r.url, "http://example.com/api/resource");
  EXPECT_TRUE(r.has_body);
  EXPECT_EQ(json::parse(r.body), json({{"key", "value"}}));
  EXPECT_FALSE(r.has_content_type);
  EXPECT_FALSE(r.id_json.has_value());
  EXPECT_FALSE(r.timeout_ms.has_value());
}

TEST(ParseBridgeRequest, EveryMethodAnyCase) {
  EXPECT_EQ(ParseOk(R"({"url":"http://h/","method":"get"})").method, HttpMethod::kGet);
  EXPECT_EQ(ParseOk(R"({"url":"http://h/","method":"PUT","data":1})").method, HttpMethod::kPut);
  EXPECT_EQ(ParseOk(R"({"url":"http://h/","method":"Delete"})").method, HttpMethod::kDelete);
  EXPECT_EQ(ParseOk(R"({"url":"http://h/","method":"PATCH"})").method, HttpMethod::kPatch);
  EXPECT_EQ(ParseOk(R"({"url":"http://h/","method":"HEAD"})").method, HttpMethod::kHead);
}

TEST(ParseBridgeRequest, DataBecomesEncodedQueryForGetAndDelete) {
  auto r = ParseOk(R"({"url":"http://h/p","method":"GET",
      "data":{"q":"a b&c","n":5,"t":true,"skip":null,"list":[1,"x y",null],"o":{"k":1}}})");
  EXPECT_EQ(r.url, "http://h/p?q=a%20b%26c&n=5&t=true&list=1&list=x%20y&o=%7B%22k%22%3A1%7D");
  EXPECT_FALSE(r.has_body);
  // Appended to an existing query; the fragment is dropped.
  EXPECT_EQ(ParseOk(R"({"url":"http://h/p?a=1#frag","method":"DELETE","data":{"b":"é"}})").url,
            "http://h/p?a=1&b=%C3%A9");
  EXPECT_EQ(ParseOk(R"({"url":"http://h/p?","method":"GET","data":{"b":2}})").url,
            "http://h/p?b=2");
  EXPECT_EQ(ParseOk(R"({"url":"http://h/p","method":"GET","data":{}})").url, "http://h/p");
  EXPECT_EQ(ParseOk(R"({"url":"http://h/p","method":"HEAD","data":{"x":1}})").url,
            "http://h/p?x=1");
}

TEST(ParseBridgeRequest, DataIsJsonBodyForPostPutPatch) {
  auto r = ParseOk(R"({"url":"http://h/","method":"PATCH","data":[1,"two",{"3":null}]})");
  EXPECT_TRUE(r.has_body);
  EXPECT_EQ(json::parse(r.body), json::parse(R"([1,"two",{"3":null}])"));
  EXPECT_FALSE(ParseOk(R"({"url":"http://h/","method":"PATCH"})").has_body);
  EXPECT_EQ(ParseOk(R"({"url":"http://h/","method":"PUT","data":"text"})").body, "\"text\"");
}

TEST(ParseBridgeRequest, IdStringOrNumberEchoedAndCarriedByErrors) {
  EXPECT_EQ(*ParseOk(R"({"id":"req-1","url":"http://h/","method":"GET"})").id_json, "\"req-1\"");
  EXPECT_EQ(*ParseOk(R"({"id":42,"url":"http://h/","method":"GET"})").id_json, "42");
  EXPECT_EQ(*ParseOk(R"({"id":-7,"url":"http://h/","method":"GET"})").id_json, "-7");
  EXPECT_EQ(*ParseOk(R"({"id":1.5,"url":"http://h/","method":"GET"})").id_json, "1.5");
  EXPECT_FALSE(ParseOk(R"({"id":null,"url":"http://h/","method":"GET"})").id_json.has_value());
  auto e = ParseErr(R"({"id":"abc","method":"GET"})");
  EXPECT_EQ(e.code, BridgeErrorCode::kMissingField);
  EXPECT_EQ(*e.id_json, "\"abc\"");
  auto bad_id = ParseErr(R"({"id":{"x":1},"url":"http://h/","method":"GET"})");
  EXPECT_EQ(bad_id.code, BridgeErrorCode::kInvalidFormat);
  EXPECT_FALSE(bad_id.id_json.has_value());
  EXPECT_EQ(ParseErr(R"({"id":[1],"url":"http://h/","method":"GET"})").code,
            BridgeErrorCode::kInvalidFormat);
}

TEST(ParseBridgeRequest, HeadersAndTimeout) {
  auto r = ParseOk(R"({"url":"http://h/","method":"POST","data":{},"timeout_ms":2500,
      "headers":{"Authorization":"Bearer t","Content-Type":"application/vnd.x+json","X-N":3}})");
  ASSERT_EQ(r.headers.size(), 3u);
  EXPECT_EQ(r.headers[0].first, "Authorization");
  EXPECT_EQ(r.headers[0].second, "Bearer t");
  EXPECT_EQ(r.headers[2].second, "3");
  EXPECT_TRUE(r.has_content_type);
  EXPECT_EQ(*r.timeout_ms, 2500u);
}

TEST(ParseBridgeRequest, InvalidFormat) {
  for (const char* msg : {"", "not json", "{\"url\":", "[]", "\"str\"", "42", "null"}) {
    auto e = ParseErr(msg);
    EXPECT_EQ(e.code, BridgeErrorCode::kInvalidFormat) << msg;
  }
  for (const char* msg : {
           R"({"url":5,"method":"GET"})",
           R"({"url":"http://h/","method":["GET"]})",
           R"({"url":"http://h/","method":"GET","headers":"x"})",
           R"({"url":"http://h/","method":"GET","headers":{"Bad Name":"v"}})",
           R"({"url":"http://h/","method":"GET","headers":{"":"v"}})",
           R"({"url":"http://h/","method":"GET","headers":{"X":"a\r\nInjected: 1"}})",
           R"({"url":"http://h/","method":"GET","headers":{"X":{"o":1}}})",
           R"({"url":"http://h/","method":"GET","headers":{"Host":"evil"}})",
           R"({"url":"http://h/","method":"GET","headers":{"content-length":"5"}})",
           R"({"url":"http://h/","method":"GET","headers":{"Transfer-Encoding":"chunked"}})",
           R"({"url":"http://h/","method":"GET","timeout_ms":0})",
           R"({"url":"http://h/","method":"GET","timeout_ms":-5})",
           R"({"url":"http://h/","method":"GET","timeout_ms":1.5})",
           R"({"url":"http://h/","method":"GET","timeout_ms":"100"})",
           R"({"url":"http://h/","method":"GET","timeout_ms":99999999999})",
           R"({"url":"http://h/","method":"GET","data":[1,2]})",
           R"({"url":"http://h/","method":"DELETE","data":"x"})",
       }) {
    auto e = ParseErr(msg);
    EXPECT_EQ(e.code, BridgeErrorCode::kInvalidFormat) << msg;
    EXPECT_FALSE(e.message.empty());
  }
  // Deep nesting is refused before parsing (serialising it would recurse a million levels).
  std::string deep = R"({"url":"http://h/","method":"POST","data":)" + std::string(100000, '[') +
                     std::string(100000, ']') + "}";
  EXPECT_EQ(ParseErr(deep).code, BridgeErrorCode::kInvalidFormat);
  // Invalid UTF-8 inside a string is not JSON.
  EXPECT_EQ(ParseErr("{\"url\":\"http://h/\xff\",\"method\":\"GET\"}").code,
            BridgeErrorCode::kInvalidFormat);
}

TEST(ParseBridgeRequest, MissingFieldNamesTheField) {
  auto url = ParseErr(R"({"method":"GET"})");
  EXPECT_EQ(url.code, BridgeErrorCode::kMissingField);
  EXPECT_NE(url.message.find("url"), std::string::npos);
  EXPECT_EQ(ParseErr(R"({"url":"","method":"GET"})").code, BridgeErrorCode::kMissingField);
  EXPECT_EQ(ParseErr(R"({"url":null,"method":"GET"})").code, BridgeErrorCode::kMissingField);
  auto method = ParseErr(R"({"url":"http://h/"})");
  EXPECT_EQ(method.code, BridgeErrorCode::kMissingField);
  EXPECT_NE(method.message.find("method"), std::string::npos);
  // The seed: data is required for POST and PUT.
  auto data = ParseErr(R"({"url":"http://h/","method":"POST"})");
  EXPECT_EQ(data.code, BridgeErrorCode::kMissingField);
  EXPECT_NE(data.message.find("data"), std::string::npos);
  EXPECT_EQ(ParseErr(R"({"url":"http://h/","method":"PUT","data":null})").code,
            BridgeErrorCode::kMissingField);
}

TEST(ParseBridgeRequest, UnsupportedMethod) {
  for (const char* m : {"OPTIONS", "TRACE", "CONNECT", "FOO", "G ET"}) {
    auto e = ParseErr(std::string(R"({"id":9,"url":"http://h/","method":")") + m + "\"}");
    EXPECT_EQ(e.code, BridgeErrorCode::kUnsupportedMethod) << m;
    EXPECT_EQ(*e.id_json, "9");
  }
}

json Built(const BridgeHttpResponse& r, std::optional<std::string> id = std::nullopt) {
  return json::parse(BuildBridgeResponse(r, id));
}

TEST(BuildBridgeResponse, SeedShapeWithParsedJson) {
  BridgeHttpResponse r{200, {{"Content-Type", "application/json"}}, R"({"response":"Success"})"};
  json out = Built(r);
  EXPECT_EQ(out, json::parse(R"({"status_code":200,"headers":{"Content-Type":"application/json"},
                                 "content":{"response":"Success"}})"));
}

TEST(BuildBridgeResponse, ContentKinds) {
  // JSON by content type, also with parameters and +json; a 404 JSON body is parsed too.
  EXPECT_EQ(
      Built({404, {{"content-type", "application/problem+json; charset=utf-8"}}, "[1]"})["content"],
      json::parse("[1]"));
  // JSON type that does not parse falls back to text.
  EXPECT_EQ(Built({200, {{"Content-Type", "application/json"}}, "{oops"})["content"], "{oops");
  // Text.
  json text = Built({500, {{"Content-Type", "text/plain"}}, "Internal error \xc3\xa9"});
  EXPECT_EQ(text["content"], "Internal error \xc3\xa9");
  EXPECT_FALSE(text.contains("content_encoding"));
  // No content type but UTF-8: text. JSON-looking text without a JSON type stays text.
  EXPECT_EQ(Built({200, {}, "{\"a\":1}"})["content"], "{\"a\":1}");
  // Binary: base64, and it round-trips.
  std::string png("\x89PNG\r\n\x1a\n\x00\x01\xff", 11);
  json bin = Built({200, {{"Content-Type", "image/png"}}, png});
  EXPECT_EQ(bin["content_encoding"], "base64");
  EXPECT_EQ(*wsgate::text::Base64Decode(bin["content"].get<std::string>()), png);
  // Declared text but not UTF-8: base64 rather than corrupted text.
  json latin1 = Built({200, {{"Content-Type", "text/plain; charset=latin1"}}, "caf\xe9"});
  EXPECT_EQ(latin1["content_encoding"], "base64");
  EXPECT_EQ(*wsgate::text::Base64Decode(latin1["content"].get<std::string>()), "caf\xe9");
  // octet-stream is binary even when it happens to be ASCII.
  EXPECT_EQ(Built({200, {{"Content-Type", "application/octet-stream"}}, "abc"})["content"], "YWJj");
  // HEAD and empty bodies: "".
  BridgeHttpResponse head{200, {{"Content-Type", "application/json"}}, "", true};
  EXPECT_EQ(Built(head)["content"], "");
  EXPECT_EQ(Built({204, {{"Content-Type", "application/json"}}, ""})["content"], "");
}

TEST(BuildBridgeResponse, RepeatedHeadersJoinedAndIdEchoed) {
  BridgeHttpResponse r{200, {{"Set-Cookie", "a=1"}, {"X", "y"}, {"set-cookie", "b=2"}}, "ok"};
  json out = Built(r, "\"req-7\"");
  EXPECT_EQ(out["headers"]["Set-Cookie"], "a=1, b=2");
  EXPECT_FALSE(out["headers"].contains("set-cookie"));
  EXPECT_EQ(out["id"], "req-7");
  EXPECT_EQ(Built(r, "12")["id"], 12);
  // Non-UTF-8 header bytes do not break the answer.
  BridgeHttpResponse odd{200, {{"X-Odd", "\xff\xfe"}}, ""};
  EXPECT_NO_THROW(Built(odd));
}

TEST(BuildBridgeError, EveryCode) {
  const std::pair<BridgeErrorCode, const char*> codes[] = {
      {BridgeErrorCode::kInvalidFormat, "INVALID_FORMAT"},
      {BridgeErrorCode::kMissingField, "MISSING_FIELD"},
      {BridgeErrorCode::kUnsupportedMethod, "UNSUPPORTED_METHOD"},
      {BridgeErrorCode::kTargetNotAllowed, "TARGET_NOT_ALLOWED"},
      {BridgeErrorCode::kUpstreamTimeout, "UPSTREAM_TIMEOUT"},
      {BridgeErrorCode::kUpstreamUnreachable, "UPSTREAM_UNREACHABLE"},
      {BridgeErrorCode::kResponseTooLarge, "RESPONSE_TOO_LARGE"},
      {BridgeErrorCode::kTooManyInFlight, "TOO_MANY_IN_FLIGHT"},
      {BridgeErrorCode::kRequestTooLarge, "REQUEST_TOO_LARGE"},
  };
  for (const auto& [code, name] : codes) {
    json out = json::parse(BuildBridgeError(code, "why", std::nullopt));
    EXPECT_EQ(out, json({{"error", "why"}, {"code", name}}));
    EXPECT_EQ(json::parse(BuildBridgeError(code, "why", "3"))["id"], 3);
  }
  // A parse error turns into an answer with the id.
  auto e = std::get<BridgeError>(ParseBridgeRequest(R"({"id":"x","url":"http://h/"})"));
  json out = json::parse(BuildBridgeError(e));
  EXPECT_EQ(out["code"], "MISSING_FIELD");
  EXPECT_EQ(out["id"], "x");
}

}  // namespace
}  // namespace wsgate::dataplane::protocol
