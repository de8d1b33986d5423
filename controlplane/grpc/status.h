// absl::Status <-> grpc::Status. The two enums share their code numbers (both follow
// google.rpc.Code), so the mapping is a cast plus the message.
#pragma once

#include <grpcpp/support/status.h>

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace wsgate::controlplane {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace wsgate::controlplane

namespace wsgate::controlplane {

// The canonical upper-case name of a code ("INVALID_ARGUMENT"), as grpcurl prints it.
inline absl::string_view GrpcCodeName(grpc::StatusCode code) {
  static constexpr absl::string_view kNames[] = {
      "OK",           "CANCELLED",          "UNKNOWN",        "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",     "ALREADY_EXISTS", "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",          "UNAVAILABLE",    "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? kNames[i] : "UNKNOWN";
}

}  // namespace wsgate::controlplane
