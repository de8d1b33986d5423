// The request body of a Connect call decoded into the method's input message: the part of the
// Connect protocol that parses what a client sends, kept apart from the transport (no gRPC here)
// so that it can be fuzzed on its own.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace wsgate::controlplane {

// `body` as `method`'s input type: for a streaming call one enveloped message (flags 0, a 4-byte
// big-endian length equal to the rest of the body), for a unary call the bare message; JSON
// (proto3 JSON mapping, unknown fields refused, an empty or blank body is `{}`) or binary proto.
// Errors are INVALID_ARGUMENT, and start with "request body" or "request envelope".
absl::StatusOr<std::unique_ptr<google::protobuf::Message>> DecodeConnectBody(
    const google::protobuf::MethodDescriptor& method, bool json, bool streaming,
    std::string body);

}  // namespace wsgate::controlplane
