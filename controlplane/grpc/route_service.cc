#include "controlplane/grpc/route_service.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <utility>

#include "controlplane/grpc/access.h"
#include "controlplane/grpc/status.h"

namespace wsgate::controlplane {

grpc::Status RouteServiceImpl::ListRoutes(grpc::ServerContext* context,
                                          const wsgate::v1::ListRoutesRequest*,
                                          wsgate::v1::ListRoutesResponse* response) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kRead, "wsgate.v1.RouteService/ListRoutes");
      !denied.ok()) {
    return denied;
  }
  // Version first: a change landing between the two calls makes the version look older than
  // the routes, which a client retrying with expected_version will notice, never the reverse.
  response->set_config_version(store_->version());
  for (wsgate::v1::Route& route : store_->ListRoutes()) {
    *response->add_routes() = std::move(route);
  }
  return grpc::Status::OK;
}

grpc::Status RouteServiceImpl::GetRoute(grpc::ServerContext* context,
                                        const wsgate::v1::GetRouteRequest* request,
                                        wsgate::v1::Route* response) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kRead, "wsgate.v1.RouteService/GetRoute");
      !denied.ok()) {
    return denied;
  }
  if (request->name().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "name: required");
  }
  absl::StatusOr<wsgate::v1::Route> route = store_->GetRoute(request->name());
  if (!route.ok()) return ToGrpcStatus(route.status());
  *response = *std::move(route);
  return grpc::Status::OK;
}

grpc::Status RouteServiceImpl::PutRoute(grpc::ServerContext* context,
                                        const wsgate::v1::PutRouteRequest* request,
                                        wsgate::v1::PutRouteResponse* response) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kWrite, "wsgate.v1.RouteService/PutRoute");
      !denied.ok()) {
    return denied;
  }
  if (!request->has_route()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "route: required");
  }
  std::optional<uint64_t> expected;
  if (request->has_expected_version()) expected = request->expected_version();
  absl::StatusOr<ConfigStore::PutResult> result = store_->PutRoute(request->route(), expected);
  if (!result.ok()) return ToGrpcStatus(result.status());
  spdlog::info("route {} {} (path {}, config version {})", result->route.name(),
               result->created ? "created" : "replaced", result->route.path(),
               result->config_version);
  *response->mutable_route() = std::move(result->route);
  response->set_config_version(result->config_version);
  response->set_created(result->created);
  return grpc::Status::OK;
}

grpc::Status RouteServiceImpl::DeleteRoute(grpc::ServerContext* context,
                                           const wsgate::v1::DeleteRouteRequest* request,
                                           wsgate::v1::DeleteRouteResponse* response) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kWrite, "wsgate.v1.RouteService/DeleteRoute");
      !denied.ok()) {
    return denied;
  }
  if (request->name().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "name: required");
  }
  std::optional<uint64_t> expected;
  if (request->has_expected_version()) expected = request->expected_version();
  absl::StatusOr<uint64_t> version = store_->DeleteRoute(request->name(), expected);
  if (!version.ok()) return ToGrpcStatus(version.status());
  spdlog::info("route {} deleted (config version {})", request->name(), *version);
  response->set_config_version(*version);
  return grpc::Status::OK;
}

}  // namespace wsgate::controlplane
