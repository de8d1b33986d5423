// wsgate's command line and settings precedence: flag > environment > config `server:` > default,
// and every bad value named in the error.
#include "controlplane/main/settings.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace wsgate::controlplane {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

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

TEST(ResolveSettingsTest, DefaultsWhenNothingIsSet) {
  absl::StatusOr<Settings> s = ResolveSettings({}, {}, Env({}), 6);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->listen_address, "0.0.0.0");
  EXPECT_EQ(s->port, 8080);
  EXPECT_EQ(s->admin_port, 8081);
  EXPECT_EQ(s->grpc_port, 50051);
  EXPECT_EQ(s->grpc_listen_address, "0.0.0.0");
  EXPECT_EQ(s->workers, 6);
  EXPECT_EQ(s->shutdown_grace_seconds, 30);
}

TEST(ResolveSettingsTest, DrainCloseRateFromFlagThenEnvironmentThenConfigElse1000) {
  wsgate::v1::Server server;
  absl::StatusOr<Settings> s = ResolveSettings({}, server, Env({}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->drain_close_rate, 1000);
  server.set_drain_close_rate(0);  // set to 0: all at once, not the default
  s = ResolveSettings({}, server, Env({}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->drain_close_rate, 0);
  server.set_drain_close_rate(50);
  s = ResolveSettings({}, server, Env({{"WSGATE_DRAIN_CLOSE_RATE", "70"}}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->drain_close_rate, 70);
  CliFlags flags;
  flags.drain_close_rate = 90;
  s = ResolveSettings(flags, server, Env({{"WSGATE_DRAIN_CLOSE_RATE", "70"}}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->drain_close_rate, 90);
}

TEST(ResolveSettingsTest, BadDrainCloseRatesAreNamed) {
  absl::StatusOr<Settings> s =
      ResolveSettings({}, {}, Env({{"WSGATE_DRAIN_CLOSE_RATE", "fast"}}), 1);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), StartsWith("WSGATE_DRAIN_CLOSE_RATE: "));
  s = ResolveSettings({}, {}, Env({{"WSGATE_DRAIN_CLOSE_RATE", "-5"}}), 1);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), StartsWith("WSGATE_DRAIN_CLOSE_RATE: "));
  wsgate::v1::Server server;
  server.set_drain_close_rate(5000000);
  s = ResolveSettings({}, server, Env({}), 1);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), StartsWith("server.drain_close_rate: "));
  CliFlags flags;
  flags.drain_close_rate = -1;
  s = ResolveSettings(flags, {}, Env({}), 1);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), StartsWith("--drain-close-rate: "));
}

