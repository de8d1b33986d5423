// Reading configuration: YAML in the proto schema, converted through protobuf's JSON mapping so
// that there is exactly one schema. Pure functions; errors name the field and the reason.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "wsgate/v1/config.pb.h"

namespace wsgate::controlplane {

// Parses YAML text. Unknown fields are errors. Does not run ValidateConfig.
absl::StatusOr<wsgate::v1::Config> ParseConfigYaml(std::string_view yaml);
// Reads and parses a file; the error names the path.
absl::StatusOr<wsgate::v1::Config> LoadConfigFile(const std::string& path);
// The built-in demo configuration: /echo (echo) and /proxy/echo (websocket -> ws://127.0.0.1:8080/echo).
wsgate::v1::Config DemoConfig();

}  // namespace wsgate::controlplane
