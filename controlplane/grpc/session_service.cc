#include "controlplane/grpc/session_service.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <optional>
#include <string>
#include <utility>

#include "controlplane/grpc/access.h"
#include "controlplane/grpc/status.h"

namespace wsgate::controlplane {

namespace sessions = dataplane::sessions;

namespace {

constexpr uint32_t kDefaultPageSize = 100;
constexpr uint32_t kMaxPageSize = 1000;

void SetTime(sessions::UnixNanos t, google::protobuf::Timestamp* out) {
  *out = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(t);
}

void LimitsToProto(const dataplane::RouteLimits& in, wsgate::v1::Limits* out) {
  // The data plane's RouteLimits carry what it enforces (route over defaults over built-ins,
  // as of the last live update that reached the session).
  out->set_max_message_bytes(in.max_message_bytes);
  out->set_messages_per_second(in.messages_per_second);
  out->set_message_burst(in.message_burst);
  out->set_rate_policy(in.rate_policy == dataplane::RouteLimits::RatePolicy::kClose
                           ? wsgate::v1::Limits::RATE_POLICY_CLOSE
                           : wsgate::v1::Limits::RATE_POLICY_DROP);
  out->set_max_connections(in.max_connections);
  out->set_max_connections_per_client(in.max_connections_per_client);
  out->set_max_connections_per_address(in.max_connections_per_address);
  out->set_handshakes_per_second(in.handshakes_per_second);
  out->set_idle_timeout_ms(in.idle_timeout_ms);
  out->set_max_lifetime_ms(in.max_lifetime_ms);
  out->set_send_queue_bytes(in.send_queue_bytes);
  if (in.send_queue_bytes > 0) {
    out->set_slow_consumer_policy(
        in.slow_consumer == dataplane::RouteLimits::SlowConsumer::kDropOldest
            ? wsgate::v1::Limits::SLOW_CONSUMER_POLICY_DROP_OLDEST
            : wsgate::v1::Limits::SLOW_CONSUMER_POLICY_CLOSE);
  }
  out->set_ping_interval_ms(in.ping_interval_ms);
  out->set_ping_timeout_ms(in.ping_timeout_ms);
}

}  // namespace

void ToProto(const sessions::SessionInfo& in, wsgate::v1::Session* out) {
  out->set_id(in.id);
  out->set_route(in.route);
  out->set_kind(in.kind);
  out->set_path(in.path);
  for (const auto& [name, value] : in.path_params) (*out->mutable_path_params())[name] = value;
  out->set_remote_address(in.remote_address);
  out->set_remote_port(in.remote_port);
  out->set_user_agent(in.user_agent);
  out->set_subprotocol(in.subprotocol);
  out->set_state(static_cast<wsgate::v1::SessionState>(in.state));
  SetTime(in.connected_at, out->mutable_connected_at());
  if (in.last_activity != 0) SetTime(in.last_activity, out->mutable_last_activity());
  out->set_messages_in(in.messages_in);
  out->set_bytes_in(in.bytes_in);
  out->set_messages_out(in.messages_out);
  out->set_bytes_out(in.bytes_out);
  out->set_queued_bytes(in.queued_bytes);
  out->set_bound_to(in.bound_to);
  LimitsToProto(in.limits, out->mutable_limits());
  out->set_worker(in.worker);
}

void ToProto(const sessions::SessionEvent& in, wsgate::v1::SessionEvent* out) {
  out->set_type(static_cast<wsgate::v1::SessionEvent::Type>(in.type));
  SetTime(in.time, out->mutable_time());
  out->set_session_id(in.session_id);
  out->set_route(in.route);
  out->set_remote_address(in.remote_address);
  out->set_close_code(in.close_code);
  out->set_close_reason(in.close_reason);
  out->set_limit(in.limit);
  out->set_dropped_before(in.dropped_before);
}

// One WatchSessions stream. Its watcher's buffer is filled by the workers; the service's pump
// thread calls TryWrite, gRPC calls OnWriteDone / OnCancel / OnDone. At most one write is in
// flight; Finish is called exactly once and never while a write is being started.
class SessionServiceImpl::WatchReactor final
    : public grpc::ServerWriteReactor<wsgate::v1::SessionEvent> {
 public:
  WatchReactor(SessionServiceImpl* service, std::string route) : service_(service) {
    sessions::SessionEventHub* hub = service->data_plane_->session_events();
    if (hub == nullptr) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this data plane has no sessions"));
      return;
    }
    hub_ = hub;
    watcher_ = hub->Subscribe(std::move(route), service->watch_buffer_, [s = service] { s->Wake(); });
    {
      std::lock_guard<std::mutex> lock(service->mu_);
      service->reactors_.insert(this);
    }
    // Lets a client see that the stream is established (and subscribed) before any event.
    StartSendInitialMetadata();
  }