TEST(ResolveSettingsTest, RedisUrlFromEnvironmentThenConfigElseInMemory) {
  wsgate::v1::Server server;
  absl::StatusOr<Settings> s = ResolveSettings({}, server, Env({}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->redis_url, "");  // in-memory bus
  server.set_redis_url("redis://config:6379");
  s = ResolveSettings({}, server, Env({}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->redis_url, "redis://config:6379");
  s = ResolveSettings({}, server, Env({{"REDIS_URL", "redis://env:6380/2"}}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->redis_url, "redis://env:6380/2");
  // An empty REDIS_URL is the same as unset (a shell's `REDIS_URL= wsgate`).
  s = ResolveSettings({}, server, Env({{"REDIS_URL", ""}}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->redis_url, "redis://config:6379");
}

TEST(ResolveSettingsTest, ConfigServerSectionBeatsDefaults) {
  wsgate::v1::Server server;
  server.set_listen_address("127.0.0.2");
  server.set_port(9000);
  server.set_admin_port(9001);
  server.set_grpc_port(9002);
  server.set_workers(3);
  server.set_shutdown_grace_ms(1500);
  absl::StatusOr<Settings> s = ResolveSettings({}, server, Env({}), 6);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->listen_address, "127.0.0.2");
  EXPECT_EQ(s->port, 9000);
  EXPECT_EQ(s->admin_port, 9001);
  EXPECT_EQ(s->grpc_port, 9002);
  EXPECT_EQ(s->workers, 3);
  EXPECT_DOUBLE_EQ(s->shutdown_grace_seconds, 1.5);
}

TEST(ResolveSettingsTest, EnvironmentBeatsConfig) {
  wsgate::v1::Server server;
  server.set_listen_address("127.0.0.2");
  server.set_port(9000);
  server.set_shutdown_grace_ms(1500);
  absl::StatusOr<Settings> s = ResolveSettings(
      {}, server,
      Env({{"HOST", "127.0.0.3"}, {"PORT", "7000"}, {"SHUTDOWN_GRACE_PERIOD_SECS", "0.25"}}), 6);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->listen_address, "127.0.0.3");
  EXPECT_EQ(s->port, 7000);
  EXPECT_DOUBLE_EQ(s->shutdown_grace_seconds, 0.25);
}

TEST(ResolveSettingsTest, FlagsBeatEnvironmentAndConfig) {
  wsgate::v1::Server server;
  server.set_port(9000);
  server.set_admin_port(9001);
  server.set_grpc_port(9002);
  server.set_workers(3);
  CliFlags flags;
  flags.listen_address = "127.0.0.4";
  flags.port = 0;  // 0 is a real choice (any free port), not "unset"
  flags.admin_port = 0;
  flags.grpc_port = 0;
  flags.grpc_listen_address = "::1";
  flags.workers = 2;
  flags.shutdown_grace_seconds = 0;
  absl::StatusOr<Settings> s = ResolveSettings(
      flags, server,
      Env({{"HOST", "127.0.0.3"}, {"PORT", "7000"}, {"SHUTDOWN_GRACE_PERIOD_SECS", "9"}}), 6);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->listen_address, "127.0.0.4");
  EXPECT_EQ(s->port, 0);
  EXPECT_EQ(s->admin_port, 0);
  EXPECT_EQ(s->grpc_port, 0);
  EXPECT_EQ(s->grpc_listen_address, "::1");
  EXPECT_EQ(s->workers, 2);
  EXPECT_EQ(s->shutdown_grace_seconds, 0);
}

TEST(ResolveSettingsTest, AdminTokenFileAndUiDirFromFlagThenEnvironment) {
  absl::StatusOr<Settings> s = ResolveSettings({}, {}, Env({}), 1);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->admin_token_file, "");  // open
  EXPECT_EQ(s->admin_ui_dir, "");      // beside the binary
  const auto env =
      Env({{"WSGATE_ADMIN_TOKEN_FILE", "/env/tokens"}, {"WSGATE_ADMIN_UI_DIR", "/env/ui"}});
  s = ResolveSettings({}, {}, env, 1);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->admin_token_file, "/env/tokens");
  EXPECT_EQ(s->admin_ui_dir, "/env/ui");
  CliFlags flags;
  flags.admin_token_file = "/flag/tokens";
  flags.admin_ui_dir = "/flag/ui";
  s = ResolveSettings(flags, {}, env, 1);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->admin_token_file, "/flag/tokens");
  EXPECT_EQ(s->admin_ui_dir, "/flag/ui");
  flags.admin_token_file = "";
  EXPECT_THAT(std::string(ResolveSettings(flags, {}, env, 1).status().message()),
              HasSubstr("--admin-token-file"));
}

TEST(ResolveSettingsTest, BadEnvironmentValuesNameTheVariable) {
  struct Case {
    std::map<std::string, std::string> env;
    std::string prefix;
  };
  const std::vector<Case> cases = {
      {{{"PORT", "abc"}}, "PORT: "},
      {{{"PORT", "70000"}}, "PORT: "},
      {{{"PORT", "-1"}}, "PORT: "},
      {{{"PORT", "80 80"}}, "PORT: "},
      {{{"SHUTDOWN_GRACE_PERIOD_SECS", "soon"}}, "SHUTDOWN_GRACE_PERIOD_SECS: "},
      {{{"SHUTDOWN_GRACE_PERIOD_SECS", "-3"}}, "SHUTDOWN_GRACE_PERIOD_SECS: "},
      {{{"SHUTDOWN_GRACE_PERIOD_SECS", "nan"}}, "SHUTDOWN_GRACE_PERIOD_SECS: "},
      {{{"SHUTDOWN_GRACE_PERIOD_SECS", "inf"}}, "SHUTDOWN_GRACE_PERIOD_SECS: "},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Settings> s = ResolveSettings({}, {}, Env(c.env), 1);
    ASSERT_FALSE(s.ok()) << c.prefix;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.status().message()), StartsWith(c.prefix));
  }
}

