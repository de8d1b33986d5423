#include "controlplane/config/snapshot_builder.h"

#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace wsgate::controlplane {

absl::StatusOr<std::vector<std::shared_ptr<dataplane::RouteConfig>>> TranslateRoutes(
    const std::vector<wsgate::v1::Route>& routes, const wsgate::v1::Limits& defaults) {
  std::vector<std::shared_ptr<dataplane::RouteConfig>> out;
  out.reserve(routes.size());
  for (size_t i = 0; i < routes.size(); ++i) {
    auto t = TranslateRoute(routes[i], absl::StrCat("routes[", i, "]"), defaults,
                            UnreadableFiles::kFailClosed);
    if (!t.ok()) return t.status();
    out.push_back(std::move(t->config));
  }
  return out;
}

dataplane::SnapshotPtr MakeSnapshot(std::vector<std::shared_ptr<dataplane::RouteConfig>> routes,
                                    uint64_t version, dataplane::StatsRegistry* stats) {
  std::vector<std::shared_ptr<const dataplane::RouteConfig>> out;
  out.reserve(routes.size());
  std::set<std::string> names;
  for (auto& rc : routes) {
    rc->stats = stats != nullptr ? stats->ForRoute(rc->name) : nullptr;
    names.insert(rc->name);
    out.push_back(std::move(rc));
  }
  // A deleted route's series leave /metrics with it.
  if (stats != nullptr) stats->RetainOnly(names);
  return std::make_shared<const dataplane::Snapshot>(version, std::move(out));
}

absl::StatusOr<dataplane::SnapshotPtr> BuildSnapshot(const std::vector<wsgate::v1::Route>& routes,
                                                     uint64_t version,
                                                     dataplane::StatsRegistry* stats,
                                                     const wsgate::v1::Limits& defaults) {
  auto translated = TranslateRoutes(routes, defaults);
  if (!translated.ok()) return translated.status();
  return MakeSnapshot(*std::move(translated), version, stats);
}

}  // namespace wsgate::controlplane
