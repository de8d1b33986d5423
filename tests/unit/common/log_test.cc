// InitLogging: JSON lines that stay valid JSON whatever the message holds, and the level
// precedence (argument > WSGATE_LOG_LEVEL > info).
#include "common/log.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace wsgate::common {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

// Captures what the process writes to stderr (fd 2), where the logger writes.
class StderrCapture {
 public:
  StderrCapture() {
    char tmpl[] = "/tmp/wsgate-log-test-XXXXXX";
    fd_ = mkstemp(tmpl);
    path_ = tmpl;
    std::fflush(stderr);
    saved_ = dup(2);
    dup2(fd_, 2);
  }
  // Restores stderr and returns what was written.
  std::string Finish() {
    std::fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    close(fd_);
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    std::remove(path_.c_str());
    return ss.str();
  }

 private:
  int fd_ = -1;
  int saved_ = -1;
  std::string path_;
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) out.push_back(line);
  return out;
}

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override { unsetenv("WSGATE_LOG_LEVEL"); }
  void TearDown() override { unsetenv("WSGATE_LOG_LEVEL"); }
};

TEST_F(LogTest, JsonLinesEscapeQuotesBackslashesNewlinesAndControlBytes) {
  ASSERT_TRUE(InitLogging(LogFormat::kJson, "info").ok());
  const std::string tricky = "say \"hi\"\\ then\nnew line\tand\r\x01 bell \xc3\xa9";
  StderrCapture capture;
  spdlog::info("{}", tricky);
  spdlog::warn("plain");
  spdlog::default_logger()->flush();
  const std::vector<std::string> lines = Lines(capture.Finish());

  ASSERT_EQ(lines.size(), 2u);  // the newline in the message did not split the line
  EXPECT_THAT(lines[0], HasSubstr(R"("msg":"say \"hi\"\\ then\nnew line\tand\r\u0001 bell )"
                                  "\xc3\xa9\"}"));
  nlohmann::json first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["msg"], tricky);
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["logger"], "wsgate");
  EXPECT_THAT(first["ts"].get<std::string>(),
              MatchesRegex(R"([0-9]{4}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9])"
                           R"(\.[0-9]{3}Z)"));
  nlohmann::json second = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(second["msg"], "plain");
  EXPECT_EQ(second["level"], "warning");
  EXPECT_EQ(second.size(), 4u);
}

TEST_F(LogTest, TextFormatNamesTheLoggerAndLevel) {
  ASSERT_TRUE(InitLogging(LogFormat::kText, "info").ok());
  StderrCapture capture;
  spdlog::info("hello {}", 42);
  spdlog::default_logger()->flush();
  const std::string out = capture.Finish();
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
  EXPECT_THAT(out.substr(0, out.size() - 1),
              MatchesRegex(R"(\[[0-9]{4}-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.)"
                           R"([0-9]{3}\] \[wsgate\] \[info\] hello 42)"));
}

TEST_F(LogTest, EveryFormatAndLevelRedactsSecrets) {
  for (LogFormat format : {LogFormat::kJson, LogFormat::kText}) {
    ASSERT_TRUE(InitLogging(format, "trace").ok());
    StderrCapture capture;
    spdlog::trace(R"(from client: {{"headers":{{"Authorization":"Bearer sekrit-1"}}}})");
    spdlog::debug("url ws://h/x?access_token=sekrit-2");
    spdlog::error("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWtyaXQifQ.sekrit-3");
    spdlog::default_logger()->flush();
    const std::string out = capture.Finish();
    EXPECT_EQ(Lines(out).size(), 3u) << out;
    EXPECT_THAT(out, Not(HasSubstr("sekrit"))) << out;
    EXPECT_THAT(out, HasSubstr("<redacted>")) << out;
  }
}

TEST_F(LogTest, LevelFiltersMessages) {
  ASSERT_TRUE(InitLogging(LogFormat::kJson, "warn").ok());
  StderrCapture capture;
  spdlog::info("hidden");
  spdlog::error("shown");
  spdlog::default_logger()->flush();
  const std::vector<std::string> lines = Lines(capture.Finish());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("\"msg\":\"shown\""));
}

TEST_F(LogTest, LevelComesFromEnvironmentWhenNotGiven) {
  setenv("WSGATE_LOG_LEVEL", "debug", 1);
  ASSERT_TRUE(InitLogging(LogFormat::kText, "").ok());
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::debug);
  EXPECT_TRUE(spdlog::should_log(spdlog::level::debug));
}

TEST_F(LogTest, ArgumentBeatsEnvironment) {
  setenv("WSGATE_LOG_LEVEL", "debug", 1);
  ASSERT_TRUE(InitLogging(LogFormat::kText, "error").ok());
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::err);
}

TEST_F(LogTest, DefaultIsInfo) {
  ASSERT_TRUE(InitLogging(LogFormat::kText, "").ok());
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::info);
}

TEST_F(LogTest, UnknownLevelIsAnErrorNamingItsSource) {
  absl::Status s = InitLogging(LogFormat::kText, "loud");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("--log-level: "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"loud\""));

  setenv("WSGATE_LOG_LEVEL", "verbose", 1);
  s = InitLogging(LogFormat::kText, "");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("WSGATE_LOG_LEVEL: "));
}

}  // namespace
}  // namespace wsgate::common
