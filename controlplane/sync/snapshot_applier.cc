#include "controlplane/sync/snapshot_applier.h"

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "controlplane/config/file_io.h"
#include "controlplane/config/route_translator.h"
#include "controlplane/config/snapshot_builder.h"

namespace wsgate::controlplane {
namespace {

// Translates every route; `previous` holds the routes of the last good snapshot by name, whose
// unchanged ones are rebuilt rather than admitted again.
absl::StatusOr<dataplane::SnapshotPtr> Build(const wsgate::v1::ConfigSnapshot& snapshot,
                                             const std::map<std::string, std::string>& previous,
                                             dataplane::StatsRegistry* stats) {
  const wsgate::v1::Config& config = snapshot.config();
  std::vector<std::shared_ptr<dataplane::RouteConfig>> routes;
  routes.reserve(config.routes_size());
  for (int i = 0; i < config.routes_size(); ++i) {
    const wsgate::v1::Route& route = config.routes(i);
    auto it = previous.find(route.name());
    const bool unchanged = it != previous.end() && it->second == route.SerializeAsString();
    auto t = TranslateRoute(route, absl::StrCat("routes[", i, "]"), config.default_limits(),
                            unchanged ? UnreadableFiles::kFailClosed : UnreadableFiles::kRefuse);
    if (!t.ok()) return t.status();
    routes.push_back(std::move(t->config));
  }
  return MakeSnapshot(std::move(routes), snapshot.version(), stats);
}

}  // namespace

std::string SnapshotCachePath(const std::string& state_dir) {
  return state_dir + "/snapshot.json";
}

absl::StatusOr<std::optional<CachedSnapshot>> LoadCachedSnapshot(const std::string& state_dir,
                                                                 dataplane::StatsRegistry* stats) {
  if (state_dir.empty()) return std::nullopt;
  const std::string path = SnapshotCachePath(state_dir);
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return std::nullopt;
    return text.status();
  }
  CachedSnapshot cached;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // a cache written by a newer build still serves
  if (auto s = google::protobuf::util::JsonStringToMessage(*text, &cached.proto, options);
      !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": not a config snapshot: ", s.message().as_string()));
  }
  // Admission would refuse an unreadable file; a cached route was admitted before, so rebuild it
  // the lenient way by naming every route as unchanged.
  std::map<std::string, std::string> all;
  for (const wsgate::v1::Route& r : cached.proto.config().routes()) {
    all[r.name()] = r.SerializeAsString();
  }
  absl::StatusOr<dataplane::SnapshotPtr> runtime = Build(cached.proto, all, stats);
  if (!runtime.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": ", runtime.status().message()));
  }
  cached.runtime = *std::move(runtime);
  struct stat st {};
  cached.written_at = ::stat(path.c_str(), &st) == 0
                          ? std::chrono::system_clock::from_time_t(st.st_mtime)
                          : std::chrono::system_clock::now();
  return std::optional<CachedSnapshot>(std::move(cached));
}

SnapshotApplier::SnapshotApplier(dataplane::DataPlane* data_plane,
                                 dataplane::StatsRegistry* stats, std::string state_dir,
                                 std::optional<wsgate::v1::ConfigSnapshot> last_good)
    : data_plane_(data_plane),
      stats_(stats),
      state_dir_(std::move(state_dir)),
      last_good_(std::move(last_good)) {
  if (last_good_) serving_version_.store(last_good_->version());
}

absl::Status SnapshotApplier::Apply(const wsgate::v1::ConfigSnapshot& snapshot) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, std::string> previous;
  if (last_good_) {
    for (const wsgate::v1::Route& r : last_good_->config().routes()) {
      previous[r.name()] = r.SerializeAsString();
    }
  }
  absl::StatusOr<dataplane::SnapshotPtr> built = Build(snapshot, previous, stats_);
  if (!built.ok()) return built.status();
  data_plane_->ApplySnapshot(*std::move(built));
  last_good_ = snapshot;
  serving_version_.store(snapshot.version());
  if (!state_dir_.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(state_dir_, ec);  // a failure shows in the write below
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    if (auto s = google::protobuf::util::MessageToJsonString(snapshot, &json, options); !s.ok()) {
      spdlog::error("snapshot cache: cannot encode version {}: {}", snapshot.version(),
                    s.message().as_string());
    } else if (absl::Status w = WriteFileAtomically(SnapshotCachePath(state_dir_), json);
               !w.ok()) {
      spdlog::error("snapshot cache: {} (version {} serves, but a restart would not have it)",
                    std::string(w.message()), snapshot.version());
    }
  }
  return absl::OkStatus();
}

}  // namespace wsgate::controlplane
