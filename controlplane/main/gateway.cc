#include "controlplane/main/gateway.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/health_state.h"
#include "common/log.h"
#include "common/tls/certificate_mirror.h"
#include "common/tls/certificate_reloader.h"
#include "common/tls/server_certificate.h"
#include "controlplane/admin/admin_server.h"
#include "controlplane/admin/connect_handler.h"
#include "controlplane/auth/token_auth.h"
#include "controlplane/config/config_loader.h"
#include "controlplane/config/config_store.h"
#include "controlplane/config/config_validator.h"
#include "controlplane/config/redis_store.h"
#include "controlplane/grpc/grpc_server.h"
#include "controlplane/grpc/inventory_service.h"
#include "controlplane/grpc/limit_service.h"
#include "controlplane/grpc/route_service.h"
#include "controlplane/grpc/session_service.h"
#include "controlplane/main/settings.h"
#include "controlplane/metrics/fanout_collector.h"
#include "controlplane/metrics/stats_collector.h"
#include "controlplane/metrics/store_collector.h"
#include "controlplane/metrics/tls_collector.h"
#include "controlplane/sync/dataplane_role.h"
#include "controlplane/sync/sync_server.h"
#include "dataplane/data_plane.h"
#include "dataplane/stats/route_stats.h"

#ifndef WSGATE_VERSION
#define WSGATE_VERSION "dev"
#endif

namespace wsgate::controlplane {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr auto kDrainPoll = std::chrono::milliseconds(50);
// While a drain is paced: how often the next closes are handed out (10 ms: 10 per step at the
// default 1000/s).
constexpr auto kDrainPaceStep = std::chrono::milliseconds(10);
constexpr auto kStopDeadline = std::chrono::seconds(5);
constexpr auto kGrpcShutdownDeadline = std::chrono::seconds(2);
// --role=controlplane: the gRPC thread cap (one thread per connected data plane, plus the calls).
constexpr int kControlPlaneGrpcThreads = 1024;

// How often the control-plane certificate files are read again for a rotation nobody signals
// (a Kubernetes Secret update); SIGHUP reads them at once.
constexpr unsigned kCertificatePollSeconds = 5;
// How often gRPC reads the mirror (three small local files).
constexpr unsigned kGrpcCertificateRefreshSeconds = 1;

common::tls::ServerTlsFiles ControlTlsFiles(const Settings& s) {
  common::tls::ServerTlsFiles files;
  files.cert_file = s.control_tls_cert;
  files.key_file = s.control_tls_key;
  files.client_ca_file = s.control_client_ca;
  files.cert_field = s.control_tls_cert_source;
  files.key_field = s.control_tls_key_source;
  files.client_ca_field = s.control_client_ca_source;
  return files;
}

// The control plane's certificate, key and client CA, read and checked (no TLS configured: null).
absl::StatusOr<common::tls::ServerCertificatePtr> LoadControlTls(const Settings& s) {
  if (s.control_tls_cert.empty()) return common::tls::ServerCertificatePtr();
  return common::tls::ServerCertificate::Load(ControlTlsFiles(s));
}

int CheckConfig(const std::string& path, const CliFlags& flags) {
  absl::StatusOr<wsgate::v1::Config> config = LoadConfigFile(path);
  if (!config.ok()) {
    // The loader's errors already start with the path.
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return kExitFailure;
  }
  if (absl::Status status = ValidateConfig(*config); !status.ok()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), std::string(status.message()).c_str());
    return kExitFailure;
  }
  // The settings the file and the flags make, and the files they name (the TLS certificates).
  absl::StatusOr<Settings> settings =
      ResolveSettings(flags, config->server(), ProcessEnvironment(), 1);
  if (!settings.ok()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(),
                 std::string(settings.status().message()).c_str());
    return kExitFailure;
  }
  if (absl::StatusOr<common::tls::ServerCertificatePtr> tls = LoadControlTls(*settings);
      !tls.ok()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), std::string(tls.status().message()).c_str());
    return kExitFailure;
  }
  std::printf("%s: ok\n", path.c_str());
  return kExitOk;
}

// The admin UI installed beside the binary: <dir of wsgate>/admin-ui.
std::string DefaultUiDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "admin-ui";
  return (exe.parent_path() / "admin-ui").string();
}

