#include "dataplane/kinds/fanout/fanout_kinds.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <cstdlib>
#include <deque>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "dataplane/auth/jwt_hs256.h"
#include "dataplane/auth/token_sources.h"
#include "dataplane/transport/http_response.h"

namespace wsgate::dataplane::transport {

namespace {

namespace wsclose = websocketpp::close::status;

// Room broadcasts travel through the bus as kRoomMagic + member token + '\n' + text, so that the
// sender's own member (on any process) can skip them. Anything else published on a room channel
// (SessionService.Publish, redis-cli) reaches every member as-is.
constexpr std::string_view kRoomMagic = "\x1ewsgate-room:";
// Rooms have no per-route bound yet: a member whose unsent queue exceeds this
// is closed with 1008 like a slow pubsub client.
constexpr uint64_t kRoomMaxQueuedBytes = 10ull << 20;
// A member's cross-process lease on its client id (policy reject): refreshed every third of it
// while connected, so a process that dies without releasing frees the id within this time.
constexpr std::chrono::milliseconds kRoomLeaseTtl{30000};

void RandomBytes(unsigned char* out, int n) {
  if (RAND_bytes(out, n) != 1) {
    // Same reasoning as SecureRandom32: predictable ids would be a silent security bug.
    spdlog::critical("OpenSSL RAND_bytes failed");
    std::abort();
  }
}

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

// Replaces {client_id} and {message} in one pass (a message containing "{client_id}" stays as
// the client wrote it).
std::string FormatRoomText(std::string_view tmpl, std::string_view client_id,
                           std::string_view message) {
  std::string out;
  out.reserve(tmpl.size() + client_id.size() + message.size());
  size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl.compare(i, 11, "{client_id}") == 0) {
      out.append(client_id);
      i += 11;
    } else if (tmpl.compare(i, 9, "{message}") == 0) {
      out.append(message);
      i += 9;
    } else {
      out.push_back(tmpl[i++]);
    }
  }
  return out;
}

