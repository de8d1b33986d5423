#include "dataplane/routing/path_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace wsgate::dataplane {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using Params = std::vector<std::pair<std::string, std::string>>;

PathTemplate MustParse(const std::string& text) {
  auto t = PathTemplate::Parse(text);
  EXPECT_TRUE(t.ok()) << text << ": " << t.status();
  return t.ok() ? *std::move(t) : PathTemplate();
}

std::string ParseError(const std::string& text) {
  auto t = PathTemplate::Parse(text);
  EXPECT_FALSE(t.ok()) << "'" << text << "' parsed but should not";
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(t.status().message());
}

TEST(PathTemplateParseTest, LiteralsAndParameters) {
  PathTemplate t = MustParse("/{agent_id}/ws/{session_id}");
  ASSERT_EQ(t.segments().size(), 3u);
  EXPECT_TRUE(t.segments()[0].is_param);
  EXPECT_EQ(t.segments()[0].text, "agent_id");
  EXPECT_FALSE(t.segments()[1].is_param);
  EXPECT_EQ(t.segments()[1].text, "ws");
  EXPECT_TRUE(t.segments()[2].is_param);
  EXPECT_EQ(t.segments()[2].text, "session_id");
  EXPECT_EQ(t.text(), "/{agent_id}/ws/{session_id}");
}

TEST(PathTemplateParseTest, RootHasNoSegments) {
  PathTemplate t = MustParse("/");
  EXPECT_TRUE(t.segments().empty());
}

TEST(PathTemplateParseTest, ParameterNameRules) {
  MustParse("/{_x}");
  MustParse("/{X9_y}");
  EXPECT_THAT(ParseError("/{9x}"), HasSubstr("parameter name '9x' is not valid"));
  EXPECT_THAT(ParseError("/{a-b}"), HasSubstr("parameter name 'a-b' is not valid"));
  EXPECT_THAT(ParseError("/{}"), HasSubstr("parameter name '' is not valid"));
}

TEST(PathTemplateParseTest, Errors) {
  EXPECT_THAT(ParseError(""), HasSubstr("must not be empty"));
  EXPECT_THAT(ParseError("echo"), HasSubstr("must start with '/'"));
  EXPECT_THAT(ParseError("/echo/"), HasSubstr("empty segment"));
  EXPECT_THAT(ParseError("//echo"), HasSubstr("empty segment"));
  EXPECT_THAT(ParseError("/a//b"), HasSubstr("empty segment"));
  EXPECT_THAT(ParseError("/echo?x=1"), HasSubstr("character '?'"));
  EXPECT_THAT(ParseError("/echo#frag"), HasSubstr("character '#'"));
  EXPECT_THAT(ParseError("/ws/*"), HasSubstr("character '*'"));
  EXPECT_THAT(ParseError("/a%20b"), HasSubstr("character '%'"));
  EXPECT_THAT(ParseError("/a b"), HasSubstr("character '\\x20'"));
  EXPECT_THAT(ParseError("/a\tb"), HasSubstr("character '\\x09'"));
  EXPECT_THAT(ParseError("/a\nb"), HasSubstr("character '\\x0a'"));
  EXPECT_THAT(ParseError("/ws-{id}"), HasSubstr("must be a whole segment"));
  EXPECT_THAT(ParseError("/{id}x"), HasSubstr("must be a whole segment"));
  EXPECT_THAT(ParseError("/{id"), HasSubstr("must be a whole segment"));
  EXPECT_THAT(ParseError("/id}"), HasSubstr("must be a whole segment"));
  EXPECT_THAT(ParseError("/{{id}}"), HasSubstr("must be a whole segment"));
  EXPECT_THAT(ParseError("/{a}/x/{a}"), HasSubstr("parameter {a} appears twice"));
}

TEST(PathTemplateMatchTest, Literal) {
  PathTemplate t = MustParse("/echo");
  EXPECT_THAT(t.Match("/echo"), ::testing::Optional(ElementsAre()));
  EXPECT_FALSE(t.Match("/echo2"));
  EXPECT_FALSE(t.Match("/ech"));
  EXPECT_FALSE(t.Match("/Echo"));
  EXPECT_FALSE(t.Match("/echo/x"));
  EXPECT_FALSE(t.Match("echo"));
  EXPECT_FALSE(t.Match(""));
  EXPECT_FALSE(t.Match("/"));
}