int64_t ActiveConnections(const dataplane::StatsRegistry& stats) {
  int64_t total = 0;
  stats.ForEach([&](const dataplane::RouteStats& rs) { total += rs.Fold().connections_active; });
  return total;
}

// Waits up to `timeout` for one of `signals`; returns the signal number, or 0 on timeout.
int WaitForSignal(const sigset_t& signals, std::chrono::nanoseconds timeout) {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  timespec ts{static_cast<time_t>(secs.count()), static_cast<long>((timeout - secs).count())};
  for (;;) {
    const int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;
    // EINTR: another signal interrupted the wait; retry with the full timeout (a rare event,
    // and the callers only use this to pace a loop).
  }
}

int WaitForSignal(const sigset_t& signals) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) == 0) return sig;
  }
}

// Everything that runs while the gateway serves, torn down in reverse order of start.
// Not thread-safe: owned and driven by the main thread (the components it holds run their own
// threads).
class Gateway {
 public:
  Gateway(Settings settings, std::string state_dir)
      : settings_(std::move(settings)),
        state_dir_(std::move(state_dir)),
        stats_(settings_.workers) {}

  ~Gateway() { Stop(); }

  // Returns the exit code to use on failure, with the error already logged.
  // `demo`: `config` is DemoConfig, whose proxy-echo upstream is this process's bound data port.
  int Start(const wsgate::v1::Config& config, bool demo) {
    // First: a bad certificate file must stop the start before anything listens.
    absl::StatusOr<common::tls::ServerCertificatePtr> control_tls = LoadControlTls(settings_);
    if (!control_tls.ok()) {
      spdlog::error("cannot start: {}", std::string(control_tls.status().message()));
      return kExitUsage;
    }
    control_tls_ = *std::move(control_tls);
    if (control_tls_) {
      tls_expiry_.Set("control", control_tls_->not_after_unix());
      spdlog::info("control plane: TLS on the gRPC and admin ports with {} ({}, expires at {}){}",
                   settings_.control_tls_cert, control_tls_->subject(),
                   control_tls_->not_after_unix(),
                   control_tls_->requires_client_certificate()
                       ? absl::StrCat("; client certificates required (CA ",
                                      settings_.control_client_ca, ")")
                       : std::string());
    } else {
      spdlog::warn("no --control-tls-cert: the gRPC and admin ports speak plaintext");
    }
    if (settings_.role == "dataplane") return StartDataPlaneRole();
    absl::StatusOr<std::unique_ptr<ConfigStore>> store = OpenStore(config);
    if (!store.ok()) {
      spdlog::error("cannot start: {}", std::string(store.status().message()));
      return kExitFailure;
    }
    store_ = *std::move(store);

    if (settings_.role == "controlplane") {
      StartSyncServer();
    } else {
      if (int code = StartLocalDataPlane(store_->snapshot()); code != kExitOk) return code;
      // From here on every accepted change reaches the workers; nothing could change the store
      // before this line because the gRPC server does not exist yet.
      store_->SetListener(
          [dp = data_plane_.get()](dataplane::SnapshotPtr s) { dp->ApplySnapshot(std::move(s)); });
      if (demo && settings_.port == 0) AddDemoProxyOnBoundPort();
    }

    collector_ = std::make_unique<StatsCollector>(
        &stats_,
        [dp = data_plane_.get(), store = store_.get()] {
          return dp != nullptr ? dp->applied_version() : store->version();
        },
        WSGATE_VERSION);
    if (data_plane_) {
      fanout_collector_ = std::make_unique<FanoutCollector>(data_plane_.get(), &stats_);
    }
    tls_collector_ = std::make_unique<TlsCollector>(&tls_expiry_);
    store_collector_ = std::make_unique<StoreCollector>(
        store_->store_kind(), [store = store_.get()] { return store->store_up(); });
    if (!settings_.admin_token_file.empty()) {
      absl::StatusOr<TokenTable> tokens = TokenTable::Load(settings_.admin_token_file);
      if (!tokens.ok()) {
        spdlog::error("cannot start: --admin-token-file {}",
                      std::string(tokens.status().message()));
        return kExitUsage;
      }
      tokens_ = std::make_unique<TokenTable>(*std::move(tokens));
      spdlog::info("control plane: {} bearer tokens from {}; gRPC and the admin API need one",
                   tokens_->size(), settings_.admin_token_file);
    } else {
      spdlog::warn("no --admin-token-file: the gRPC and admin APIs are open to anyone who can "
                   "reach their ports");
    }
    connect_ = std::make_unique<ConnectHandler>(tokens_.get());
    AdminRoutes admin_routes = StandardAdminRoutes(
        &health_, [c = collector_.get(), f = fanout_collector_.get(), k = connect_->collector(),
                   t = tls_collector_.get(), st = store_collector_.get(),
                   sync = sync_server_.get()] {
          // The one-process order (c, f, k, t, st) unchanged; a control plane has no f.
          std::vector<const prometheus::Collectable*> all{c};
          if (f != nullptr) all.push_back(f);
          all.push_back(k);
          all.push_back(t);
          all.push_back(st);
          if (sync != nullptr) all.push_back(sync->metrics());
          return SerializeMetrics(all);
        });
    connect_->Register(admin_routes);
    const std::string ui_dir =
        settings_.admin_ui_dir.empty() ? DefaultUiDir() : settings_.admin_ui_dir;
    if (absl::StatusOr<StaticFiles> ui = StaticFiles::Load(ui_dir); ui.ok()) {
      spdlog::info("admin UI: {} files from {}", ui->size(), ui_dir);
      admin_routes.SetStaticFiles(*std::move(ui));
    } else if (!settings_.admin_ui_dir.empty()) {
      spdlog::error("cannot start: --admin-ui-dir {}", std::string(ui.status().message()));
      return kExitUsage;
    } else {
      spdlog::warn("admin UI not served: {} (run make build)", std::string(ui.status().message()));
    }
    if (int code = StartAdmin(std::move(admin_routes)); code != kExitOk) return code;

    route_service_ = std::make_unique<RouteServiceImpl>(store_.get());
    limit_service_ = std::make_unique<LimitServiceImpl>(store_.get());
    inventory_service_ = std::make_unique<InventoryServiceImpl>(
        store_.get(), data_plane_.get(), &stats_, WSGATE_VERSION,
        [this] { return stats_.LimitHits(); });
    route_service_->RequireTokens(tokens_.get());
    limit_service_->RequireTokens(tokens_.get());
    inventory_service_->RequireTokens(tokens_.get());
    std::vector<grpc::Service*> services{route_service_.get(), inventory_service_.get(),
                                         limit_service_.get()};
    if (data_plane_) {
      // Sessions live on the data planes: a control plane alone has none to serve (the session
      // commands over the Sync stream are not built yet).
      session_service_ = std::make_unique<SessionServiceImpl>(data_plane_.get());
      session_service_->RequireTokens(tokens_.get());
      services.push_back(session_service_.get());
    }
    if (sync_server_) {
      sync_server_->RequireTokens(tokens_.get());
      store_->SetListener([sync = sync_server_.get(), store = store_.get()](
                              dataplane::SnapshotPtr s) {
        // Called with the change's lock held, so the store reads that version.
        sync->Publish(MakeConfigSnapshot(store->ListRoutes(), store->default_limits(),
                                         s->version));
      });
      sync_server_->Publish(
          MakeConfigSnapshot(store_->ListRoutes(), store_->default_limits(), store_->version()));
      inventory_service_->ReportDataPlanes(
          [sync = sync_server_.get()](wsgate::v1::Inventory* inv) { sync->FillInventory(inv); });
      services.push_back(sync_server_.get());
    }
    GrpcServerOptions grpc_options;
    grpc_options.listen_address = settings_.grpc_listen_address;
    grpc_options.port = settings_.grpc_port;
    grpc_options.tokens = tokens_.get();
    grpc_options.tls = control_tls_;
    // Each data plane's Sync stream holds a gRPC thread for its life (the sync API), and a
    // control plane has no data-plane workers to protect: room for many data planes.
    if (sync_server_) grpc_options.max_threads = kControlPlaneGrpcThreads;
    if (control_tls_) {
      // gRPC reads its certificate files itself, and would take a bad rotation as it comes; it
      // reads a private mirror that holds only pairs that loaded (certificate_mirror.h).
      std::error_code ec;
      const std::string tmp = std::filesystem::temp_directory_path(ec).string();
      absl::StatusOr<std::unique_ptr<common::tls::CertificateMirror>> mirror =
          common::tls::CertificateMirror::Create(ec ? "/tmp" : tmp, *control_tls_);
      if (!mirror.ok()) {
        spdlog::error("cannot start: {}", std::string(mirror.status().message()));
        return kExitFailure;
      }
      control_mirror_ = *std::move(mirror);
      grpc_options.tls_files.key_file = control_mirror_->key_path();
      grpc_options.tls_files.cert_file = control_mirror_->cert_path();
      grpc_options.tls_files.client_ca_file = control_mirror_->ca_path();
      grpc_options.tls_refresh_seconds = kGrpcCertificateRefreshSeconds;
    }
    absl::StatusOr<std::unique_ptr<GrpcServer>> grpc =
        GrpcServer::Start(grpc_options, services);
    if (!grpc.ok()) {
      spdlog::error("cannot start: {}", std::string(grpc.status().message()));
      return kExitFailure;
    }
    grpc_ = *std::move(grpc);
    connect_->Attach(grpc_->InProcessChannel());
    if (control_tls_) {
      // A pair that loaded goes to the admin port at once and to gRPC through its mirror (within
      // kGrpcCertificateRefreshSeconds); connections already open keep theirs.
      control_reloader_ = std::make_unique<common::tls::CertificateReloader>(
          "control", ControlTlsFiles(settings_), control_tls_,
          [this](const common::tls::ServerCertificatePtr& cert) {
            if (absl::Status s = control_mirror_->Publish(*cert); !s.ok()) {
              spdlog::error("control certificate: gRPC keeps the one in use: {}",
                            std::string(s.message()));
            }
            admin_->SetCertificate(cert);
            tls_expiry_.Set("control", cert->not_after_unix());
          });
      control_reloader_->StartPolling(std::chrono::seconds(kCertificatePollSeconds));
    }

    health_.set_ready(true);
    if (!data_plane_) {
      spdlog::info(
          "wsgate ready (control plane): admin port {}, grpc port {}, config version {}, {} "
          "routes (from {}); data planes dial DataPlaneService.Sync",
          admin_->port(), grpc_->port(), store_->version(), store_->snapshot()->routes.size(),
          store_->origin());
      return kExitOk;
    }
    spdlog::info(
        "wsgate ready: data port {}, admin port {}, grpc port {}, {} workers, config version {}, "
        "{} routes (from {})",
        data_plane_->port(), admin_->port(), grpc_->port(), data_plane_->workers(),
        store_->version(), store_->snapshot()->routes.size(), store_->origin());
    return kExitOk;
  }

