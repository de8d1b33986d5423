#include "controlplane/grpc/grpc_server.h"

#include <grpc/support/log.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "controlplane/grpc/access.h"

namespace wsgate::controlplane {
namespace {

void GprToSpdlog(gpr_log_func_args* args) {
  const spdlog::level::level_enum level =
      args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::err
      : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                : spdlog::level::debug;
  spdlog::log(level, "grpc: {} ({}:{})", args->message, args->file, args->line);
}

// Both are process-wide switches that must be thrown before the first ServerBuilder exists.
void InitGrpcOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    grpc::EnableDefaultHealthCheckService(true);
    // Also forces the linker to keep grpc++_reflection (FIELD-NOTES).
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
}

}  // namespace

void RouteGrpcLogsToSpdlog() {
  static std::once_flag once;
  std::call_once(once, [] { gpr_set_log_function(&GprToSpdlog); });
}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const GrpcServerOptions& options, const std::vector<grpc::Service*>& services) {
  InitGrpcOnce();
  RouteGrpcLogsToSpdlog();
  if (options.max_threads < 2) {
    return absl::InvalidArgumentError("grpc max_threads: must be at least 2");
  }

  grpc::ServerBuilder builder;
  // An IPv6 literal needs brackets before the port.
  const std::string host = absl::StrContains(options.listen_address, ':')
                               ? absl::StrCat("[", options.listen_address, "]")
                               : options.listen_address;
  int selected_port = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (options.tls && options.tls_refresh_seconds > 0) {
    auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        options.tls_files.key_file, options.tls_files.cert_file, options.tls_files.client_ca_file,
        options.tls_refresh_seconds);
    grpc::experimental::TlsServerCredentialsOptions tls(provider);
    tls.watch_identity_key_cert_pairs();
    if (options.tls->requires_client_certificate()) {
      tls.watch_root_certs();
      tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    } else {
      tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    }
    credentials = grpc::experimental::TlsServerCredentials(tls);
  } else if (options.tls) {
    grpc::SslServerCredentialsOptions ssl(
        options.tls->requires_client_certificate()
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_root_certs = options.tls->client_ca_pem();
    ssl.pem_key_cert_pairs.push_back(
        {options.tls->private_key_pem(), options.tls->cert_chain_pem()});
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(absl::StrCat(host, ":", options.port), credentials, &selected_port);
  // gRPC sets SO_REUSEPORT by default, which would let a second process "bind" a port that is
  // in use and split the calls between the two. A port in use must be a start-up error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);

  grpc::ResourceQuota quota("wsgate-grpc");
  quota.SetMaxThreads(options.max_threads);
  builder.SetResourceQuota(quota);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  // Two pollers are plenty for a control plane; the rest of the threads run handlers.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                              std::min(2, options.max_threads / 2));

  for (grpc::Service* service : services) builder.RegisterService(service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(MakeAuditInterceptorFactory(options.tokens));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));

  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || selected_port == 0) {
    return absl::UnavailableError(absl::StrCat("grpc port ", options.port, ": cannot listen on ",
                                               host, ":", options.port,
                                               " (in use, or not a local address?)"));
  }
  auto out = std::unique_ptr<GrpcServer>(
      new GrpcServer(std::move(server), static_cast<uint16_t>(selected_port)));
  out->SetServing(true);
  return out;
}

GrpcServer::~GrpcServer() {
  if (!shut_down_) Shutdown(std::chrono::system_clock::now());
}

std::shared_ptr<grpc::Channel> GrpcServer::InProcessChannel() {
  grpc::ChannelArguments args;
  // The Connect handler enforces its own (smaller) body limit before anything reaches gRPC;
  // answers such as a ListSessions page of 1000 sessions can exceed gRPC's 4 MiB default.
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  return server_->InProcessChannel(args);
}

void GrpcServer::SetServing(bool serving) {
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(serving);
  }
}

void GrpcServer::Shutdown(std::chrono::system_clock::time_point deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  SetServing(false);
  server_->Shutdown(deadline);
  server_->Wait();
}

}  // namespace wsgate::controlplane
