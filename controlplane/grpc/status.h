// absl::Status <-> grpc::Status. The two enums share their code numbers (both follow
// google.rpc.Code), so the mapping is a cast plus the message.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace wsgate::controlplane {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace wsgate::controlplane