TEST(PathTemplateMatchTest, TrailingSlashAndEmptySegmentsDoNotMatch) {
  EXPECT_FALSE(MustParse("/echo").Match("/echo/"));
  EXPECT_FALSE(MustParse("/echo").Match("//echo"));
  EXPECT_FALSE(MustParse("/a/b").Match("/a//b"));
  EXPECT_FALSE(MustParse("/ws/{id}").Match("/ws/"));
  EXPECT_FALSE(MustParse("/ws/{id}").Match("/ws//"));
  EXPECT_FALSE(MustParse("/ws/{id}").Match("/ws/abc/"));
}

TEST(PathTemplateMatchTest, Root) {
  PathTemplate t = MustParse("/");
  EXPECT_TRUE(t.Match("/"));
  EXPECT_FALSE(t.Match("/x"));
  EXPECT_FALSE(t.Match("//"));
  EXPECT_FALSE(t.Match(""));
}

TEST(PathTemplateMatchTest, CapturesInTemplateOrder) {
  PathTemplate t = MustParse("/{agent_id}/ws/{session_id}");
  auto m = t.Match("/agent-7/ws/s1");
  ASSERT_TRUE(m);
  EXPECT_THAT(*m, ElementsAre(Pair("agent_id", "agent-7"), Pair("session_id", "s1")));
  EXPECT_FALSE(t.Match("/agent-7/wss/s1"));
  EXPECT_FALSE(t.Match("/agent-7/ws"));
  EXPECT_FALSE(t.Match("/agent-7/ws/s1/extra"));
}

TEST(PathTemplateMatchTest, ParameterMatchesExactlyOneSegment) {
  PathTemplate t = MustParse("/ws/{client_id}");
  EXPECT_FALSE(t.Match("/ws/a/b"));
  EXPECT_FALSE(t.Match("/ws"));
}

TEST(PathTemplateMatchTest, CapturesArePercentDecoded) {
  PathTemplate t = MustParse("/ws/{client_id}");
  EXPECT_THAT(t.Match("/ws/a%20b"), ::testing::Optional(ElementsAre(Pair("client_id", "a b"))));
  EXPECT_THAT(t.Match("/ws/a%2Fb"), ::testing::Optional(ElementsAre(Pair("client_id", "a/b"))));
  EXPECT_THAT(t.Match("/ws/%c3%a9"),
              ::testing::Optional(ElementsAre(Pair("client_id", "\xc3\xa9"))));
  // A literal '+' is not a space in a path.
  EXPECT_THAT(t.Match("/ws/a+b"), ::testing::Optional(ElementsAre(Pair("client_id", "a+b"))));
}

TEST(PathTemplateMatchTest, MalformedEscapesAndNulDoNotMatch) {
  PathTemplate t = MustParse("/ws/{client_id}");
  EXPECT_FALSE(t.Match("/ws/%"));
  EXPECT_FALSE(t.Match("/ws/%4"));
  EXPECT_FALSE(t.Match("/ws/a%zz"));
  EXPECT_FALSE(t.Match("/ws/a%00b"));
}

TEST(PathTemplateMatchTest, LiteralsMatchTheRawPath) {
  // "/ech%6F" decodes to "/echo", but literals compare raw bytes: one path, one spelling.
  EXPECT_FALSE(MustParse("/echo").Match("/ech%6F"));
}

TEST(PathTemplateShapeTest, ErasesParameterNames) {
  EXPECT_EQ(MustParse("/ws/{client_id}").Shape(), "/ws/{}");
  EXPECT_EQ(MustParse("/ws/{other}").Shape(), "/ws/{}");
  EXPECT_EQ(MustParse("/{a}/ws/{b}").Shape(), "/{}/ws/{}");
  EXPECT_EQ(MustParse("/echo").Shape(), "/echo");
  EXPECT_EQ(MustParse("/").Shape(), "/");
  EXPECT_NE(MustParse("/ws/{a}").Shape(), MustParse("/ws/a").Shape());
}

}  // namespace
}  // namespace wsgate::dataplane