// The envelopes of a room route with format FORMAT_JSON. Text frames are valid UTF-8
// (websocketpp checks), the client id comes from the path; `replace` is belt and braces.
std::string RoomJson(nlohmann::json envelope) {
  return envelope.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
std::string RoomJsonMessage(std::string_view client_id, std::string_view message, bool self) {
  return RoomJson({{"type", "message"},
                   {"client_id", std::string(client_id)},
                   {"message", std::string(message)},
                   {"self", self}});
}
std::string RoomJsonEvent(const char* type, std::string_view client_id) {
  return RoomJson({{"type", type}, {"client_id", std::string(client_id)}});
}

std::string ParamValue(const std::vector<std::pair<std::string, std::string>>& params,
                       const std::string& name) {
  for (const auto& [n, v] : params) {
    if (n == name) return v;
  }
  return {};
}

// Compares without an early exit, so the time taken says nothing about where a guess differs.
bool SameToken(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Seconds from the environment (fractions allowed); `fallback` when unset, with a warning when
// not a number in [0, 86400].
std::chrono::milliseconds SecondsFromEnvironment(const char* name, double fallback) {
  double secs = fallback;
  if (const char* v = std::getenv(name); v != nullptr && *v != '\0') {
    char* end = nullptr;
    double parsed = std::strtod(v, &end);
    if (end != nullptr && *end == '\0' && parsed >= 0 && parsed <= 86400) {
      secs = parsed;
    } else {
      spdlog::warn("{}: '{}' is not a number of seconds between 0 and 86400; using {}", name, v,
                   fallback);
    }
  }
  return std::chrono::milliseconds(static_cast<int64_t>(secs * 1000));
}

PrepareResult Refused(absl::Status status) {
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    return {nullptr, 504, "message bus subscription timed out\n"};
  }
  return {nullptr, 503, "message bus unavailable\n"};
}

// The client leg as the fan-out sessions use it: sends only while open, counts what it sends,
// and closes a client whose unsent queue grows past `max_queued` (it reads slower than the
// channel publishes; websocketpp's queue has no bound of its own).
class FanoutClient {
 public:
  // `on_too_slow` runs when the client is closed with 1008 (for the route's counter).
  FanoutClient(ServerConnectionPtr con, RouteWorkerCounters* counters, uint64_t max_queued,
               std::function<void()> on_too_slow)
      : con_(std::move(con)),
        counters_(counters),
        max_queued_(max_queued),
        on_too_slow_(std::move(on_too_slow)) {}

  bool open() const { return open_; }
  void set_traffic(std::shared_ptr<sessions::SessionTraffic> traffic) {
    traffic_ = std::move(traffic);
  }

  // Marks the leg open and sends what arrived before (in order).
  void Open() {
    open_ = true;
    while (!pending_.empty() && open_) {
      auto [payload, binary] = std::move(pending_.front());
      pending_.pop_front();
      Send(payload, binary);
    }
    pending_.clear();
    pending_bytes_ = 0;
  }

  // Before Open: queued (bounded like the send queue). After Close: dropped.
  void Send(const std::string& payload, bool binary) {
    if (closed_) return;
    if (!open_) {
      pending_bytes_ += payload.size();
      if (pending_bytes_ > max_queued_) {
        pending_.clear();
        closed_ = true;  // the handshake completes, then the close below is sent at once
        close_on_open_ = true;
        return;
      }
      pending_.emplace_back(payload, binary);
      return;
    }
    if (con_->get_state() != websocketpp::session::state::open) return;
    websocketpp::lib::error_code ec = con_->send(
        payload, binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text);
    if (ec) return;  // the leg is closing: dropped
    counters_->CountMessage(Direction::kToClient, payload.size());
    if (traffic_) traffic_->CountOut(payload.size());
    if (con_->get_buffered_amount() > max_queued_) CloseTooSlow();
  }

  void CloseTooSlow() {
    if (on_too_slow_) on_too_slow_();
    Close(1008, "client too slow");
  }

  void Close(uint16_t code, const std::string& reason) {
    closed_ = true;
    websocketpp::lib::error_code ec;  // invalid_state: already closing
    con_->close(static_cast<wsclose::value>(code), reason, ec);
  }

  // After Open: whether a pre-open overflow asked for a close.
  bool close_on_open() const { return close_on_open_; }

 private:
  ServerConnectionPtr con_;
  RouteWorkerCounters* counters_;
  std::shared_ptr<sessions::SessionTraffic> traffic_;  // the session registry's view (may be null)
  const uint64_t max_queued_;
  const std::function<void()> on_too_slow_;
  bool open_ = false;
  bool closed_ = false;
  bool close_on_open_ = false;
  std::deque<std::pair<std::string, bool>> pending_;
  uint64_t pending_bytes_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Kind `room`.

class RoomSession : public KindSession,
                    public bus::Subscriber,
                    public std::enable_shared_from_this<RoomSession> {
 public:
  RoomSession(FanoutKinds& kinds, std::shared_ptr<const RouteConfig> route, std::string room,
              std::string client_id, ServerConnectionPtr con, RouteWorkerCounters* counters)
      : kinds_(kinds),
        route_(std::move(route)),
        room_(std::move(room)),
        client_id_(std::move(client_id)),
        channel_(absl::StrCat("room:", route_->name, ":", room_)),
        token_(kinds.NextMemberToken()),
        con_(con),
        client_(std::move(con), counters, kRoomMaxQueuedBytes,
                [&kinds, name = route_->name] { kinds.events().CountBackpressureClose(name); }) {}

  // The client leg (for the session registry's traffic counter).
  FanoutClient& client() { return client_; }

  void Start(std::function<void(PrepareResult)> done) {
    bus::MessageBus* bus = kinds_.bus();
    if (bus == nullptr || !bus->up()) {
      done(Refused(absl::UnavailableError("bus down")));
      return;
    }
    std::weak_ptr<RoomSession> weak = weak_from_this();
    auto executor = con_->get_raw_socket().get_executor();
    auto evict = [weak, executor] {
      boost::asio::post(executor, [weak] {
        if (auto self = weak.lock()) self->Evicted();
      });
    };
    if (!kinds_.rooms().TryJoin(route_->name, room_, client_id_, token_, std::move(evict),
                                route_->room.replace_duplicate)) {
      done({nullptr, 409, absl::StrCat("client_id '", client_id_, "' is already in the room\n")});
      return;
    }
    joined_ = true;
    if (route_->room.replace_duplicate) {
      Subscribe(std::move(done));
      return;
    }
    // Policy reject across processes: a lease on the member's key in Redis (granted at once by
    // the in-memory bus, where the registry above already saw every member).
    lease_key_ = absl::StrCat("wsgate:room:", route_->name, ":", room_, ":", client_id_);
    auto self = shared_from_this();
    bus->Lease(kinds_.worker_index(), lease_key_, token_, kRoomLeaseTtl,
               [self, done = std::move(done)](absl::StatusOr<bool> granted) mutable {
                 if (!granted.ok() || !*granted) {
                   self->LeaveRegistry();
                   if (!granted.ok()) {
                     done(Refused(granted.status()));
                   } else {
                     done({nullptr, 409,
                           absl::StrCat("client_id '", self->client_id_,
                                        "' is already in the room\n")});
                   }
                   return;
                 }
                 self->leased_ = true;
                 self->ScheduleLeaseRefresh();
                 self->Subscribe(std::move(done));
               });
  }

  void Subscribe(std::function<void(PrepareResult)> done) {
    auto self = shared_from_this();
    kinds_.bus()->Subscribe(kinds_.worker_index(), channel_, this, bus::SubscribeOptions{},
                            [self, done = std::move(done)](absl::Status status) {
                              if (!status.ok()) {
                                self->LeaveRegistry();
                                done(Refused(status));
                                return;
                              }
                              self->subscribed_ = true;
                              done({self, 0, {}});
                            });
  }

  void OnOpen() override {
    opened_ = true;
    if (evicted_) {
      client_.Close(4000, "replaced by a newer connection with the same client_id");
      return;
    }
    client_.Open();
    if (client_.close_on_open()) client_.CloseTooSlow();
    // The seed has no join text; the JSON envelope mode announces every member that opens
    // (a replacement too: the others never saw the old connection leave, they see a rejoin).
    if (route_->room.json_format) Broadcast(RoomJsonEvent("joined", client_id_));
  }

  void OnMessage(const MessagePtr& msg) override {
    if (msg->get_opcode() != websocketpp::frame::opcode::text) {
      client_.Close(1003, "rooms carry text messages only");
      return;
    }
    const std::string& text = msg->get_payload();
    if (route_->room.json_format) {
      client_.Send(RoomJsonMessage(client_id_, text, true), false);
      Broadcast(RoomJsonMessage(client_id_, text, false));
      return;
    }
    client_.Send(FormatRoomText(route_->room.self_template, client_id_, text), false);
    Broadcast(FormatRoomText(route_->room.broadcast_template, client_id_, text));
  }

  void OnTerminated() override {
    if (terminated_) return;
    terminated_ = true;
    if (subscribed_) {
      kinds_.bus()->Unsubscribe(kinds_.worker_index(), channel_, this);
      subscribed_ = false;
      // Only a member the others could have seen leaves; a refused handshake joined no one, and
      // an evicted member's id is still in the room.
      if (opened_ && !evicted_) {
        Broadcast(route_->room.json_format
                      ? RoomJsonEvent("left", client_id_)
                      : FormatRoomText(route_->room.leave_template, client_id_, ""));
      }
    }
    LeaveRegistry();
  }

  // A message on the room's channel.
  void OnMessage(const bus::BusMessagePtr& m) override {
    std::string_view payload = m->payload;
    if (payload.substr(0, kRoomMagic.size()) == kRoomMagic) {
      payload.remove_prefix(kRoomMagic.size());
      size_t nl = payload.find('\n');
      if (nl == std::string_view::npos) return;     // not ours after all: malformed, dropped
      if (payload.substr(0, nl) == token_) return;  // our own broadcast
      client_.Send(std::string(payload.substr(nl + 1)), false);
      return;
    }
    client_.Send(m->payload, m->is_binary);
  }

 private:
  void Broadcast(const std::string& text) {
    absl::Status s = kinds_.bus()->Publish(
        channel_, absl::StrCat(std::string(kRoomMagic), token_, "\n", text), false);
    if (!s.ok() && spdlog::should_log(spdlog::level::debug)) {
      spdlog::debug("route {}: room broadcast lost: {}", route_->name, s.ToString());
    }
  }

  void LeaveRegistry() {
    if (lease_timer_) lease_timer_->cancel();
    if (leased_) {
      leased_ = false;
      kinds_.bus()->ReleaseLease(lease_key_, token_);
    }
    if (!joined_) return;
    joined_ = false;
    kinds_.rooms().Leave(route_->name, room_, client_id_, token_);
  }

  // Keeps the lease alive while the member is connected (and takes it back if Redis lost it in
  // an outage). A refusal means another process took the id after our lease expired: logged,
  // the member stays (closing it would punish the older connection).
  void ScheduleLeaseRefresh() {
    if (!lease_timer_) {
      lease_timer_ =
          std::make_unique<boost::asio::steady_timer>(con_->get_raw_socket().get_executor());
    }
    std::weak_ptr<RoomSession> weak = weak_from_this();
    lease_timer_->expires_after(kRoomLeaseTtl / 3);
    lease_timer_->async_wait([weak](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || !self->leased_) return;
      self->kinds_.bus()->Lease(
          self->kinds_.worker_index(), self->lease_key_, self->token_, kRoomLeaseTtl,
          [weak](absl::StatusOr<bool> granted) {
            auto s = weak.lock();
            if (s && granted.ok() && !*granted && spdlog::should_log(spdlog::level::debug)) {
              spdlog::debug("route {}: room lease of a member was taken by another process",
                            s->route_->name);
            }
          });
      self->ScheduleLeaseRefresh();
    });
  }

  // Another connection took this client_id (policy replace): close with 4000, no leave notice.
  void Evicted() {
    if (terminated_ || evicted_) return;
    evicted_ = true;
    joined_ = false;  // the entry belongs to the new member now
    if (opened_) client_.Close(4000, "replaced by a newer connection with the same client_id");
  }

  FanoutKinds& kinds_;
  const std::shared_ptr<const RouteConfig> route_;
  const std::string room_;
  const std::string client_id_;
  const std::string channel_;
  const std::string token_;
  ServerConnectionPtr con_;
  FanoutClient client_;
  std::string lease_key_;  // policy reject: the cross-process lease on the client id
  std::unique_ptr<boost::asio::steady_timer> lease_timer_;
  bool leased_ = false;
  bool evicted_ = false;
  bool joined_ = false;
  bool subscribed_ = false;
  bool opened_ = false;
  bool terminated_ = false;
};

// ---------------------------------------------------------------------------------------------
// Kind `pubsub`.

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
  void OnMessage(const bus::BusMessagePtr& m) override { client_.Send(m->payload, m->is_binary); }

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
  auth::FoundToken found = auth::FindToken(head.HasHeader("authorization"),
                                           head.Header("authorization"), head.target,
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
  auth::JwtOutcome outcome = auth::VerifyJwtHs256(
      found.token, settings.jwt_secret, ParamValue(params, settings.session_param), now);
  if (outcome != auth::JwtOutcome::kOk) {
    kinds.events().CountAuthFailure(route.name, auth::JwtOutcomeReason(outcome));
    static constexpr const char* kBodies[] = {
        "", "malformed token\n", "token algorithm must be HS256\n", "bad token signature\n",
        "token expired\n", "token not yet valid\n", "token is for another session\n"};
    done({nullptr, auth::JwtHttpStatus(outcome), kBodies[static_cast<int>(outcome)]});
    return;
  }
  session->Start(std::move(done));
}

// The seed's embedded test page, rewritten: get a client id from POST /api/clients, join the
// first room route, send and show messages. Plain HTML and JavaScript, no build step.
constexpr char kChatPage[] = R"html(<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>wsgate chat</title></head>
<body>
<h1>wsgate chat</h1>
<p>Your ID: <span id="id">...</span></p>
<form id="form"><input id="text" autocomplete="off"><button>Send</button></form>
<ul id="messages"></ul>
<script>
const ROOM_PATH = "__ROOM_PATH__";
const CLIENT_PARAM = "__CLIENT_PARAM__";
function show(text) {
  const li = document.createElement("li");
  li.textContent = text;
  document.getElementById("messages").appendChild(li);
}
fetch("/api/clients", {method: "POST"}).then(r => r.json()).then(({client_id}) => {
  document.getElementById("id").textContent = client_id;
  const path = ROOM_PATH.replace("{" + CLIENT_PARAM + "}", encodeURIComponent(client_id))
                        .replace(/\{[^}]*\}/g, "lobby");
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") +
                           location.host + path);
  ws.onmessage = e => show(e.data);
  ws.onclose = e => show("(closed " + e.code + (e.reason ? ": " + e.reason : "") + ")");
  document.getElementById("form").onsubmit = e => {
    e.preventDefault();
    const input = document.getElementById("text");
    ws.send(input.value);
    input.value = "";
  };
});
</script>
</body>
</html>
)html";