TEST(ResolveSettingsTest, BadFlagAndConfigValuesNameTheirSource) {
  CliFlags flags;
  flags.port = 65536;
  EXPECT_THAT(std::string(ResolveSettings(flags, {}, Env({}), 1).status().message()),
              StartsWith("--port: "));
  flags = {};
  flags.workers = 0;
  EXPECT_THAT(std::string(ResolveSettings(flags, {}, Env({}), 1).status().message()),
              StartsWith("--workers: "));
  flags = {};
  flags.listen_address = "";
  EXPECT_THAT(std::string(ResolveSettings(flags, {}, Env({}), 1).status().message()),
              StartsWith("--listen: "));
  flags = {};
  flags.shutdown_grace_seconds = -1;
  EXPECT_THAT(std::string(ResolveSettings(flags, {}, Env({}), 1).status().message()),
              StartsWith("--shutdown-grace: "));

  wsgate::v1::Server server;
  server.set_grpc_port(70000);
  EXPECT_THAT(std::string(ResolveSettings({}, server, Env({}), 1).status().message()),
              StartsWith("server.grpc_port: "));
  server = {};
  server.set_workers(5000);
  EXPECT_THAT(std::string(ResolveSettings({}, server, Env({}), 1).status().message()),
              StartsWith("server.workers: "));
}

TEST(ResolveSettingsTest, ListenAddressAndRedisUrlAreCheckedAndNameTheirSource) {
  auto error = [](const CliFlags& flags, const wsgate::v1::Server& server, const EnvLookup& env) {
    absl::StatusOr<Settings> s = ResolveSettings(flags, server, env, 1);
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(s.status().message());
  };
  CliFlags flags;
  flags.listen_address = "localhost";
  EXPECT_THAT(error(flags, {}, Env({})), StartsWith("--listen: 'localhost' is not an IP address"));
  EXPECT_THAT(error({}, {}, Env({{"HOST", "my-host"}})),
              StartsWith("HOST: 'my-host' is not an IP address"));
  wsgate::v1::Server server;
  server.set_listen_address("localhost");
  EXPECT_THAT(error({}, server, Env({})),
              StartsWith("server.listen_address: 'localhost' is not an IP address"));
  // A good value from a higher level wins over a bad one below it.
  EXPECT_TRUE(ResolveSettings({}, server, Env({{"HOST", "::1"}}), 1).ok());

  server = {};
  server.set_redis_url("http://x");
  EXPECT_THAT(error({}, server, Env({})), StartsWith("server.redis_url: must start with redis://"));
  EXPECT_TRUE(ResolveSettings({}, server, Env({{"REDIS_URL", "redis://h:1"}}), 1).ok());
  EXPECT_THAT(error({}, {}, Env({{"REDIS_URL", "http://x"}})),
              StartsWith("REDIS_URL: must start with redis://"));
}

