#include "controlplane/sync/dataplane_role.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "controlplane/config/file_io.h"
#include "controlplane/config/snapshot_builder.h"

namespace wsgate::controlplane {
namespace {

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

int64_t ActiveConnections(const dataplane::StatsRegistry& stats) {
  int64_t total = 0;
  stats.ForEach([&](const dataplane::RouteStats& rs) { total += rs.Fold().connections_active; });
  return total;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DataPlaneRole>> DataPlaneRole::Prepare(
    DataPlaneRoleOptions options, dataplane::StatsRegistry* stats) {
  std::unique_ptr<DataPlaneRole> role(new DataPlaneRole(std::move(options), stats));
  if (!role->options_.token_file.empty()) {
    absl::StatusOr<std::string> text = ReadFileToString(role->options_.token_file);
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--dataplane-token-file: ", text.status().message()));
    }
    role->token_ = std::string(absl::StripAsciiWhitespace(*text));
    if (role->token_.empty() || role->token_.find_first_of(" \t\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--dataplane-token-file: ", role->options_.token_file, ": want exactly one token"));
    }
  }
  if (!role->options_.control_plane_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadFileToString(role->options_.control_plane_ca);
    if (!ca.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--control-plane-ca: ", ca.status().message()));
    }
    if (ca->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--control-plane-ca '", role->options_.control_plane_ca, "': no PEM certificate in it"));
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *std::move(ca);
    if (const common::tls::ServerCertificatePtr& mine = role->options_.client_certificate) {
      ssl.pem_private_key = mine->private_key_pem();
      ssl.pem_cert_chain = mine->cert_chain_pem();
    }
    role->credentials_ = grpc::SslCredentials(ssl);
  }
  absl::StatusOr<std::optional<CachedSnapshot>> cached =
      LoadCachedSnapshot(role->options_.state_dir, stats);
  if (!cached.ok()) return cached.status();
  role->cached_ = *std::move(cached);
  return role;
}

DataPlaneRole::~DataPlaneRole() { Stop(); }

dataplane::SnapshotPtr DataPlaneRole::initial_snapshot() const {
  if (cached_) return cached_->runtime;
  return MakeSnapshot({}, 0, stats_);
}

void DataPlaneRole::Start(dataplane::DataPlane* data_plane, std::function<void()> on_applied) {
  applier_ = std::make_unique<SnapshotApplier>(
      data_plane, stats_, options_.state_dir,
      cached_ ? std::optional<wsgate::v1::ConfigSnapshot>(cached_->proto) : std::nullopt);
  SyncClientOptions o;
  o.control_plane = options_.control_plane;
  o.token = token_;
  o.credentials = credentials_;
  const std::string host =
      options_.listen_address == "0.0.0.0" || options_.listen_address == "::"
          ? HostName()
          : options_.listen_address;
  o.hello.set_address(absl::StrCat(host, ":", data_plane->port()));
  o.hello.set_id(options_.id.empty() ? absl::StrCat(HostName(), ":", data_plane->port())
                                     : options_.id);
  o.hello.set_build_version(options_.build_version);
  o.hello.set_workers(static_cast<uint32_t>(data_plane->workers()));
  const dataplane::bus::MessageBus* bus = data_plane->message_bus();
  o.hello.set_bus(bus != nullptr ? bus->kind() : "");
  if (cached_) o.snapshot_confirmed_at = cached_->written_at;
  o.inventory = [this, data_plane, bus_kind = o.hello.bus()] {
    wsgate::v1::Inventory inv;
    inv.set_config_version(applier_->serving_version());
    inv.set_active_connections(static_cast<uint64_t>(ActiveConnections(*stats_)));
    inv.set_workers(static_cast<uint32_t>(data_plane->workers()));
    inv.set_build_version(options_.build_version);
    inv.set_bus(bus_kind);
    return inv;
  };
  o.on_applied = std::move(on_applied);
  spdlog::info("data plane {}: control plane {}{}{}; serving {}", o.hello.id(), o.control_plane,
               credentials_ ? " over TLS" : " in plaintext (no --control-plane-ca)",
               token_.empty() ? " (no --dataplane-token-file)" : "",
               cached_ ? absl::StrCat("cached config version ", cached_->proto.version(), " from ",
                                      SnapshotCachePath(options_.state_dir))
                       : std::string("nothing until the control plane answers"));
  client_ = std::make_unique<SyncClient>(std::move(o), applier_.get());
  client_->Start();
}

void DataPlaneRole::Stop() {
  if (client_) client_->Stop();
}

}  // namespace wsgate::controlplane
