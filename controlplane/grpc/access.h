// Access control and the audit log for the control-plane services, on both transports: the
// admin port's Connect API calls the same services through an in-process channel, so every check
// here applies to it too.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_interceptor.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include "absl/strings/string_view.h"

#include "controlplane/auth/token_auth.h"

namespace wsgate::controlplane {

// Metadata the Connect handler adds to its in-process calls, so that the audit line says the
// call came over the admin port and from where. Trusted only on in-process calls (any gRPC
// client could send it).
inline constexpr char kViaMetadata[] = "x-wsgate-via";

// OK when `tokens` is null (no token file: open) or the call's `authorization` metadata holds a
// token whose role allows `access`; else UNAUTHENTICATED or PERMISSION_DENIED. `method` is the
// full name for the message ("wsgate.v1.RouteService/PutRoute"). Thread-safe.
grpc::Status CheckAccess(const TokenTable* tokens, const grpc::ServerContextBase& context,
                         Access access, absl::string_view method);

// Calls refused by CheckAccess since start, by code (for /metrics).
struct AuthDenials {
  std::atomic<uint64_t> unauthenticated{0};
  std::atomic<uint64_t> permission_denied{0};
};
const AuthDenials& GlobalAuthDenials();

// One structured audit line per mutating call (IsMutation), on both transports:
//   audit {"role":"admin","token_id":"1a2b3c4d","method":"wsgate.v1.RouteService/PutRoute",
//          "request":{"route":{"name":"chat"}},"result":"OK","message":"","via":"grpc ..."}
// The request is reduced to what names the target (ids, names, codes, field masks); payloads
// are given as a byte count, never their content. `tokens` may be null (role "open").
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeAuditInterceptorFactory(
    const TokenTable* tokens);

}  // namespace wsgate::controlplane
