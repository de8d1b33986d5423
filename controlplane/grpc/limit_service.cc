#include "controlplane/grpc/limit_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <spdlog/spdlog.h>

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controlplane/config/route_translator.h"
#include "controlplane/grpc/access.h"
#include "controlplane/grpc/status.h"

namespace wsgate::controlplane {
namespace {

using google::protobuf::FieldDescriptor;
using wsgate::v1::Limits;

std::vector<std::string> LimitFieldNames() {
  std::vector<std::string> out;
  const auto* desc = Limits::descriptor();
  for (int i = 0; i < desc->field_count(); ++i) out.push_back(desc->field(i)->name());
  return out;
}

// Copies field `f` of `from` into `to` (every Limits field is a singular scalar or enum).
void CopyField(const Limits& from, Limits* to, const FieldDescriptor* f) {
  const auto* r = Limits::GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_UINT64:
      r->SetUInt64(to, f, r->GetUInt64(from, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      r->SetUInt32(to, f, r->GetUInt32(from, f));
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      r->SetDouble(to, f, r->GetDouble(from, f));
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      r->SetEnumValue(to, f, r->GetEnumValue(from, f));
      break;
    default:
      break;  // no other types in Limits
  }
}

bool FieldDiffers(const Limits& a, const Limits& b, const FieldDescriptor* f) {
  Limits x, y;
  CopyField(a, &x, f);
  CopyField(b, &y, f);
  return x.SerializeAsString() != y.SerializeAsString();
}

}  // namespace

bool LimitServiceImpl::AppliesToOpenConnections(const std::string& field) {
  static const std::set<std::string> kNewOnly = {"max_connections", "max_connections_per_client",
                                                 "max_connections_per_address",
                                                 "handshakes_per_second"};
  return kNewOnly.count(field) == 0;
}

grpc::Status LimitServiceImpl::GetLimits(grpc::ServerContext* context,
                                         const wsgate::v1::GetLimitsRequest* request,
                                         wsgate::v1::GetLimitsResponse* response) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kRead, "wsgate.v1.LimitService/GetLimits");
      !denied.ok()) {
    return denied;
  }
  // Version first (as RouteService.ListRoutes): never newer than what follows.
  response->set_config_version(store_->version());
  const Limits defaults = store_->default_limits();
  *response->mutable_defaults() = defaults;
  auto add = [&](const wsgate::v1::Route& r) {
    wsgate::v1::RouteLimits* out = response->add_routes();
    out->set_route(r.name());
    *out->mutable_configured() = r.limits();
    *out->mutable_effective() = EffectiveLimits(r, defaults);
  };
  if (!request->route().empty()) {
    absl::StatusOr<wsgate::v1::Route> route = store_->GetRoute(request->route());
    if (!route.ok()) return ToGrpcStatus(route.status());
    add(*route);
    return grpc::Status::OK;
  }
  for (const wsgate::v1::Route& r : store_->ListRoutes()) add(r);
  return grpc::Status::OK;
}

grpc::Status LimitServiceImpl::UpdateLimits(grpc::ServerContext* context,
                                            const wsgate::v1::UpdateLimitsRequest* request,
                                            wsgate::v1::UpdateLimitsResponse* response) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kWrite, "wsgate.v1.LimitService/UpdateLimits");
      !denied.ok()) {
    return denied;
  }
  // The mask's paths are Limits field names; "limits.<name>" is accepted too.
  const auto* desc = Limits::descriptor();
  std::vector<const FieldDescriptor*> fields;
  for (const std::string& path : request->update_mask().paths()) {
    std::string name = path.rfind("limits.", 0) == 0 ? path.substr(7) : path;
    const FieldDescriptor* f = desc->FindFieldByName(name);
    if (f == nullptr) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("update_mask: unknown field '", path, "' (Limits fields: ",
                                       absl::StrJoin(LimitFieldNames(), ", "), ")"));
    }
    fields.push_back(f);
  }
  const Limits& requested = request->limits();
  auto modify = [&](const Limits& current) -> absl::StatusOr<Limits> {
    if (fields.empty()) return requested;  // no mask: replace them all
    Limits out = current;
    for (const FieldDescriptor* f : fields) CopyField(requested, &out, f);
    return out;
  };
  absl::StatusOr<ConfigStore::LimitsChange> change = store_->UpdateLimits(request->route(), modify);
  if (!change.ok()) return ToGrpcStatus(change.status());
  *response->mutable_limits() = change->after;
  response->set_config_version(change->config_version);
  std::vector<std::string> changed;
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* f = desc->field(i);
    if (!FieldDiffers(change->before, change->after, f)) continue;
    changed.push_back(f->name());
    if (AppliesToOpenConnections(f->name())) {
      response->add_applied_to_open_connections(f->name());
    } else {
      response->add_applied_to_new_connections_only(f->name());
    }
  }
  spdlog::info("limits of {} updated (config version {}): {}",
               request->route().empty() ? std::string("the defaults")
                                        : absl::StrCat("route ", request->route()),
               change->config_version,
               changed.empty() ? "no change" : absl::StrJoin(changed, ", "));
  return grpc::Status::OK;
}

}  // namespace wsgate::controlplane
