// The Connect protocol (connectrpc.com/docs/protocol) on the admin port, over the same service
// implementations gRPC serves: each request is decoded with the generated descriptors, sent
// through the gRPC server's in-process channel as a generic call, and the answer encoded back.
// No method is written twice, and a new RPC in proto/ is reachable over Connect with no change
// here: the method is looked up by its path in the generated descriptor pool.
//
// Supported: unary calls with application/json (proto3 JSON mapping, protobuf's own JSON
// utilities) and application/proto; server-streaming calls with application/connect+json and
// application/connect+proto (enveloped messages, then the end-of-stream message); the
// Connect-Timeout-Ms header; identity encoding only. Errors are the Connect error JSON with the
// protocol's HTTP status for the code.
//
// Threading: Handle runs on the admin thread and only decodes and starts the call; the call's
// completion runs on gRPC's callback threads, which encode the answer and hand it to the
// AdminReply (which posts it to the admin thread). Nothing here waits, so a slow RPC never stalls
// the admin loop, and nothing here touches a data-plane worker.
#pragma once

#include <grpcpp/channel.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "controlplane/admin/admin_server.h"
#include "controlplane/auth/token_auth.h"
#include "prometheus/collectable.h"

namespace grpc {
class ClientContext;
}

namespace wsgate::controlplane {

// The Connect code name of a gRPC/absl code number ("invalid_argument", "canceled") and the HTTP
// status the protocol maps it to.
absl::string_view ConnectCodeName(int code);
int ConnectHttpStatus(int code);

class ConnectHandler {
 public:
  // Largest request body accepted (a Route with many upstreams is a few KiB).
  static constexpr uint64_t kMaxBody = 1024 * 1024;

  // `tokens` (null: open) must outlive the handler: requests without a valid token are refused
  // before their body is decoded. Roles are checked by the services themselves.
  explicit ConnectHandler(const TokenTable* tokens);
  ~ConnectHandler();

  // The gRPC server's in-process channel; until then every call is UNAVAILABLE.
  void Attach(std::shared_ptr<grpc::Channel> channel);

  // Registers the handler on `routes` (paths "/package.Service/Method").
  void Register(AdminRoutes& routes);

  // Cancels the calls in flight, waits (at most `timeout`) until they have finished, and refuses
  // new ones. Call before the gRPC server shuts down and while the admin server still runs;
  // calling it again after the server's shutdown releases the calls that outlived the first wait.
  void Shutdown(std::chrono::milliseconds timeout);

  // wsgate_connect_requests_total{code} and wsgate_control_auth_denied_total{code}.
  const prometheus::Collectable* collector() const { return collector_.get(); }

  // Called on the admin thread for each RPC-shaped request.
  void Handle(AdminRequest request, std::shared_ptr<AdminReply> reply);

  class Call;  // one call in flight (connect_handler.cc)

 private:
  friend class Call;
  bool Begin(grpc::ClientContext* context);  // false once shut down
  // A call has answered: counted, out of in_flight_ and into finished_ (destroyed later, on the
  // admin thread or by Shutdown), atomically.
  void Done(grpc::ClientContext* context, int code, std::shared_ptr<Call> call);
  void Count(int code);

  const TokenTable* const tokens_;
  std::mutex mu_;
  std::condition_variable idle_;
  std::shared_ptr<grpc::Channel> channel_;  // guarded by mu_
  std::set<grpc::ClientContext*> in_flight_;  // guarded by mu_
  bool shut_down_ = false;                    // guarded by mu_
  std::vector<std::shared_ptr<Call>> finished_;  // guarded by mu_
  std::array<std::atomic<uint64_t>, 17> by_code_{};
  std::unique_ptr<prometheus::Collectable> collector_;
};

}  // namespace wsgate::controlplane