std::string ReplaceAll(std::string s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

}  // namespace

std::string ExpandTemplate(std::string_view tmpl,
                           const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl[i] == '{') {
      size_t close = tmpl.find('}', i);
      if (close != std::string_view::npos) {
        out.append(ParamValue(params, std::string(tmpl.substr(i + 1, close - i - 1))));
        i = close + 1;
        continue;
      }
    }
    out.push_back(tmpl[i++]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// RoomRegistry

bool RoomRegistry::TryJoin(const std::string& route, const std::string& room,
                           const std::string& client_id, const std::string& token,
                           std::function<void()> evict, bool replace) {
  std::function<void()> evict_old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, added] = members_.try_emplace({route, room, client_id}, Member{token, evict});
    if (added) {
      ++per_route_[route];
      return true;
    }
    if (!replace) return false;
    evict_old = std::move(it->second.evict);
    it->second = Member{token, std::move(evict)};
  }
  if (evict_old) evict_old();
  return true;
}

void RoomRegistry::Leave(const std::string& route, const std::string& room,
                         const std::string& client_id, const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = members_.find({route, room, client_id});
  if (found == members_.end() || found->second.token != token) return;
  members_.erase(found);
  auto it = per_route_.find(route);
  if (it != per_route_.end() && --it->second <= 0) per_route_.erase(it);
}