  void TryWrite() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_ || cancelled_ || ending_ || writing_) return;
      std::optional<sessions::SessionEvent> e = watcher_->Pop();
      if (!e) return;
      msg_.Clear();
      ToProto(*e, &msg_);
      writing_ = true;
    }
    StartWrite(&msg_);
  }

  void OnWriteDone(bool ok) override {
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) cancelled_ = true;
      if ((cancelled_ || ending_) && !finished_) finish = finished_ = true;
    }
    if (finish) {
      Finish(cancelled_ ? grpc::Status::CANCELLED
                        : grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    } else {
      service_->Wake();  // the next buffered event, if any
    }
  }

  // Server shutdown: ends the stream with UNAVAILABLE (after the write in flight, if any).
  void End() {
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ending_ = true;
      if (!writing_ && !finished_) finish = finished_ = true;
    }
    if (finish) Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }

  void OnCancel() override {
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
      if (!writing_ && !finished_) finish = finished_ = true;
    }
    if (finish) Finish(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    if (watcher_) {
      hub_->Unsubscribe(watcher_);
      service_->Forget(this);
    }
    delete this;
  }

 private:
  SessionServiceImpl* const service_;
  sessions::SessionEventHub* hub_ = nullptr;
  std::shared_ptr<sessions::EventWatcher> watcher_;
  std::mutex mu_;
  bool writing_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
  bool ending_ = false;
  wsgate::v1::SessionEvent msg_;  // the write in flight
};

SessionServiceImpl::SessionServiceImpl(dataplane::DataPlane* data_plane, size_t watch_buffer)
    : data_plane_(data_plane), watch_buffer_(watch_buffer), pump_([this] { Pump(); }) {}

SessionServiceImpl::~SessionServiceImpl() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    stop_ = true;
  }
  cv_.notify_all();
  pump_.join();
}

void SessionServiceImpl::Wake() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    wake_ = true;
  }
  cv_.notify_one();
}

void SessionServiceImpl::EndWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  for (WatchReactor* r : reactors_) r->End();
}

void SessionServiceImpl::Forget(WatchReactor* reactor) {
  std::lock_guard<std::mutex> lock(mu_);
  reactors_.erase(reactor);
}

void SessionServiceImpl::Pump() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(wake_mu_);
      cv_.wait(lock, [this] { return wake_ || stop_; });
      if (stop_) return;
      wake_ = false;
    }
    // Under mu_: a reactor is removed (in OnDone, which takes mu_) before it is deleted. gRPC
    // never runs OnWriteDone or OnDone inline from StartWrite / Finish, so no re-entry.
    std::lock_guard<std::mutex> lock(mu_);
    for (WatchReactor* r : reactors_) r->TryWrite();
  }
}

grpc::Status SessionServiceImpl::ListSessions(grpc::ServerContext* context,
                                              const wsgate::v1::ListSessionsRequest* request,
                                              wsgate::v1::ListSessionsResponse* response) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kRead, "wsgate.v1.SessionService/ListSessions");
      !denied.ok()) {
    return denied;
  }
  sessions::SessionQuery q;
  q.filter.route = request->route();
  q.filter.id_prefix = request->id_prefix();
  q.filter.remote_address = request->remote_address();
  switch (request->state()) {
    case wsgate::v1::SESSION_STATE_UNSPECIFIED:
      break;
    case wsgate::v1::SESSION_STATE_CONNECTING:
    case wsgate::v1::SESSION_STATE_OPEN:
    case wsgate::v1::SESSION_STATE_CLOSING:
      q.filter.state = static_cast<sessions::SessionState>(request->state());
      break;
    default:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "state: unknown value " + std::to_string(request->state()));
  }
  if (request->page_size() > kMaxPageSize) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "page_size: at most " + std::to_string(kMaxPageSize) + ", got " +
                            std::to_string(request->page_size()));
  }
  q.limit = request->page_size() == 0 ? kDefaultPageSize : request->page_size();
  if (!request->page_token().empty()) {
    q.after = sessions::DecodePageToken(request->page_token());
    if (!q.after) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "page_token: not a token from a previous ListSessions");
    }
  }
  absl::StatusOr<sessions::SessionPage> page = data_plane_->ListSessions(q);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const sessions::SessionInfo& s : page->sessions) ToProto(s, response->add_sessions());
  response->set_total_size(page->total);
  if (page->more && !page->sessions.empty()) {
    const sessions::SessionInfo& last = page->sessions.back();
    response->set_next_page_token(sessions::EncodePageToken({last.connected_at, last.id}));
  }
  return grpc::Status::OK;
}

