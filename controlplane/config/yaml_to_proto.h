// YAML text into any protobuf message, through protobuf's JSON mapping (the engine behind
// ParseConfigYaml, exposed for other YAML-in-the-proto-schema inputs and for tests).
#pragma once

#include <google/protobuf/message.h>

#include <string_view>

#include "absl/status/status.h"

namespace wsgate::controlplane {

// The YAML tree is converted to JSON guided by `out`'s descriptor (so a plain YAML 123 becomes
// "123" for a string field and 123 for a number field), then parsed with unknown fields
// refused. Field names: proto (snake_case) or JSON (lowerCamelCase). INVALID_ARGUMENT errors
// start with the field path ("routes[1].websocket.upstreams[0]: ...") and carry the YAML line;
// a YAML syntax error reports its line and column. An empty document leaves `out` cleared.
absl::Status ParseYamlInto(std::string_view yaml, google::protobuf::Message* out);

}  // namespace wsgate::controlplane