std::map<std::string, int64_t> RoomRegistry::MembersByRoute() const {
  std::lock_guard<std::mutex> lock(mu_);
  return per_route_;
}

// ---------------------------------------------------------------------------------------------
// FanoutEvents

void FanoutEvents::CountBackpressureClose(const std::string& route) {
  std::lock_guard<std::mutex> lock(mu_);
  ++backpressure_closes_[route];
}

void FanoutEvents::CountAuthFailure(const std::string& route, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++auth_failures_[{route, reason}];
}

std::map<std::string, uint64_t> FanoutEvents::BackpressureCloses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return backpressure_closes_;
}

std::map<std::pair<std::string, std::string>, uint64_t> FanoutEvents::AuthFailures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return auth_failures_;
}

// ---------------------------------------------------------------------------------------------
// FanoutKinds

FanoutKinds::FanoutKinds(int worker_index, bus::MessageBus* bus,
                         std::shared_ptr<RoomRegistry> rooms, std::shared_ptr<FanoutEvents> events)
    : worker_index_(worker_index),
      bus_(bus),
      rooms_(rooms ? std::move(rooms) : std::make_shared<RoomRegistry>()),
      events_(events ? std::move(events) : std::make_shared<FanoutEvents>()),
      ping_interval_(SecondsFromEnvironment("WS_PING_INTERVAL_SECS", 30)),
      ping_timeout_(SecondsFromEnvironment("WS_PING_TIMEOUT_SECS", 10)) {
  unsigned char r[8];
  RandomBytes(r, sizeof(r));
  token_prefix_ = absl::StrCat(Hex(r, sizeof(r)), ".", worker_index_, ".");
}

