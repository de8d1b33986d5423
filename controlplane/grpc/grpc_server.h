// The control plane's gRPC server: our services, grpc.health.v1.Health and server reflection on
// one port, on a thread pool capped so that gRPC cannot starve the data-plane workers.
#pragma once

#include <grpcpp/impl/codegen/service_type.h>
#include <grpcpp/server.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tls/server_certificate.h"
#include "controlplane/auth/token_auth.h"

namespace wsgate::controlplane {

struct GrpcServerOptions {
  std::string listen_address = "0.0.0.0";
  uint16_t port = 50051;  // 0: pick a free port (see GrpcServer::port())
  // Upper bound on the threads gRPC may create for this server (pollers + handlers). Calls
  // beyond it are refused with RESOURCE_EXHAUSTED rather than taking a core from the workers.
  // A thread blocked in a stream's Read (grpcurl holds its reflection stream open for the whole
  // of a call, WatchSessions included) costs memory, not CPU: 16 leaves room for a dozen such
  // clients while still bounding what gRPC can take.
  int max_threads = 16;
  // Bearer tokens the services check (null: open); the audit interceptor names callers from it.
  // Must outlive the server.
  const TokenTable* tokens = nullptr;
  // TLS on the port (null: plaintext); with a client CA in it, mutual TLS: calls without a
  // client certificate that chains to it fail the handshake.
  common::tls::ServerCertificatePtr tls;
  // With TLS and a non-zero interval, gRPC re-reads the files `tls` was loaded from at that
  // interval and serves what they hold from then on (a key that does not match its certificate
  // is skipped by gRPC, the old pair keeps serving). 0: the certificate in `tls`, for the
  // server's life.
  common::tls::ServerTlsFiles tls_files;
  unsigned tls_refresh_seconds = 0;
};

// Start, SetServing and Shutdown may be called from any thread; Shutdown once.
class GrpcServer {
 public:
  // The services must outlive the server. Error (naming the port): the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const GrpcServerOptions& options, const std::vector<grpc::Service*>& services);
  ~GrpcServer();  // Shuts down now if Shutdown was not called.

  uint16_t port() const { return port_; }
  // A channel to this server that skips the network: the admin port's Connect API calls the
  // same services through it. Thread-safe; the channel must not be used after Shutdown returns.
  std::shared_ptr<grpc::Channel> InProcessChannel();
  // grpc.health.v1.Health status of every service (and of ""): SERVING or NOT_SERVING.
  void SetServing(bool serving);
  // Refuses new calls, lets running ones finish until `deadline`, then cancels them.
  void Shutdown(std::chrono::system_clock::time_point deadline);

 private:
  GrpcServer(std::unique_ptr<grpc::Server> server, uint16_t port)
      : server_(std::move(server)), port_(port) {}

  std::unique_ptr<grpc::Server> server_;
  uint16_t port_;
  bool shut_down_ = false;
};

// Sends gRPC's own log lines (gpr_log) to spdlog, so that --log-format=json output stays one JSON
// object per line. Process-wide; idempotent; GrpcServer::Start calls it.
void RouteGrpcLogsToSpdlog();

}  // namespace wsgate::controlplane
