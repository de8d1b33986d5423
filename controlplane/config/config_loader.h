// Reading configuration: YAML in the proto schema, converted through protobuf's JSON mapping so
// that there is exactly one schema. Pure functions; errors name the field and the reason.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "wsgate/v1/config.pb.h"

namespace wsgate::controlplane {

// Parses YAML text. Unknown fields are errors. Does not run ValidateConfig.
absl::StatusOr<wsgate::v1::Config> ParseConfigYaml(std::string_view yaml);
// Reads and parses a file; the error names the path.
absl::StatusOr<wsgate::v1::Config> LoadConfigFile(const std::string& path);
// The built-in demo configuration: /echo (echo), /proxy/echo (websocket -> ws://HOST:PORT/echo,
// wsgate's own /echo), the seeds' outbound, room and pubsub routes. `data_host` and `data_port`
// are where the data plane listens, so that /proxy/echo reaches this process and not whatever
// else listens on 8080; a wildcard address (0.0.0.0, ::, empty) becomes 127.0.0.1. Port 0 (any
// free port) leaves proxy-echo out: the caller adds it once the port is known.
wsgate::v1::Config DemoConfig(std::string_view data_host = "127.0.0.1", uint16_t data_port = 8080);
// The demo's proxy-echo upstream for a data plane on `data_host`:`data_port`.
std::string DemoProxyUpstream(std::string_view data_host, uint16_t data_port);

}  // namespace wsgate::controlplane
