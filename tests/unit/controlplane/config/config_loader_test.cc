#include "controlplane/config/config_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "controlplane/config/config_validator.h"
#include "tests/unit/controlplane/config/test_util.h"

namespace wsgate::controlplane {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string ErrorOf(const std::string& yaml) {
  auto c = ParseConfigYaml(yaml);
  EXPECT_FALSE(c.ok()) << "parsed but should not:\n" << yaml;
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
  return std::string(c.status().message());
}

wsgate::v1::Config MustParse(const std::string& yaml) {
  auto c = ParseConfigYaml(yaml);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : wsgate::v1::Config();
}

TEST(DemoConfigTest, HasEchoProxyAndTheSeedsOutboundRoutes) {
  wsgate::v1::Config c = DemoConfig();
  ASSERT_EQ(c.routes_size(), 6);
  EXPECT_EQ(c.routes(0).name(), "echo");
  EXPECT_EQ(c.routes(0).path(), "/echo");
  EXPECT_TRUE(c.routes(0).has_echo());
  EXPECT_EQ(c.routes(1).name(), "proxy-echo");
  EXPECT_EQ(c.routes(1).path(), "/proxy/echo");
  ASSERT_TRUE(c.routes(1).has_websocket());
  ASSERT_EQ(c.routes(1).websocket().upstreams_size(), 1);
  EXPECT_EQ(c.routes(1).websocket().upstreams(0), "ws://127.0.0.1:8080/echo");
  // The seeds' paths, loopback targets only.
  EXPECT_EQ(c.routes(2).path(), "/ws");
  ASSERT_TRUE(c.routes(2).has_http_bridge());
  EXPECT_EQ(c.routes(2).http_bridge().allowed_address_ranges_size(), 1);
  EXPECT_EQ(c.routes(2).http_bridge().allowed_address_ranges(0), "loopback");
  EXPECT_EQ(c.routes(3).path(), "/api/websocket/connect/{client_id}");
  ASSERT_TRUE(c.routes(3).has_external_client());
  EXPECT_EQ(c.routes(3).external_client().allowed_address_ranges(0), "loopback");
  // The fan-out kinds at the seeds' paths.
  EXPECT_EQ(c.routes(4).path(), "/ws/{client_id}");
  EXPECT_TRUE(c.routes(4).has_room());
  EXPECT_EQ(c.routes(5).path(), "/{agent_id}/ws/{session_id}");
  EXPECT_TRUE(c.routes(5).has_pubsub());
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
}

TEST(DemoConfigTest, ProxyEchoUpstreamIsTheDataPlanesOwnAddress) {
  auto upstream = [](std::string_view host, uint16_t port) {
    return DemoConfig(host, port).routes(1).websocket().upstreams(0);
  };
  EXPECT_EQ(upstream("127.0.0.1", 9123), "ws://127.0.0.1:9123/echo");
  // A wildcard listen address is reached on loopback.
  EXPECT_EQ(upstream("0.0.0.0", 18080), "ws://127.0.0.1:18080/echo");
  EXPECT_EQ(upstream("::", 18080), "ws://127.0.0.1:18080/echo");
  EXPECT_EQ(upstream("", 18080), "ws://127.0.0.1:18080/echo");
  EXPECT_EQ(upstream("127.0.0.2", 81), "ws://127.0.0.2:81/echo");
  EXPECT_EQ(upstream("::1", 81), "ws://[::1]:81/echo");
  EXPECT_EQ(upstream("localhost", 81), "ws://localhost:81/echo");
  // Port 0 (any free port): no upstream can name it yet, so the route is left to the caller.
  wsgate::v1::Config any_port = DemoConfig("127.0.0.1", 0);
  ASSERT_EQ(any_port.routes_size(), 5);
  for (const auto& r : any_port.routes()) EXPECT_NE(r.name(), "proxy-echo");
  EXPECT_TRUE(ValidateConfig(any_port).ok()) << ValidateConfig(any_port);
  for (uint16_t port : {1, 9123, 65535}) {
    wsgate::v1::Config c = DemoConfig("::1", port);
    EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
  }
}

TEST(ParseConfigYamlTest, EmptyDocumentIsAllDefaults) {
  EXPECT_EQ(MustParse("").routes_size(), 0);
  EXPECT_EQ(MustParse("# only a comment\n").routes_size(), 0);
}

TEST(ParseConfigYamlTest, EveryTypeConversion) {
  wsgate::v1::Config c = MustParse(R"(
server:
  listen_address: 127.0.0.1
  port: 9000              # uint32 from a plain scalar
  admin_port: "9001"      # a quoted number is still a number for a numeric field
  workers: 2
routes:
  - name: 123             # a number for a string field becomes the string "123"
    path: /ws/{client_id}
    version: 18446744073709551615   # uint64, full range
    limits:
      max_message_bytes: 1048576
      messages_per_second: 2.5      # double
      slow_consumer_policy: SLOW_CONSUMER_POLICY_DROP_OLDEST   # enum by name
    websocket:
      upstreams: [ws://a:1/x, "ws://b/y"]                        # repeated
      forward_headers:
        - Authorization
      set_headers: {X-Gateway: wsgate, X-Num: 42}               # map<string,string>
      connectTimeoutMs: 250                                      # lowerCamelCase name
  - name: flags
    path: /e
    echo:                   # null for a message field: an empty message, so the kind is set
    limits:
      slow_consumer_policy: 1   # enum by number
)");
  EXPECT_EQ(c.server().listen_address(), "127.0.0.1");
  EXPECT_EQ(c.server().port(), 9000u);
  EXPECT_EQ(c.server().admin_port(), 9001u);
  EXPECT_EQ(c.server().workers(), 2u);
  ASSERT_EQ(c.routes_size(), 2);
  const auto& r = c.routes(0);
  EXPECT_EQ(r.name(), "123");
  EXPECT_EQ(r.version(), 18446744073709551615ull);
  EXPECT_EQ(r.limits().max_message_bytes(), 1048576u);
  EXPECT_DOUBLE_EQ(r.limits().messages_per_second(), 2.5);
  EXPECT_EQ(r.limits().slow_consumer_policy(),
            wsgate::v1::Limits::SLOW_CONSUMER_POLICY_DROP_OLDEST);
  ASSERT_EQ(r.websocket().upstreams_size(), 2);
  EXPECT_EQ(r.websocket().upstreams(1), "ws://b/y");
  EXPECT_EQ(r.websocket().forward_headers(0), "Authorization");
  EXPECT_EQ(r.websocket().set_headers().at("X-Gateway"), "wsgate");
  EXPECT_EQ(r.websocket().set_headers().at("X-Num"), "42");
  EXPECT_EQ(r.websocket().connect_timeout_ms(), 250u);
  EXPECT_TRUE(c.routes(1).has_echo());
  EXPECT_EQ(c.routes(1).limits().slow_consumer_policy(),
            wsgate::v1::Limits::SLOW_CONSUMER_POLICY_CLOSE);
}

TEST(ParseConfigYamlTest, BoolLookingValueForANumberIsRefused) {
  EXPECT_THAT(ErrorOf("server: {port: true}\n"),
              StartsWith("server.port: expected an unsigned integer, got 'true'"));
}

TEST(ParseConfigYamlTest, NullScalarLeavesTheDefault) {
  wsgate::v1::Config c = MustParse("server:\n  port:\n  workers: ~\n");
  EXPECT_EQ(c.server().port(), 0u);
  EXPECT_EQ(c.server().workers(), 0u);
}

TEST(ParseConfigYamlTest, UnknownFieldNamesPathAndValidFields) {
  std::string e = ErrorOf(R"(
routes:
  - name: a
    path: /a
    echo: {}
    limitz: {}
)");
  EXPECT_THAT(e, StartsWith("routes[0].limitz: unknown field"));
  EXPECT_THAT(e, HasSubstr("name, path, limits"));
  EXPECT_THAT(e, HasSubstr("line 6"));
}

TEST(ParseConfigYamlTest, UnknownTopLevelAndNestedFields) {
  EXPECT_THAT(ErrorOf("serverz: {}\n"), StartsWith("serverz: unknown field"));
  EXPECT_THAT(ErrorOf("routes:\n  - websocket: {upstream: [ws://a]}\n"),
              StartsWith("routes[0].websocket.upstream: unknown field"));
}

TEST(ParseConfigYamlTest, YamlSyntaxErrorHasLineAndColumn) {
  std::string e = ErrorOf("routes:\n  - name: a\n    path: [/a\n");
  EXPECT_THAT(e, StartsWith("YAML syntax error at line "));
  EXPECT_THAT(e, HasSubstr("column"));
  EXPECT_THAT(ErrorOf("a: b: c\n"), StartsWith("YAML syntax error at line 1, column"));
}

// Found by fuzzing: a byte that is not UTF-8 reached the JSON writer, whose exception ended the
// process (--config, --check-config) instead of refusing the file.
TEST(ParseConfigYamlTest, InvalidUtf8IsRefusedWithItsLine) {
  EXPECT_EQ(ErrorOf("routes:\n  - name: a\n    path: /a\xd2x\n    echo: {}\n"),
            "config: line 3 is not valid UTF-8 (YAML text must be UTF-8)");
  EXPECT_EQ(ErrorOf("# caf\xc3\n"), "config: line 1 is not valid UTF-8 (YAML text must be UTF-8)");
  // Found by fuzzing too: yaml-cpp, given a NUL, loads empty documents until memory runs out.
  EXPECT_EQ(ErrorOf(std::string("\0,", 2)),
            "config: line 1, column 1: control character 0x00 (YAML text allows tab, CR and LF "
            "only)");
  EXPECT_THAT(ErrorOf("routes:\n  - name: a\x1b\n"), StartsWith("config: line 2, column 12: "));
  // A lone surrogate spelled as a YAML escape: yaml-cpp refuses it itself.
  EXPECT_THAT(ErrorOf("routes:\n  - name: \"\\ud800\"\n"), StartsWith("YAML syntax error"));
}

TEST(ParseConfigYamlTest, WrongTypesNameThePath) {
  EXPECT_THAT(ErrorOf("routes: {name: a}\n"), StartsWith("routes: expected a list, got a map"));
  EXPECT_THAT(ErrorOf("routes:\n  - name: [a]\n"),
              StartsWith("routes[0].name: expected a scalar, got a list"));
  EXPECT_THAT(ErrorOf("server: 8080\n"), StartsWith("server: expected a map, got a scalar"));
  EXPECT_THAT(ErrorOf("routes:\n  - {}\n  - websocket: {upstreams: [ws://a, {x: 1}]}\n"),
              StartsWith("routes[1].websocket.upstreams[1]: expected a scalar, got a map"));
  EXPECT_THAT(ErrorOf("server: {port: eighty}\n"),
              StartsWith("server.port: expected an unsigned integer, got 'eighty'"));
  EXPECT_THAT(ErrorOf("server: {port: -1}\n"),
              StartsWith("server.port: expected an unsigned integer, got '-1'"));
  EXPECT_THAT(ErrorOf("server: {port: 1.5}\n"),
              StartsWith("server.port: expected an unsigned integer, got '1.5'"));
  EXPECT_THAT(ErrorOf("server: {port: 4294967296}\n"),
              StartsWith("server.port: 4294967296 is out of range for a 32-bit unsigned"));
  EXPECT_THAT(ErrorOf("routes:\n  - limits: {messages_per_second: fast}\n"),
              StartsWith("routes[0].limits.messages_per_second: expected a number, got 'fast'"));
  EXPECT_THAT(ErrorOf("routes:\n  - limits: {slow_consumer_policy: SLOW}\n"),
              StartsWith("routes[0].limits.slow_consumer_policy: unknown value 'SLOW' (valid: "
                         "SLOW_CONSUMER_POLICY_UNSPECIFIED"));
  EXPECT_THAT(ErrorOf("routes:\n  - limits: {slow_consumer_policy: 7}\n"),
              StartsWith("routes[0].limits.slow_consumer_policy: unknown value '7'"));
  EXPECT_THAT(ErrorOf("routes:\n  - websocket: {set_headers: [a]}\n"),
              StartsWith("routes[0].websocket.set_headers: expected a map, got a list"));
  EXPECT_THAT(ErrorOf("routes:\n  - websocket: {set_headers: {X-A: {b: c}}}\n"),
              StartsWith("routes[0].websocket.set_headers[\"X-A\"]: expected a scalar, got a map"));
  EXPECT_THAT(ErrorOf("- a\n"), StartsWith("config: expected a map, got a list"));
}

TEST(ParseConfigYamlTest, FieldSetTwiceOrTwoKinds) {
  EXPECT_THAT(ErrorOf("routes:\n  - {path: /a, path: /b}\n"),
              StartsWith("routes[0].path: set twice"));
  EXPECT_THAT(ErrorOf("routes:\n  - {websocket: {connect_timeout_ms: 1, connectTimeoutMs: 2}}\n"),
              StartsWith("routes[0].websocket.connectTimeoutMs: set twice"));
  EXPECT_THAT(ErrorOf("routes:\n  - {echo: {}, websocket: {}}\n"),
              StartsWith("routes[0].websocket: only one of the 'kind' fields may be set"));
}

TEST(ParseConfigYamlTest, MultipleDocumentsRefused) {
  EXPECT_THAT(ErrorOf("routes: []\n---\nroutes: []\n"), HasSubstr("expected one YAML document"));
}

TEST(LoadConfigFileTest, ReadsAFileAndNamesItInErrors) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/wsgate.yaml";
  testing::WriteAll(path, "routes:\n  - name: e\n    path: /e\n    echo: {}\n");
  auto c = LoadConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->routes(0).name(), "e");

  testing::WriteAll(path, "routez: []\n");
  auto bad = LoadConfigFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), StartsWith(path + ": routez: unknown field"));

  auto missing = LoadConfigFile(dir.path() + "/nope.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr(dir.path() + "/nope.yaml"));

  auto directory = LoadConfigFile(dir.path());
  ASSERT_FALSE(directory.ok());
  EXPECT_THAT(std::string(directory.status().message()), HasSubstr("not a regular file"));
}

}  // namespace
}  // namespace wsgate::controlplane