grpc::Status SessionServiceImpl::GetSession(grpc::ServerContext* context,
                                            const wsgate::v1::GetSessionRequest* request,
                                            wsgate::v1::Session* response) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kRead, "wsgate.v1.SessionService/GetSession");
      !denied.ok()) {
    return denied;
  }
  if (request->id().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "id: required");
  absl::StatusOr<sessions::SessionInfo> s = data_plane_->GetSession(request->id());
  if (!s.ok()) return ToGrpcStatus(s.status());
  ToProto(*s, response);
  return grpc::Status::OK;
}

grpc::Status SessionServiceImpl::CloseSession(grpc::ServerContext* context,
                                              const wsgate::v1::CloseSessionRequest* request,
                                              wsgate::v1::CloseSessionResponse*) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kWrite, "wsgate.v1.SessionService/CloseSession");
      !denied.ok()) {
    return denied;
  }
  if (request->id().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "id: required");
  absl::Status s = data_plane_->CloseSession(request->id(), request->code(), request->reason());
  if (s.ok()) {
    spdlog::info("session {} closed by operator with {} '{}'", request->id(),
                 request->code() == 0 ? 1000 : request->code(), request->reason());
  }
  return ToGrpcStatus(s);
}

grpc::Status SessionServiceImpl::SendToSession(grpc::ServerContext* context,
                                               const wsgate::v1::SendToSessionRequest* request,
                                               wsgate::v1::SendToSessionResponse*) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kWrite, "wsgate.v1.SessionService/SendToSession");
      !denied.ok()) {
    return denied;
  }
  if (request->id().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "id: required");
  switch (request->payload_case()) {
    case wsgate::v1::SendToSessionRequest::kText:
      return ToGrpcStatus(data_plane_->SendToSession(request->id(), request->text(), false));
    case wsgate::v1::SendToSessionRequest::kBinary:
      return ToGrpcStatus(data_plane_->SendToSession(request->id(), request->binary(), true));
    default:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "payload: text or binary required");
  }
}

namespace {

// A stream refused before it starts: finishes with `status` and deletes itself when done.
class RefusedWatch final : public grpc::ServerWriteReactor<wsgate::v1::SessionEvent> {
 public:
  explicit RefusedWatch(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<wsgate::v1::SessionEvent>* SessionServiceImpl::WatchSessions(
    grpc::CallbackServerContext* context, const wsgate::v1::WatchSessionsRequest* request) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kRead, "wsgate.v1.SessionService/WatchSessions");
      !denied.ok()) {
    return new RefusedWatch(std::move(denied));
  }
  return new WatchReactor(this, request->route());
}

grpc::Status SessionServiceImpl::Publish(grpc::ServerContext* context,
                                         const wsgate::v1::PublishRequest* request,
                                         wsgate::v1::PublishResponse* response) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kWrite, "wsgate.v1.SessionService/Publish");
      !denied.ok()) {
    return denied;
  }
  if (request->channel().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "channel: required");
  }
  dataplane::bus::MessageBus* bus = data_plane_->message_bus();
  if (bus == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this data plane has no message bus");
  }
  absl::Status s;
  switch (request->payload_case()) {
    case wsgate::v1::PublishRequest::kText:
      s = bus->Publish(request->channel(), request->text(), false);
      break;
    case wsgate::v1::PublishRequest::kBinary:
      s = bus->Publish(request->channel(), request->binary(), true);
      break;
    default:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "payload: text or binary required");
  }
  if (!s.ok()) return ToGrpcStatus(s);
  response->set_bus(bus->kind());
  return grpc::Status::OK;
}

}  // namespace wsgate::controlplane
