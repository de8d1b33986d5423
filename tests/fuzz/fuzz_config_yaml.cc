// The operator's YAML configuration into the data plane's snapshot, the path a config file or a
// PutRoute takes: ParseConfigYaml (controlplane/config/config_loader.h), ValidateConfig, then
// BuildSnapshot (route_translator.h: the same walk). Invariants: every refusal is an
// INVALID_ARGUMENT with a message (never a crash, an abort or an exception escaping); a config
// that validates always builds a snapshot with one route per configured route; an accepted
// config printed as JSON (which is YAML) parses back to the same message.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/config/config_loader.h"
#include "controlplane/config/config_validator.h"
#include "controlplane/config/snapshot_builder.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace cp = wsgate::controlplane;
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto config = cp::ParseConfigYaml(yaml);
  if (!config.ok()) {
    FUZZ_CHECK(config.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(!config.status().message().empty());
    return 0;
  }

  // Round trip: protobuf's JSON of the parsed config is YAML the loader reads back unchanged.
  std::string json;
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  FUZZ_CHECK(google::protobuf::util::MessageToJsonString(*config, &json, print).ok());
  auto again = cp::ParseConfigYaml(json);
  if (!again.ok()) std::fprintf(stderr, "%s\n%s\n", json.c_str(), again.status().ToString().c_str());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*config, *again));

  const absl::Status valid = cp::ValidateConfig(*config);
  if (!valid.ok()) {
    FUZZ_CHECK(valid.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(!valid.message().empty());
    return 0;
  }
  const std::vector<wsgate::v1::Route> routes(config->routes().begin(), config->routes().end());
  auto snapshot = cp::BuildSnapshot(routes, 1, nullptr, config->default_limits());
  if (!snapshot.ok()) std::fprintf(stderr, "%s\n", snapshot.status().ToString().c_str());
  FUZZ_CHECK(snapshot.ok());
  FUZZ_CHECK((*snapshot)->routes.size() == routes.size());
  return 0;
}