FanoutKinds::~FanoutKinds() = default;

std::string FanoutKinds::NextMemberToken() { return absl::StrCat(token_prefix_, next_token_++); }

std::string FanoutKinds::NewUuid() {
  unsigned char b[16];
  RandomBytes(b, sizeof(b));
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string h = Hex(b, sizeof(b));
  return absl::StrCat(h.substr(0, 8), "-", h.substr(8, 4), "-", h.substr(12, 4), "-",
                      h.substr(16, 4), "-", h.substr(20));
}

bool FanoutKinds::bus_down() const { return bus_ != nullptr && !bus_->up(); }

void FanoutKinds::Prepare(std::shared_ptr<const RouteConfig> route,
                          const std::vector<std::pair<std::string, std::string>>& params,
                          const RequestHead& head, ServerConnectionPtr client,
                          RouteWorkerCounters* counters, std::function<void(PrepareResult)> done,
                          std::shared_ptr<sessions::SessionTraffic> traffic) {
  if (route->kind == RouteKind::kRoom) {
    std::string client_id = ParamValue(params, route->room.client_id_param);
    std::string room =
        route->room.room_param.empty() ? std::string() : ParamValue(params, route->room.room_param);
    if (client_id.empty()) {
      done({nullptr, 400, "missing client id\n"});
      return;
    }
    auto session = std::make_shared<RoomSession>(*this, route, std::move(room),
                                                 std::move(client_id), std::move(client), counters);
    session->client().set_traffic(std::move(traffic));
    session->Start(std::move(done));
    return;
  }
  if (route->kind == RouteKind::kPubSub) {
    std::string down = ExpandTemplate(route->pubsub.down_channel, params);
    std::string up = route->pubsub.up_channel.empty()
                         ? std::string()
                         : ExpandTemplate(route->pubsub.up_channel, params);
    auto session = std::make_shared<PubSubSession>(*this, route, std::move(down), std::move(up),
                                                   std::move(client), counters);
    session->client().set_traffic(std::move(traffic));
    if (route->pubsub.auth != PubSubSettings::Auth::kNone) {
      AuthorizePubSub(*this, *route, params, head, session, std::move(done));
      return;
    }
    session->Start(std::move(done));
    return;
  }
  done({nullptr, 501, "not a fan-out route kind\n"});
}

