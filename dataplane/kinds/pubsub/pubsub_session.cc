#include "dataplane/kinds/pubsub/pubsub_session.h"

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "dataplane/auth/jwt_hs256.h"
#include "dataplane/auth/token_sources.h"
#include "dataplane/kinds/fanout/fanout_session.h"

namespace wsgate::dataplane::transport {

namespace {

// Compares without an early exit, so the time taken says nothing about where a guess differs.
bool SameToken(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

class PubSubSession : public KindSession,
                      public bus::Subscriber,
                      public std::enable_shared_from_this<PubSubSession> {
 public:
  PubSubSession(FanoutKinds& kinds, std::shared_ptr<const RouteConfig> route,
                std::string down_channel, std::string up_channel, ServerConnectionPtr con,
                RouteWorkerCounters* counters)
      : kinds_(kinds),
        route_(std::move(route)),
        down_(std::move(down_channel)),
        up_(std::move(up_channel)),
        con_(con),
        counters_(counters),
        client_(std::move(con), counters, route_->pubsub.max_queued_bytes,
                [&kinds, name = route_->name] { kinds.events().CountBackpressureClose(name); }) {}

  // The client leg (for the session registry's traffic counter).
  FanoutClient& client() { return client_; }

  // Seed 004's redis_token mode: GETDEL `key` and compare with the client's token, then Start.
  void Authorize(std::string key, std::string token, std::function<void(PrepareResult)> done) {
    bus::MessageBus* bus = kinds_.bus();
    if (bus == nullptr || !bus->up()) {
      AuthFailed("unavailable");
      done(Refused(absl::UnavailableError("bus down")));
      return;
    }
    auto self = shared_from_this();
    bus->GetAndDelete(kinds_.worker_index(), std::move(key),
                      [self, token = std::move(token), done = std::move(done)](
                          absl::StatusOr<std::optional<std::string>> value) mutable {
                        if (!value.ok()) {
                          // UNIMPLEMENTED (the in-memory bus has no key store) is a deployment
                          // problem too.
                          self->AuthFailed("unavailable");
                          done({nullptr, 503, "session store unavailable\n"});
                        } else if (!value->has_value()) {
                          self->AuthFailed("unknown_token");
                          done({nullptr, 401, "unknown or already used session token\n"});
                        } else if (!SameToken(**value, token)) {
                          self->AuthFailed("mismatch");
                          done({nullptr, 403, "session token mismatch\n"});
                        } else {
                          self->Start(std::move(done));
                        }
                      });
  }

  void AuthFailed(const char* reason) { kinds_.events().CountAuthFailure(route_->name, reason); }

  // The token came as the subprotocol pair: the handshake must select "wsgate.bearer".
  void SelectBearerSubprotocol() { select_bearer_ = true; }

  void OnValidate() override {
    if (!select_bearer_) return;
    websocketpp::lib::error_code ec;  // cannot fail: FindToken saw the client offer it
    con_->select_subprotocol(std::string(auth::kBearerSubprotocol), ec);
  }

  void Start(std::function<void(PrepareResult)> done) {
    bus::MessageBus* bus = kinds_.bus();
    if (bus == nullptr || !bus->up()) {
      done(Refused(absl::UnavailableError("bus down")));
      return;
    }
    auto self = shared_from_this();
    bus::SubscribeOptions options;
    options.timeout = route_->pubsub.subscribe_timeout;
    bus->Subscribe(kinds_.worker_index(), down_, this, options,
                   [self, done = std::move(done)](absl::Status status) {
                     if (!status.ok()) {
                       done(Refused(status));
                       return;
                     }
                     self->subscribed_ = true;
                     done({self, 0, {}});
                   });
  }

  void OnOpen() override {
    client_.Open();
    if (client_.close_on_open()) client_.CloseTooSlow();
    // The route's limits.ping_interval_ms drives the transport's generic pinger; this
    // kind's own pinger (the seed's environment variables) runs only when that one does not, so
    // the two never both ping.
    if (route_->limits.ping_interval_ms == 0 && kinds_.ping_interval().count() > 0) StartPings();
  }

  void OnMessage(const MessagePtr& msg) override {
    if (refused_) return;  // closing: frames that were already read are dropped
    const bool binary = msg->get_opcode() == websocketpp::frame::opcode::binary;
    const PubSubSettings& settings = route_->pubsub;
    if (binary && settings.refuse_binary) {
      Refuse("binary messages are not accepted");
      return;
    }
    // nlohmann's accept() runs the SAX parser: no document is built.
    if (!binary && settings.validate_json && !nlohmann::json::accept(msg->get_payload())) {
      Refuse("message is not valid JSON");
      return;
    }
    if (up_.empty()) return;  // the route does not publish client messages
    PublishUp(msg->get_payload(), binary);
  }

  void OnTerminated() override {
    if (terminated_) return;
    terminated_ = true;
    if (subscribed_) kinds_.bus()->Unsubscribe(kinds_.worker_index(), down_, this);
    subscribed_ = false;
    if (ping_timer_) ping_timer_->cancel();
    // Held messages go out if the bus is back already (the retry timer may not have run yet);
    // whatever is still held is lost with the session.
    if (!up_pending_.empty()) FlushUp();
    if (up_retry_timer_) up_retry_timer_->cancel();
    DropPending(PubSubUpDrop::kSessionClosed);
  }

  // A message on the session's down channel: to the client as-is, in order.
  // Sessions of this worker on the same channel share one frame of the message.
  void OnMessage(const bus::BusMessagePtr& m) override {
    client_.SendFrame(kinds_.frames().For(m, 0, m->is_binary));
  }

 private:
  void Refuse(const char* reason) {
    refused_ = true;
    client_.Close(1003, reason);
  }

  // The up channel across a bus outage. Publish fails fast while the bus is down; instead of
  // losing the message, the session holds it (and every later one, so order is kept) within the
  // route's max_queued_bytes, and publishes them in order once the bus is back. Past that budget
  // the client is told: closed with 1013 (try again later), and what was held is dropped. Every
  // message the bus never gets is counted in wsgate_pubsub_up_dropped_total.
  void PublishUp(const std::string& payload, bool binary) {
    if (!up_pending_.empty()) {
      HoldUp(payload, binary);
      return;
    }
    absl::Status s = kinds_.bus()->Publish(up_, payload, binary);
    if (s.ok()) return;
    if (s.code() == absl::StatusCode::kUnavailable) {
      HoldUp(payload, binary);
      return;
    }
    counters_->pubsub_up_dropped[static_cast<int>(PubSubUpDrop::kBusStopped)].Add();
  }

  void HoldUp(const std::string& payload, bool binary) {
    if (up_pending_bytes_ + payload.size() > route_->pubsub.max_queued_bytes) {
      counters_->pubsub_up_dropped[static_cast<int>(PubSubUpDrop::kBufferFull)].Add();
      DropPending(PubSubUpDrop::kBufferFull);
      refused_ = true;  // frames already read are dropped like this one
      client_.Close(1013, "message bus unavailable: client messages were not delivered");
      return;
    }
    up_pending_bytes_ += payload.size();
    up_pending_.emplace_back(payload, binary);
    counters_->pubsub_up_buffered.Add();
    if (up_pending_.size() == 1) ScheduleUpRetry();
  }

  void DropPending(PubSubUpDrop reason) {
    if (!up_pending_.empty()) {
      counters_->pubsub_up_dropped[static_cast<int>(reason)].Add(up_pending_.size());
    }
    up_pending_.clear();
    up_pending_bytes_ = 0;
  }

  // Polls the bus while messages wait: the bus has no "back up" event, and a check of an atomic
  // every 100 ms per waiting session costs nothing next to an outage.
  void ScheduleUpRetry() {
    if (!up_retry_timer_) {
      up_retry_timer_ =
          std::make_unique<boost::asio::steady_timer>(con_->get_raw_socket().get_executor());
    }
    std::weak_ptr<PubSubSession> weak = weak_from_this();
    up_retry_timer_->expires_after(std::chrono::milliseconds(100));
    up_retry_timer_->async_wait([weak](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->terminated_) return;
      self->FlushUp();
    });
  }

  void FlushUp() {
    bus::MessageBus* bus = kinds_.bus();
    while (!up_pending_.empty() && bus->up()) {
      auto& [payload, binary] = up_pending_.front();
      const size_t size = payload.size();
      absl::Status s = bus->Publish(up_, payload, binary);
      if (s.code() == absl::StatusCode::kUnavailable) break;  // down again: keep waiting
      if (!s.ok()) {
        DropPending(PubSubUpDrop::kBusStopped);
        return;
      }
      up_pending_.pop_front();
      up_pending_bytes_ -= size;
    }
    if (!up_pending_.empty() && !terminated_) ScheduleUpRetry();
  }

  void StartPings() {
    std::weak_ptr<PubSubSession> weak = weak_from_this();
    // One ping outstanding at a time: websocketpp restarts its pong timer on every ping, so a
    // ping interval shorter than the timeout would otherwise postpone the timeout for ever.
    con_->set_pong_handler([weak](websocketpp::connection_hdl, std::string) {
      if (auto self = weak.lock()) self->awaiting_pong_ = false;
    });
    if (kinds_.ping_timeout().count() > 0) {
      con_->set_pong_timeout(static_cast<long>(kinds_.ping_timeout().count()));
      con_->set_pong_timeout_handler([weak](websocketpp::connection_hdl, std::string) {
        if (auto self = weak.lock(); self && !self->terminated_) {
          self->client_.Close(1001, "ping timeout");
        }
      });
    }
    ping_timer_ =
        std::make_unique<boost::asio::steady_timer>(con_->get_raw_socket().get_executor());
    SchedulePing();
  }

  void SchedulePing() {
    std::weak_ptr<PubSubSession> weak = weak_from_this();
    ping_timer_->expires_after(kinds_.ping_interval());
    ping_timer_->async_wait([weak](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->terminated_) return;
      if (self->con_->get_state() != websocketpp::session::state::open) return;
      if (!self->awaiting_pong_) {
        websocketpp::lib::error_code pec;
        self->con_->ping("", pec);
        if (pec) return;  // the leg is closing
        self->awaiting_pong_ = true;
      }
      self->SchedulePing();
    });
  }

