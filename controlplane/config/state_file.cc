#include "controlplane/config/state_file.h"

#include <google/protobuf/util/json_util.h>

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "controlplane/config/config_validator.h"
#include "controlplane/config/file_io.h"

namespace wsgate::controlplane {

StateFile::StateFile(std::string dir) : dir_(std::move(dir)), path_(dir_ + "/routes.json") {}

absl::StatusOr<std::optional<wsgate::v1::StoredState>> StateFile::Load() const {
  auto text = ReadFileToString(path_);
  if (absl::IsNotFound(text.status())) return std::nullopt;
  if (!text.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("state file ", text.status().message()));  // the message names the path
  }
  wsgate::v1::StoredState state;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto parsed = google::protobuf::util::JsonStringToMessage(*text, &state, options);
  if (!parsed.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("state file ", path_, ": not a valid routes file: ",
                     std::string(parsed.message().data(), parsed.message().size())));
  }
  // The same checks as a config file (each route, unique names, no overlapping paths), so a
  // hand-edited or older file cannot bring in a route the API would refuse.
  wsgate::v1::Config as_config;
  *as_config.mutable_routes() = state.routes();
  if (auto s = ValidateConfig(as_config); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("state file ", path_, ": ", s.message()));
  }
  return state;
}

absl::Status StateFile::Save(const wsgate::v1::StoredState& state) const {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("state dir ", dir_, ": cannot create: ", ec.message()));
  }
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;  // the same spelling as the YAML config
  auto printed = google::protobuf::util::MessageToJsonString(state, &json, options);
  if (!printed.ok()) {
    return absl::InternalError(absl::StrCat(
        "state file ", path_,
        ": cannot serialize: ", std::string(printed.message().data(), printed.message().size())));
  }
  if (auto s = WriteFileAtomically(path_, json); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("state file ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace wsgate::controlplane