  // SIGTERM/SIGINT: not ready, stop accepting, let clients finish for the grace period (or
  // until none is left; a second signal cuts it short), close the rest with 1001, stop. With a
  // drain close rate, closing starts when what is left needs the rest of the grace period at that
  // rate, so that clients reconnect spread out rather than in one herd.
  void Drain(const sigset_t& signals) {
    draining_.store(true);
    if (dataplane_role_) dataplane_role_->Stop();
    health_.set_ready(false);
    if (grpc_) grpc_->SetServing(false);
    if (!data_plane_) return;
    data_plane_->StopAccepting();
    using Clock = std::chrono::steady_clock;
    const auto grace = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(settings_.shutdown_grace_seconds));
    const auto grace_end = Clock::now() + grace;
    const double rate = static_cast<double>(settings_.drain_close_rate);
    spdlog::info("shutting down: {} client connections, grace period {} s, {} closes/s",
                 ActiveConnections(stats_), settings_.shutdown_grace_seconds,
                 settings_.drain_close_rate);
    std::optional<Clock::time_point> pacing_since;
    int64_t paced = 0;  // closes asked for since pacing began
    while (ActiveConnections(stats_) > 0) {
      const auto now = Clock::now();
      const auto left = grace_end - now;
      if (left <= Clock::duration::zero()) break;
      if (rate > 0 && !pacing_since) {
        const double needed = static_cast<double>(ActiveConnections(stats_)) / rate;
        const double poll = std::chrono::duration<double>(kDrainPoll).count();
        if (needed + poll >= std::chrono::duration<double>(left).count()) {
          pacing_since = now;
          spdlog::info("closing {} client connections with 1001 at {} per second",
                       ActiveConnections(stats_), settings_.drain_close_rate);
        }
      }
      if (pacing_since) {
        const double elapsed = std::chrono::duration<double>(now - *pacing_since).count();
        const int64_t due = static_cast<int64_t>(elapsed * rate) + 1 - paced;
        if (due > 0) {
          data_plane_->CloseSome(static_cast<size_t>(due), 1001, "server shutting down");
          paced += due;
        }
      }
      const auto step = pacing_since ? kDrainPaceStep : kDrainPoll;
      const int sig = WaitForSignal(signals, std::min<std::chrono::nanoseconds>(left, step));
      if (sig == SIGHUP) {
        Reload();
      } else if (sig != 0) {
        spdlog::warn("second signal: ending the grace period now");
        break;
      }
    }
    const int64_t left = ActiveConnections(stats_);
    if (left > 0) spdlog::info("closing {} client connections with 1001", left);
    StopDataPlane();
  }

  // SIGHUP: the certificate files are read again now (a bad one is logged, the old one serves).
  void Reload() {
    if (!control_reloader_) {
      spdlog::info("SIGHUP: no certificate to reload");
      return;
    }
    control_reloader_->Check();
  }

  void Stop() {
    control_reloader_.reset();  // its subscriber calls admin_
    health_.set_ready(false);
    if (data_plane_ && !data_plane_stopped_) {
      // Reached without Drain only on a failed start: nothing was serving clients yet.
      data_plane_->StopAccepting();
      StopDataPlane();
    }
    if (dataplane_role_) dataplane_role_->Stop();
    if (session_service_) session_service_->EndWatches();
    if (sync_server_) sync_server_->Shutdown();
    // The Connect calls in flight end before the server they call and the admin loop they answer
    // on go away.
    if (connect_) connect_->Shutdown(kGrpcShutdownDeadline);
    if (grpc_) grpc_->Shutdown(std::chrono::system_clock::now() + kGrpcShutdownDeadline);
    // A call that outlived the first wait has now been ended by the server's shutdown; wait for
    // it again so that it is released here, while the admin loop its reply writes through still
    // exists, and not later in ~ConnectHandler.
    if (connect_) connect_->Shutdown(kGrpcShutdownDeadline);
    if (admin_) admin_->Stop();
    grpc_.reset();
    admin_.reset();
    // The data plane holds connections that point into stats_, and the store's listener points
    // at the data plane: drop the data plane before the store forgets it, and stop the changes
    // other replicas make from reaching it first.
    if (store_) store_->StopWatching();
    dataplane_role_.reset();
    data_plane_.reset();
  }

 private:
  // The admin port (both roles), with the control-plane certificate when there is one.
  int StartAdmin(AdminRoutes routes) {
    AdminServerOptions admin_options;
    admin_options.listen_address = settings_.listen_address;
    admin_options.port = settings_.admin_port;
    admin_options.tls = control_tls_;
    absl::StatusOr<std::unique_ptr<AdminServer>> admin =
        AdminServer::Start(admin_options, std::move(routes));
    if (!admin.ok()) {
      spdlog::error("cannot start: {}", std::string(admin.status().message()));
      return kExitFailure;
    }
    admin_ = *std::move(admin);
    return kExitOk;
  }

  // --role=controlplane: no local data plane; committed versions go to the data planes' streams.
  // Its tokens are set once they are loaded, before the gRPC server starts.
  void StartSyncServer() { sync_server_ = std::make_unique<SyncServer>(); }

  int StartLocalDataPlane(dataplane::SnapshotPtr initial) {
    dataplane::DataPlaneOptions dp_options;
    dp_options.listen_address = settings_.listen_address;
    dp_options.port = settings_.port;
    dp_options.workers = settings_.workers;
    dp_options.redis_url = settings_.redis_url;
    dp_options.max_connections = settings_.max_connections;
    dp_options.pubsub_ping_interval = settings_.ws_ping_interval;
    dp_options.pubsub_ping_timeout = settings_.ws_ping_timeout;
    dp_options.debug_events = settings_.websocket_debug;
    absl::StatusOr<std::unique_ptr<dataplane::DataPlane>> dp =
        dataplane::DataPlane::Start(dp_options, std::move(initial), &stats_, &health_);
    if (!dp.ok()) {
      spdlog::error("cannot start the data plane on port {}: {}", settings_.port,
                    std::string(dp.status().message()));
      return kExitFailure;
    }
    data_plane_ = *std::move(dp);
    // Before the admin server starts, which reads it from its own thread.
    health_.set_bus_down_probe([dp = data_plane_.get()] {
      const dataplane::bus::MessageBus* bus = dp->message_bus();
      return bus != nullptr && !bus->up();
    });
    return kExitOk;
  }

  // --role=dataplane: the WebSocket listener and the admin port (/metrics, /health, /ready), no
  // store and no gRPC services; routes come from the control plane (controlplane/sync).
  int StartDataPlaneRole() {
    DataPlaneRoleOptions role_options;
    role_options.control_plane = settings_.control_plane;
    role_options.token_file = settings_.dataplane_token_file;
    role_options.id = settings_.dataplane_id;
    role_options.listen_address = settings_.listen_address;
    role_options.build_version = WSGATE_VERSION;
    role_options.state_dir = state_dir_;
    role_options.control_plane_ca = settings_.control_plane_ca;
    role_options.client_certificate = control_tls_;
    absl::StatusOr<std::unique_ptr<DataPlaneRole>> role =
        DataPlaneRole::Prepare(role_options, &stats_);
    if (!role.ok()) {
      spdlog::error("cannot start: {}", std::string(role.status().message()));
      return absl::IsInvalidArgument(role.status()) ? kExitUsage : kExitFailure;
    }
    dataplane_role_ = *std::move(role);
    if (int code = StartLocalDataPlane(dataplane_role_->initial_snapshot()); code != kExitOk) {
      return code;
    }
    dataplane_role_->Start(data_plane_.get(), [this] {
      if (!draining_.load()) health_.set_ready(true);
    });
    collector_ = std::make_unique<StatsCollector>(
        &stats_, [dp = data_plane_.get()] { return dp->applied_version(); }, WSGATE_VERSION);
    fanout_collector_ = std::make_unique<FanoutCollector>(data_plane_.get(), &stats_);
    tls_collector_ = std::make_unique<TlsCollector>(&tls_expiry_);
    AdminRoutes admin_routes = StandardAdminRoutes(
        &health_, [c = collector_.get(), f = fanout_collector_.get(), t = tls_collector_.get(),
                   r = dataplane_role_->metrics()] { return SerializeMetrics({c, f, t, r}); });
    if (int code = StartAdmin(std::move(admin_routes)); code != kExitOk) return code;
    // Ready at once with a cached snapshot (static stability); else once the first one applies.
    if (dataplane_role_->has_snapshot() && !draining_.load()) health_.set_ready(true);
    spdlog::info("wsgate ready (data plane): data port {}, admin port {}, {} workers, {}",
                 data_plane_->port(), admin_->port(), data_plane_->workers(),
                 dataplane_role_->has_snapshot()
                     ? absl::StrCat("cached config version ", dataplane_role_->initial_version())
                     : std::string("no config until the control plane answers (/ready 503)"));
    return kExitOk;
  }

  // The Redis store when --store-url is set (unreachable at start: refuse to start, like a
  // proxy whose config source is down), else the state file or memory.
  absl::StatusOr<std::unique_ptr<ConfigStore>> OpenStore(const wsgate::v1::Config& config) {
    if (settings_.store_url.empty()) return ConfigStore::Open(config, state_dir_, &stats_);
    absl::StatusOr<std::unique_ptr<StoreBackend>> redis =
        MakeRedisStoreBackend(settings_.store_url);
    if (!redis.ok()) return redis.status();
    return ConfigStore::Open(config, *std::move(redis), &stats_);
  }

  // With --port 0 the demo has no proxy-echo route (no upstream could name port 0); now that the
  // data plane has bound, add it with the real port (one config version, before gRPC serves).
  // Routes from a state file are left as they were persisted.
  void AddDemoProxyOnBoundPort() {
    if (store_->origin() != "configuration") return;
    const wsgate::v1::Config demo =
        DemoConfig(settings_.listen_address, data_plane_->port());
    for (const wsgate::v1::Route& route : demo.routes()) {
      if (route.name() != "proxy-echo") continue;
      if (auto put = store_->PutRoute(route, 0); !put.ok()) {
        spdlog::warn("demo route proxy-echo not added: {}", std::string(put.status().message()));
      }
    }
  }

  void StopDataPlane() {
    data_plane_->CloseAll(1001, "server shutting down");
    data_plane_->Stop(std::chrono::steady_clock::now() + kStopDeadline);
    data_plane_stopped_ = true;
  }

  const Settings settings_;
  const std::string state_dir_;
  // Declaration order is destruction order in reverse: the stats outlive everything that counts
  // into them, and the store outlives the services that call it.
  dataplane::StatsRegistry stats_;
  common::HealthState health_;
  std::unique_ptr<ConfigStore> store_;
  std::unique_ptr<dataplane::DataPlane> data_plane_;
  bool data_plane_stopped_ = false;
  std::unique_ptr<StatsCollector> collector_;
  std::unique_ptr<FanoutCollector> fanout_collector_;  // wsgate_bus_*, wsgate_room_members
  common::tls::ServerCertificatePtr control_tls_;      // null: plaintext control ports
  common::tls::ExpiryBoard tls_expiry_;
  std::unique_ptr<TlsCollector> tls_collector_;  // wsgate_tls_certificate_expiry_*
  std::unique_ptr<common::tls::CertificateMirror> control_mirror_;      // null: no TLS
  std::unique_ptr<common::tls::CertificateReloader> control_reloader_;  // null: no TLS
  std::unique_ptr<StoreCollector> store_collector_;  // wsgate_config_store_up
  std::unique_ptr<TokenTable> tokens_;  // null: open
  std::unique_ptr<ConnectHandler> connect_;  // outlives admin_, whose routes call it
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<RouteServiceImpl> route_service_;
  std::unique_ptr<LimitServiceImpl> limit_service_;
  std::unique_ptr<InventoryServiceImpl> inventory_service_;
  std::unique_ptr<SessionServiceImpl> session_service_;
  std::unique_ptr<GrpcServer> grpc_;
  // Split deployment (null in --role=all): the control plane's stream server, the data plane's
  // stream client and cache.
  std::unique_ptr<SyncServer> sync_server_;
  std::unique_ptr<DataPlaneRole> dataplane_role_;
  std::atomic<bool> draining_{false};
};

}  // namespace

