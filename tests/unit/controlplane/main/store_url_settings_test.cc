// --store-url / WSGATE_STORE_URL: precedence, the REDIS_URL grammar's errors under the store's
// own name, and the exclusion of --state-dir.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "controlplane/main/settings.h"

namespace wsgate::controlplane {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(StoreUrlSettingsTest, NoneByDefault) {
  absl::StatusOr<Settings> s = ResolveSettings({}, {}, Env({}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->store_url, "");
}

TEST(StoreUrlSettingsTest, FlagBeatsEnvironment) {
  absl::StatusOr<Settings> s =
      ResolveSettings({}, {}, Env({{"WSGATE_STORE_URL", "redis://10.0.0.1:6380/2"}}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->store_url, "redis://10.0.0.1:6380/2");
  CliFlags flags;
  flags.store_url = "redis://:pw@127.0.0.1:7000";
  s = ResolveSettings(flags, {}, Env({{"WSGATE_STORE_URL", "redis://10.0.0.1:6380/2"}}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->store_url, "redis://:pw@127.0.0.1:7000");
}

TEST(StoreUrlSettingsTest, MalformedUrlsNameTheirSource) {
  CliFlags flags;
  flags.store_url = "http://127.0.0.1:1";
  absl::StatusOr<Settings> s = ResolveSettings(flags, {}, Env({}), 1);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              StartsWith("--store-url: must start with redis://"));
  s = ResolveSettings({}, {}, Env({{"WSGATE_STORE_URL", "redis://h:99999"}}), 1);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), StartsWith("WSGATE_STORE_URL: the port"));
  flags.store_url = "";
  s = ResolveSettings(flags, {}, Env({}), 1);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("--store-url: must not be empty"));
}

TEST(StoreUrlSettingsTest, ExcludesStateDir) {
  CliFlags flags;
  flags.state_dir = "/var/lib/wsgate";
  flags.store_url = "redis://127.0.0.1:6379";
  absl::StatusOr<Settings> s = ResolveSettings(flags, {}, Env({}), 1);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("--store-url and --state-dir are mutually exclusive"));
  flags.store_url.reset();
  s = ResolveSettings(flags, {}, Env({{"WSGATE_STORE_URL", "redis://127.0.0.1:6379"}}), 1);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("WSGATE_STORE_URL and --state-dir are mutually exclusive"));
}

TEST(StoreUrlSettingsTest, ParsedFromTheCommandLine) {
  std::vector<std::string> args = {"wsgate", "--store-url", "redis://127.0.0.1:6379/1"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  CliParseResult r = ParseCommandLine(static_cast<int>(argv.size()), argv.data(), "1.0");
  ASSERT_TRUE(r.flags.has_value());
  EXPECT_EQ(r.flags->store_url, "redis://127.0.0.1:6379/1");
}

}  // namespace
}  // namespace wsgate::controlplane
