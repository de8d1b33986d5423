// The split deployment's settings: --role, --control-plane, --dataplane-id,
// --dataplane-token-file, each also from its WSGATE_* variable (flag first), every bad value named.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "controlplane/main/settings.h"

namespace wsgate::controlplane {
namespace {

using ::testing::HasSubstr;

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

CliParseResult Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "wsgate");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data(), "1.0");
}

absl::StatusOr<Settings> Resolve(std::vector<std::string> args,
                                 std::map<std::string, std::string> env = {}) {
  CliParseResult r = Parse(std::move(args));
  if (!r.flags) return absl::InvalidArgumentError("parse failed");
  return ResolveSettings(*r.flags, {}, Env(std::move(env)), 1);
}

TEST(RoleSettingsTest, DefaultIsAllWithNoControlPlane) {
  absl::StatusOr<Settings> s = Resolve({});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->role, "all");
  EXPECT_EQ(s->control_plane, "");
  EXPECT_EQ(s->dataplane_id, "");
  EXPECT_EQ(s->dataplane_token_file, "");
}

TEST(RoleSettingsTest, DataPlaneFromFlagsAndFlagsBeatTheEnvironment) {
  absl::StatusOr<Settings> s =
      Resolve({"--role=dataplane", "--control-plane", "10.0.0.1:50051", "--dataplane-id", "a",
               "--dataplane-token-file", "/t"},
              {{"WSGATE_ROLE", "controlplane"},
               {"WSGATE_CONTROL_PLANE", "other:1"},
               {"WSGATE_DATAPLANE_ID", "b"},
               {"WSGATE_DATAPLANE_TOKEN_FILE", "/u"}});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->role, "dataplane");
  EXPECT_EQ(s->control_plane, "10.0.0.1:50051");
  EXPECT_EQ(s->dataplane_id, "a");
  EXPECT_EQ(s->dataplane_token_file, "/t");
}

TEST(RoleSettingsTest, DataPlaneFromTheEnvironment) {
  absl::StatusOr<Settings> s = Resolve({}, {{"WSGATE_ROLE", "dataplane"},
                                            {"WSGATE_CONTROL_PLANE", "cp.internal:50051"},
                                            {"WSGATE_DATAPLANE_ID", "b"},
                                            {"WSGATE_DATAPLANE_TOKEN_FILE", "/u"}});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->role, "dataplane");
  EXPECT_EQ(s->control_plane, "cp.internal:50051");
  EXPECT_EQ(s->dataplane_id, "b");
  EXPECT_EQ(s->dataplane_token_file, "/u");
}

TEST(RoleSettingsTest, ErrorsNameTheFlagOrVariable) {
  EXPECT_EQ(Parse({"--role=edge"}).exit_code, 2);  // CLI11 refuses an unknown role itself
  EXPECT_THAT(std::string(Resolve({}, {{"WSGATE_ROLE", "edge"}}).status().message()),
              HasSubstr("WSGATE_ROLE: want all, controlplane or dataplane"));
  EXPECT_THAT(std::string(Resolve({"--role=dataplane"}).status().message()),
              HasSubstr("--control-plane: required with --role=dataplane"));
  EXPECT_THAT(
      std::string(Resolve({"--role=dataplane", "--control-plane", "host"}).status().message()),
      HasSubstr("--control-plane: want HOST:PORT"));
  EXPECT_THAT(std::string(Resolve({"--role=dataplane"}, {{"WSGATE_CONTROL_PLANE", "h:0"}})
                              .status()
                              .message()),
              HasSubstr("WSGATE_CONTROL_PLANE: want HOST:PORT"));
  EXPECT_THAT(std::string(Resolve({"--control-plane", "h:1"}).status().message()),
              HasSubstr("--control-plane: only meaningful with --role=dataplane"));
  EXPECT_THAT(std::string(Resolve({"--dataplane-id", ""}).status().message()),
              HasSubstr("--dataplane-id: must not be empty"));
}

}  // namespace
}  // namespace wsgate::controlplane