bool FanoutKinds::HandleHttp(const ServerConnectionPtr& con, std::string_view path, bool root_free,
                             const SnapshotPtr& snapshot) {
  ServerEndpoint::connection_type& c = *con;
  if (path == "/api/clients") {
    if (c.get_request().get_method() != "POST") {
      RespondHttp(c, 405, nlohmann::json{{"detail", "Method Not Allowed"}}.dump(), "application/json");
      try {
        c.replace_header("Allow", "POST");
      } catch (const std::exception&) {
      }
      return true;
    }
    RespondHttp(c, 200, nlohmann::json{{"client_id", NewUuid()}}.dump(), "application/json");
    return true;
  }
  if (path == "/" && root_free) {
    if (c.get_request().get_method() != "GET") return false;
    std::shared_ptr<const RouteConfig> room;
    if (snapshot) {
      for (const auto& r : snapshot->routes) {
        if (r->kind == RouteKind::kRoom) {
          room = r;
          break;
        }
      }
    }
    if (!room) return false;
    // Route paths and parameter names are validated ([A-Za-z0-9_...] and '/'): nothing to escape
    // for a JavaScript string, but quotes and backslashes are refused anyway.
    if (room->path.find_first_of("\"\\<") != std::string::npos) return false;
    std::string page = ReplaceAll(kChatPage, "__ROOM_PATH__", room->path);
    page = ReplaceAll(std::move(page), "__CLIENT_PARAM__", room->room.client_id_param);
    RespondHttp(c, 200, page, "text/html; charset=utf-8");
    return true;
  }
  return false;
}

}  // namespace wsgate::dataplane::transport
