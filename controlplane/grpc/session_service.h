// wsgate.v1.SessionService: the data plane's session registry over gRPC.
//
// Threading: the unary RPCs run on the server's (capped) sync thread pool and wait there for the
// workers' gathered answer (DataPlane::ListSessions & co.; a worker never waits). WatchSessions
// uses gRPC's callback API instead: a stream holds no thread while it waits for events, so any
// number of watchers leave the sync pool to the other RPCs. One pump thread, owned by this
// service, moves events from the watchers' bounded buffers (dataplane/sessions) into their
// streams, one write in flight per stream.
#pragma once

#include "controlplane/auth/token_auth.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "dataplane/data_plane.h"
#include "wsgate/v1/session_service.grpc.pb.h"

namespace wsgate::controlplane {

// Maps the registry's plain structs to the API's messages (also used by tests).
void ToProto(const dataplane::sessions::SessionInfo& in, wsgate::v1::Session* out);
void ToProto(const dataplane::sessions::SessionEvent& in, wsgate::v1::SessionEvent* out);

class SessionServiceImpl final
    : public wsgate::v1::SessionService::WithCallbackMethod_WatchSessions<
          wsgate::v1::SessionService::Service> {
 public:
  // Events buffered per watcher before they are dropped (and counted in dropped_before).
  static constexpr size_t kWatchBuffer = 1024;

  // `data_plane` must outlive the service (and the server that hosts it).
  explicit SessionServiceImpl(dataplane::DataPlane* data_plane, size_t watch_buffer = kWatchBuffer);
  ~SessionServiceImpl() override;

  // Ends every WatchSessions stream (UNAVAILABLE): call before shutting the server down, which
  // would otherwise wait for these never-ending calls until its deadline.
  void EndWatches();

  grpc::Status ListSessions(grpc::ServerContext* context,
                            const wsgate::v1::ListSessionsRequest* request,
                            wsgate::v1::ListSessionsResponse* response) override;
  grpc::Status GetSession(grpc::ServerContext* context,
                          const wsgate::v1::GetSessionRequest* request,
                          wsgate::v1::Session* response) override;
  grpc::Status CloseSession(grpc::ServerContext* context,
                            const wsgate::v1::CloseSessionRequest* request,
                            wsgate::v1::CloseSessionResponse* response) override;
  grpc::Status SendToSession(grpc::ServerContext* context,
                             const wsgate::v1::SendToSessionRequest* request,
                             wsgate::v1::SendToSessionResponse* response) override;
  grpc::ServerWriteReactor<wsgate::v1::SessionEvent>* WatchSessions(
      grpc::CallbackServerContext* context,
      const wsgate::v1::WatchSessionsRequest* request) override;
  grpc::Status Publish(grpc::ServerContext* context, const wsgate::v1::PublishRequest* request,
                       wsgate::v1::PublishResponse* response) override;

  // Requires a bearer token on every call (null: open). Call before the server starts;
  // `tokens` must outlive the service.
  void RequireTokens(const TokenTable* tokens) { tokens_ = tokens; }

 private:
  const TokenTable* tokens_ = nullptr;
  class WatchReactor;
  friend class WatchReactor;

  void Wake();
  void Pump();
  void Forget(WatchReactor* reactor);

  dataplane::DataPlane* const data_plane_;
  const size_t watch_buffer_;
  // Wake() runs on worker threads (through the watchers' notify): it only takes wake_mu_, which
  // the pump holds just to read the flags, never while it writes to streams.
  std::mutex wake_mu_;
  std::condition_variable cv_;
  bool wake_ = false;  // guarded by wake_mu_
  bool stop_ = false;  // guarded by wake_mu_
  std::mutex mu_;
  std::set<WatchReactor*> reactors_;  // guarded by mu_; live streams
  std::thread pump_;
};

}  // namespace wsgate::controlplane