TEST(ResolveSettingsTest, PubSubPingsDefaultTo30And10SecondsWithoutWarnings) {
  absl::StatusOr<Settings> s = ResolveSettings({}, {}, Env({}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ws_ping_interval, std::chrono::milliseconds(30000));
  EXPECT_EQ(s->ws_ping_timeout, std::chrono::milliseconds(10000));
  EXPECT_FALSE(s->websocket_debug);
  EXPECT_THAT(s->warnings, IsEmpty());
}

TEST(ResolveSettingsTest, PubSubPingsFromTheSeedsVariables) {
  absl::StatusOr<Settings> s = ResolveSettings(
      {}, {}, Env({{"WS_PING_INTERVAL_SECS", "0.3"}, {"WS_PING_TIMEOUT_SECS", "45"}}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ws_ping_interval, std::chrono::milliseconds(300));  // fractions allowed
  EXPECT_EQ(s->ws_ping_timeout, std::chrono::milliseconds(45000));
  EXPECT_THAT(s->warnings, IsEmpty());
  // 0 disables; 86400 is the largest value taken.
  s = ResolveSettings({}, {},
                      Env({{"WS_PING_INTERVAL_SECS", "0"}, {"WS_PING_TIMEOUT_SECS", "86400"}}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ws_ping_interval, std::chrono::milliseconds(0));
  EXPECT_EQ(s->ws_ping_timeout, std::chrono::milliseconds(86400000));
  // Empty is unset, like every variable here.
  s = ResolveSettings({}, {}, Env({{"WS_PING_INTERVAL_SECS", ""}}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ws_ping_interval, std::chrono::milliseconds(30000));
  EXPECT_THAT(s->warnings, IsEmpty());
}

TEST(ResolveSettingsTest, BadPingValuesWarnNamingTheVariableAndKeepTheDefault) {
  for (const char* bad : {"abc", "-1", "86401", "5s", "nan", "inf", " "}) {
    absl::StatusOr<Settings> s = ResolveSettings(
        {}, {}, Env({{"WS_PING_INTERVAL_SECS", bad}, {"WS_PING_TIMEOUT_SECS", bad}}), 1);
    // Not an error: the start goes on with the defaults.
    ASSERT_TRUE(s.ok()) << bad << ": " << s.status();
    EXPECT_EQ(s->ws_ping_interval, std::chrono::milliseconds(30000)) << bad;
    EXPECT_EQ(s->ws_ping_timeout, std::chrono::milliseconds(10000)) << bad;
    ASSERT_EQ(s->warnings.size(), 2u) << bad;
    EXPECT_THAT(s->warnings[0], StartsWith("WS_PING_INTERVAL_SECS: '" + std::string(bad) + "'"));
    EXPECT_THAT(s->warnings[0], HasSubstr("using 30"));
    EXPECT_THAT(s->warnings[1], StartsWith("WS_PING_TIMEOUT_SECS: '" + std::string(bad) + "'"));
    EXPECT_THAT(s->warnings[1], HasSubstr("using 10"));
  }
  // One bad value does not touch the other.
  absl::StatusOr<Settings> s = ResolveSettings(
      {}, {}, Env({{"WS_PING_INTERVAL_SECS", "-5"}, {"WS_PING_TIMEOUT_SECS", "2"}}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ws_ping_interval, std::chrono::milliseconds(30000));
  EXPECT_EQ(s->ws_ping_timeout, std::chrono::milliseconds(2000));
  ASSERT_EQ(s->warnings.size(), 1u);
  EXPECT_THAT(s->warnings[0], StartsWith("WS_PING_INTERVAL_SECS: "));
}

TEST(ResolveSettingsTest, WebsocketDebugIsTrueOneOrYesInAnyCase) {
  for (const char* on : {"true", "TRUE", "True", "1", "yes", "Yes"}) {
    absl::StatusOr<Settings> s = ResolveSettings({}, {}, Env({{"WEBSOCKET_DEBUG", on}}), 1);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_TRUE(s->websocket_debug) << on;
  }
  for (const char* off : {"false", "0", "no", "", "on", "truee"}) {
    absl::StatusOr<Settings> s = ResolveSettings({}, {}, Env({{"WEBSOCKET_DEBUG", off}}), 1);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_FALSE(s->websocket_debug) << off;
    EXPECT_THAT(s->warnings, IsEmpty()) << off;
  }
}

TEST(ResolveSettingsTest, NoCoresCountedMeansOneWorker) {
  absl::StatusOr<Settings> s = ResolveSettings({}, {}, Env({}), 0);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->workers, 1);
}

TEST(ParseCommandLineTest, EveryFlag) {
  CliParseResult r =
      Parse({"--check-config", "x.yaml", "--state-dir",  "/tmp/s", "--listen",         "127.0.0.1",
             "--port",         "0",      "--admin-port", "1",      "--grpc-port",      "2",
             "--grpc-listen",  "::",     "--workers",    "3",      "--shutdown-grace", "0.5",
             "--log-format",   "json",   "--log-level",  "debug", "--drain-close-rate", "250"});
  ASSERT_TRUE(r.flags.has_value());
  const CliFlags& f = *r.flags;
  EXPECT_EQ(f.check_config_path, "x.yaml");
  EXPECT_EQ(f.state_dir, "/tmp/s");
  EXPECT_EQ(f.listen_address, "127.0.0.1");
  EXPECT_EQ(f.port, 0);
  EXPECT_EQ(f.admin_port, 1);
  EXPECT_EQ(f.grpc_port, 2);
  EXPECT_EQ(f.grpc_listen_address, "::");
  EXPECT_EQ(f.workers, 3);
  EXPECT_EQ(f.shutdown_grace_seconds, 0.5);
  EXPECT_EQ(f.log_format, "json");
  EXPECT_EQ(f.log_level, "debug");
  EXPECT_EQ(f.drain_close_rate, 250);
}

TEST(ParseCommandLineTest, FlagsNotGivenStayUnset) {
  CliParseResult r = Parse({});
  ASSERT_TRUE(r.flags.has_value());
  EXPECT_FALSE(r.flags->port.has_value());
  EXPECT_FALSE(r.flags->workers.has_value());
  EXPECT_FALSE(r.flags->shutdown_grace_seconds.has_value());
  EXPECT_FALSE(r.flags->listen_address.has_value());
  EXPECT_EQ(r.flags->log_format, "text");
}

TEST(ParseCommandLineTest, BadFlagsExitWithTwo) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--port", "70000"},
                                             {"--port", "eighty"},
                                             {"--workers", "0"},
                                             {"--shutdown-grace", "-1"},
                                             {"--log-format", "xml"},
                                             {"--config", "/nonexistent/wsgate.yaml"},
                                             {"--no-such-flag"},
                                             {"stray-argument"}}) {
    CliParseResult r = Parse(args);
    EXPECT_FALSE(r.flags.has_value()) << args[0];
    EXPECT_EQ(r.exit_code, 2) << args[0];
  }
}

TEST(ParseCommandLineTest, VersionAndHelpExitWithZero) {
  for (const char* flag : {"--version", "--help"}) {
    CliParseResult r = Parse({flag});
    EXPECT_FALSE(r.flags.has_value()) << flag;
    EXPECT_EQ(r.exit_code, 0) << flag;
  }
}

// Control-plane TLS files: flag > WSGATE_CONTROL_* > server.control_* > none, each with the name
// of where it came from (the loader's errors name it).
TEST(ResolveSettingsTest, ControlTlsFilesFromFlagEnvironmentThenConfig) {
  wsgate::v1::Server server;
  server.set_control_tls_cert("/config/c.pem");
  server.set_control_tls_key("/config/k.pem");
  absl::StatusOr<Settings> s = ResolveSettings({}, server, Env({}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->control_tls_cert, "/config/c.pem");
  EXPECT_EQ(s->control_tls_key_source, "server.control_tls_key");
  EXPECT_EQ(s->control_client_ca, "");
  s = ResolveSettings({}, server,
                      Env({{"WSGATE_CONTROL_TLS_CERT", "/env/c.pem"},
                           {"WSGATE_CONTROL_CLIENT_CA", "/env/ca.pem"}}),
                      1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->control_tls_cert, "/env/c.pem");
  EXPECT_EQ(s->control_tls_cert_source, "WSGATE_CONTROL_TLS_CERT");
  EXPECT_EQ(s->control_tls_key, "/config/k.pem");
  EXPECT_EQ(s->control_client_ca, "/env/ca.pem");
  CliFlags flags;
  flags.control_tls_cert = "/flag/c.pem";
  s = ResolveSettings(flags, server, Env({{"WSGATE_CONTROL_TLS_CERT", "/env/c.pem"}}), 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->control_tls_cert, "/flag/c.pem");
  EXPECT_EQ(s->control_tls_cert_source, "--control-tls-cert");
}

TEST(ResolveSettingsTest, ControlTlsCertAndKeyComeTogether) {
  CliFlags flags;
  flags.control_tls_cert = "/c.pem";
  EXPECT_THAT(std::string(ResolveSettings(flags, {}, Env({}), 1).status().message()),
              StartsWith("--control-tls-cert: a TLS certificate needs its key"));
  wsgate::v1::Server server;
  server.set_control_tls_key("/k.pem");
  EXPECT_THAT(std::string(ResolveSettings({}, server, Env({}), 1).status().message()),
              StartsWith("server.control_tls_key: a TLS key needs its certificate"));
  EXPECT_THAT(std::string(ResolveSettings({}, {}, Env({{"WSGATE_CONTROL_CLIENT_CA", "/ca.pem"}}), 1)
                              .status()
                              .message()),
              StartsWith("WSGATE_CONTROL_CLIENT_CA: mutual TLS needs --control-tls-cert"));
  CliFlags empty;
  empty.control_tls_key = "";
  EXPECT_THAT(std::string(ResolveSettings(empty, {}, Env({}), 1).status().message()),
              StartsWith("--control-tls-key: must not be empty"));
}

}  // namespace
}  // namespace wsgate::controlplane
