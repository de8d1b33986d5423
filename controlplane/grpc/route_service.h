// wsgate.v1.RouteService over the ConfigStore: parse the request, call the store, map the status.
// Validation, persistence and publication to the data plane are the store's job.
#pragma once

#include "controlplane/auth/token_auth.h"

#include "controlplane/config/config_store.h"
#include "wsgate/v1/route_service.grpc.pb.h"

namespace wsgate::controlplane {

// Thread-safe (the store is); called on gRPC's thread pool. Never blocks a data-plane worker:
// the store hands new snapshots to the workers by posting.
class RouteServiceImpl final : public wsgate::v1::RouteService::Service {
 public:
  // `store` must outlive the service.
  explicit RouteServiceImpl(ConfigStore* store) : store_(store) {}

  grpc::Status ListRoutes(grpc::ServerContext* context,
                          const wsgate::v1::ListRoutesRequest* request,
                          wsgate::v1::ListRoutesResponse* response) override;
  grpc::Status GetRoute(grpc::ServerContext* context, const wsgate::v1::GetRouteRequest* request,
                        wsgate::v1::Route* response) override;
  grpc::Status PutRoute(grpc::ServerContext* context, const wsgate::v1::PutRouteRequest* request,
                        wsgate::v1::PutRouteResponse* response) override;
  grpc::Status DeleteRoute(grpc::ServerContext* context,
                           const wsgate::v1::DeleteRouteRequest* request,
                           wsgate::v1::DeleteRouteResponse* response) override;

  // Requires a bearer token on every call (null: open). Call before the server starts;
  // `tokens` must outlive the service.
  void RequireTokens(const TokenTable* tokens) { tokens_ = tokens; }

 private:
  const TokenTable* tokens_ = nullptr;
  ConfigStore* const store_;
};

}  // namespace wsgate::controlplane