int RunWsgate(int argc, char** argv) {
  CliParseResult cli = ParseCommandLine(argc, argv, WSGATE_VERSION);
  if (!cli.flags) return cli.exit_code;
  const CliFlags& flags = *cli.flags;

  const common::LogFormat format =
      flags.log_format == "json" ? common::LogFormat::kJson : common::LogFormat::kText;
  if (absl::Status s = common::InitLogging(format, flags.log_level); !s.ok()) {
    std::fprintf(stderr, "wsgate: %s\n", std::string(s.message()).c_str());
    return kExitUsage;
  }

  if (!flags.check_config_path.empty()) return CheckConfig(flags.check_config_path, flags);

  wsgate::v1::Config config;
  const bool demo = flags.config_path.empty();
  if (demo) {
    // Its proxy-echo upstream is this process's /echo: known once the settings are (below).
  } else {
    absl::StatusOr<wsgate::v1::Config> loaded = LoadConfigFile(flags.config_path);
    if (!loaded.ok()) {
      spdlog::error("invalid configuration: {}", std::string(loaded.status().message()));
      return kExitUsage;
    }
    config = *std::move(loaded);
  }
  if (absl::Status s = ValidateConfig(config); !s.ok()) {
    spdlog::error("invalid configuration{}: {}",
                  flags.config_path.empty() ? "" : " " + flags.config_path,
                  std::string(s.message()));
    return kExitUsage;
  }
  const unsigned cores = std::thread::hardware_concurrency();
  absl::StatusOr<Settings> settings = ResolveSettings(flags, config.server(), ProcessEnvironment(),
                                                      cores == 0 ? 1 : static_cast<int>(cores));
  if (!settings.ok()) {
    spdlog::error("invalid settings: {}", std::string(settings.status().message()));
    return kExitUsage;
  }
  for (const std::string& warning : settings->warnings) spdlog::warn("{}", warning);
  if (demo) config = DemoConfig(settings->listen_address, settings->port);
  if (flags.state_dir.empty() && settings->store_url.empty()) {
    spdlog::warn("no --state-dir: route changes made over gRPC are not persisted");
  }

  // Before any thread exists, so that every thread inherits the mask and the signals are only
  // ever delivered to this thread's sigwait. SIGPIPE: a peer that vanished mid-write is an error
  // code on that socket, never a reason to die.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Gateway gateway(*std::move(settings), flags.state_dir);
  if (int code = gateway.Start(config, demo); code != kExitOk) return code;

  int sig = WaitForSignal(signals);
  for (; sig == SIGHUP; sig = WaitForSignal(signals)) gateway.Reload();
  spdlog::info("{} received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  gateway.Drain(signals);
  gateway.Stop();
  spdlog::info("wsgate stopped");
  return kExitOk;
}

}  // namespace wsgate::controlplane
