// The request bodies of the admin API's Connect calls (controlplane/admin/connect_body.h): the
// first input byte picks the method (every RPC of the wsgate.v1 services) and the encoding
// (JSON or binary, unary or enveloped), the rest is the body. Invariants: an error is
// INVALID_ARGUMENT naming the body or the envelope; a decoded message has the method's input
// type and survives a round trip through the same decoder (its JSON printed and read back, its
// binary form enveloped or not) unchanged.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "controlplane/admin/connect_body.h"
#include "tests/fuzz/fuzz_check.h"
#include "wsgate/v1/inventory_service.pb.h"
#include "wsgate/v1/limit_service.pb.h"
#include "wsgate/v1/route_service.pb.h"
#include "wsgate/v1/session_service.pb.h"

namespace {

namespace pb = google::protobuf;

// Every method of every service in the files the Connect handler serves, in declaration order.
const std::vector<const pb::MethodDescriptor*>& Methods() {
  static const auto* methods = [] {
    auto* out = new std::vector<const pb::MethodDescriptor*>;
    for (const pb::FileDescriptor* file : {
             wsgate::v1::ListRoutesRequest::descriptor()->file(),
             wsgate::v1::GetLimitsRequest::descriptor()->file(),
             wsgate::v1::ListSessionsRequest::descriptor()->file(),
             wsgate::v1::GetInventoryRequest::descriptor()->file(),
         }) {
      for (int s = 0; s < file->service_count(); ++s) {
        for (int m = 0; m < file->service(s)->method_count(); ++m) {
          out->push_back(file->service(s)->method(m));
        }
      }
    }
    return out;
  }();
  return *methods;
}

bool HasFieldMask(const pb::Descriptor& type) {
  for (int i = 0; i < type.field_count(); ++i) {
    const pb::Descriptor* sub = type.field(i)->message_type();
    if (sub != nullptr && sub->full_name() == "google.protobuf.FieldMask") return true;
  }
  return false;
}

std::string Envelope(const std::string& payload) {
  const auto n = static_cast<uint32_t>(payload.size());
  std::string out(5, '\0');
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + payload;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::vector<const pb::MethodDescriptor*>& methods = Methods();
  FUZZ_CHECK(methods.size() >= 10);
  const pb::MethodDescriptor& method = *methods[(data[0] >> 2) % methods.size()];
  const bool json = (data[0] & 1) != 0;
  const bool streaming = (data[0] & 2) != 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);

  auto decoded = wsgate::controlplane::DecodeConnectBody(method, json, streaming, body);
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(decoded.status().message(), "request body") ||
               absl::StartsWith(decoded.status().message(), "request envelope"));
    return 0;
  }
  const pb::Message& message = **decoded;
  FUZZ_CHECK(message.GetDescriptor() == method.input_type());

  // Binary: what the handler forwards over gRPC decodes to the same message, enveloped or not.
  const std::string binary = message.SerializeAsString();
  for (bool env : {false, true}) {
    auto again = wsgate::controlplane::DecodeConnectBody(method, false, env,
                                                         env ? Envelope(binary) : binary);
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(pb::util::MessageDifferencer::Equals(message, **again));
  }
  // JSON: printed by protobuf and read back by the decoder, the same message. (A message from
  // binary input may hold unknown fields, which JSON cannot carry: compared without them.) A
  // FieldMask path is the exception: the JSON mapping writes it in lowerCamelCase, which loses
  // runs of '_', '_' before a non-letter ("a__b", "a_1") and capitals ("aBC" becomes "a_b_c",
  // then "aBC" or not), so there it is only checked that the JSON decodes again.
  std::string text;
  if (pb::util::MessageToJsonString(message, &text).ok()) {
    auto again = wsgate::controlplane::DecodeConnectBody(method, true, false, text);
    FUZZ_CHECK(again.ok());
    std::unique_ptr<pb::Message> known(message.New());
    known->CopyFrom(message);
    known->DiscardUnknownFields();
    if (!pb::util::MessageDifferencer::Equals(*known, **again)) {
      FUZZ_CHECK(HasFieldMask(*method.input_type()));
    }
  }
  return 0;
}