  FanoutKinds& kinds_;
  const std::shared_ptr<const RouteConfig> route_;
  const std::string down_;
  const std::string up_;
  ServerConnectionPtr con_;
  RouteWorkerCounters* const counters_;
  FanoutClient client_;
  std::unique_ptr<boost::asio::steady_timer> ping_timer_;
  // Client messages waiting for the bus (see PublishUp), oldest first, and their payload bytes.
  std::deque<std::pair<std::string, bool>> up_pending_;
  uint64_t up_pending_bytes_ = 0;
  std::unique_ptr<boost::asio::steady_timer> up_retry_timer_;
  bool awaiting_pong_ = false;
  bool subscribed_ = false;
  bool terminated_ = false;
  bool select_bearer_ = false;
  bool refused_ = false;
};

// The pubsub auth modes: find the token (header, subprotocol, query), check it, then Start.
void AuthorizePubSub(FanoutKinds& kinds, const RouteConfig& route,
                     const std::vector<std::pair<std::string, std::string>>& params,
                     const RequestHead& head, const std::shared_ptr<PubSubSession>& session,
                     std::function<void(PrepareResult)> done) {
  const PubSubSettings& settings = route.pubsub;
  auth::TokenSourceOptions sources{settings.token_query_param, settings.token_subprotocol};
  // Never logged: the token is a credential, and so is the query string that may carry it.
  auth::FoundToken found =
      auth::FindToken(head.HasHeader("authorization"), head.Header("authorization"), head.target,
                      head.subprotocols, sources);
  if (!found.ok()) {
    kinds.events().CountAuthFailure(route.name, "malformed");
    std::string body = found.error;
    if (body.empty()) {
      body = "missing token: send an Authorization: Bearer header";
      if (settings.token_subprotocol) body += ", the wsgate.bearer.<token> subprotocol";
      if (!settings.token_query_param.empty()) body += ", ?" + settings.token_query_param + "=";
    }
    done({nullptr, 400, body + "\n"});
    return;
  }
  if (found.source == auth::FoundToken::Source::kSubprotocol) session->SelectBearerSubprotocol();
  if (settings.auth == PubSubSettings::Auth::kRedisToken) {
    session->Authorize(ExpandTemplate(settings.auth_key, params), std::move(found.token),
                       std::move(done));
    return;
  }
  // kJwtHs256
  if (settings.jwt_secret.empty()) {
    kinds.events().CountAuthFailure(route.name, "unavailable");
    done({nullptr, 503, "authentication secret unavailable\n"});
    return;
  }
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  auth::JwtOutcome outcome = auth::VerifyJwtHs256(found.token, settings.jwt_secret,
                                                  ParamValue(params, settings.session_param), now);
  if (outcome != auth::JwtOutcome::kOk) {
    kinds.events().CountAuthFailure(route.name, auth::JwtOutcomeReason(outcome));
    static constexpr const char* kBodies[] = {"",
                                              "malformed token\n",
                                              "token algorithm must be HS256\n",
                                              "bad token signature\n",
                                              "token expired\n",
                                              "token not yet valid\n",
                                              "token is for another session\n"};
    done({nullptr, auth::JwtHttpStatus(outcome), kBodies[static_cast<int>(outcome)]});
    return;
  }
  session->Start(std::move(done));
}

}  // namespace

void PreparePubSub(FanoutKinds& kinds, std::shared_ptr<const RouteConfig> route,
                   const std::vector<std::pair<std::string, std::string>>& params,
                   const RequestHead& head, ServerConnectionPtr client,
                   RouteWorkerCounters* counters, std::function<void(PrepareResult)> done,
                   std::shared_ptr<sessions::SessionTraffic> traffic) {
  std::string down = ExpandTemplate(route->pubsub.down_channel, params);
  std::string up = route->pubsub.up_channel.empty()
                       ? std::string()
                       : ExpandTemplate(route->pubsub.up_channel, params);
  auto session = std::make_shared<PubSubSession>(kinds, route, std::move(down), std::move(up),
                                                 std::move(client), counters);
  session->client().set_traffic(std::move(traffic));
  if (route->pubsub.auth != PubSubSettings::Auth::kNone) {
    AuthorizePubSub(kinds, *route, params, head, session, std::move(done));
    return;
  }
  session->Start(std::move(done));
}

}  // namespace wsgate::dataplane::transport
