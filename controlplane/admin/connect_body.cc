#include "controlplane/admin/connect_body.h"

#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace wsgate::controlplane {

namespace pb = google::protobuf;

absl::StatusOr<std::unique_ptr<pb::Message>> DecodeConnectBody(const pb::MethodDescriptor& method,
                                                               bool json, bool streaming,
                                                               std::string body) {
  std::string payload;
  if (streaming) {
    if (body.size() < 5) {
      return absl::InvalidArgumentError("request body: want one enveloped message");
    }
    const uint32_t n = (static_cast<uint32_t>(static_cast<uint8_t>(body[1])) << 24) |
                       (static_cast<uint32_t>(static_cast<uint8_t>(body[2])) << 16) |
                       (static_cast<uint32_t>(static_cast<uint8_t>(body[3])) << 8) |
                       static_cast<uint32_t>(static_cast<uint8_t>(body[4]));
    if (body[0] != 0) {
      return absl::InvalidArgumentError("request envelope: flags must be 0 (no compression)");
    }
    if (n != body.size() - 5) {
      return absl::InvalidArgumentError("request envelope: length does not match the body");
    }
    payload = body.substr(5);
  } else {
    payload = std::move(body);
  }
  const pb::Descriptor* type = method.input_type();
  std::unique_ptr<pb::Message> message(
      pb::MessageFactory::generated_factory()->GetPrototype(type)->New());
  if (json) {
    if (absl::StripAsciiWhitespace(payload).empty()) payload = "{}";
    pb::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    if (auto s = pb::util::JsonStringToMessage(payload, message.get(), options); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("request body: not a ", type->full_name(),
                                                     " in JSON: ", std::string(s.message())));
    }
  } else if (!message->ParseFromString(payload)) {
    return absl::InvalidArgumentError(
        absl::StrCat("request body: not a binary ", type->full_name()));
  }
  return message;
}

}  // namespace wsgate::controlplane
