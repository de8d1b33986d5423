// wsgate.v1.LimitService over the ConfigStore: read the limits configured at each level and in
// force per route; change them with a field mask. Validation, persistence and publication to the
// data plane are the store's job; the workers apply what open connections can follow at once
// (Worker::ApplyLimitsToOpenSessions).
#pragma once

#include "controlplane/auth/token_auth.h"

#include <string>
#include <vector>

#include "controlplane/config/config_store.h"
#include "wsgate/v1/limit_service.grpc.pb.h"

namespace wsgate::controlplane {

// Thread-safe (the store is); called on gRPC's thread pool.
class LimitServiceImpl final : public wsgate::v1::LimitService::Service {
 public:
  // `store` must outlive the service.
  explicit LimitServiceImpl(ConfigStore* store) : store_(store) {}

  grpc::Status GetLimits(grpc::ServerContext* context, const wsgate::v1::GetLimitsRequest* request,
                         wsgate::v1::GetLimitsResponse* response) override;
  grpc::Status UpdateLimits(grpc::ServerContext* context,
                            const wsgate::v1::UpdateLimitsRequest* request,
                            wsgate::v1::UpdateLimitsResponse* response) override;

  // Whether open connections follow a change of this Limits field at once (true), or only
  // connections opened afterwards (false: the connection caps and the handshake rate).
  static bool AppliesToOpenConnections(const std::string& field);

  // Requires a bearer token on every call (null: open). Call before the server starts;
  // `tokens` must outlive the service.
  void RequireTokens(const TokenTable* tokens) { tokens_ = tokens; }

 private:
  const TokenTable* tokens_ = nullptr;
  ConfigStore* const store_;
};

}  // namespace wsgate::controlplane
