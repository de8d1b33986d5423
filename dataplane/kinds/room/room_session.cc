#include "dataplane/kinds/room/room_session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "dataplane/kinds/fanout/fanout_session.h"

namespace wsgate::dataplane::transport {

namespace {

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
    bus->Lease(
        kinds_.worker_index(), lease_key_, token_, kRoomLeaseTtl,
        [self, done = std::move(done)](absl::StatusOr<bool> granted) mutable {
          if (!granted.ok() || !*granted) {
            self->LeaveRegistry();
            if (!granted.ok()) {
              done(Refused(granted.status()));
            } else {
              done({nullptr, 409,
                    absl::StrCat("client_id '", self->client_id_, "' is already in the room\n")});
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
      // Every other member of this worker sends the same bytes: one frame for all of them.
      const size_t text_at = static_cast<size_t>(payload.data() - m->payload.data()) + nl + 1;
      client_.SendFrame(kinds_.frames().For(m, text_at, false));
      return;
    }
    client_.SendFrame(kinds_.frames().For(m, 0, m->is_binary));
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

}  // namespace

void PrepareRoom(FanoutKinds& kinds, std::shared_ptr<const RouteConfig> route,
                 const std::vector<std::pair<std::string, std::string>>& params,
                 ServerConnectionPtr client, RouteWorkerCounters* counters,
                 std::function<void(PrepareResult)> done,
                 std::shared_ptr<sessions::SessionTraffic> traffic) {
  std::string client_id = ParamValue(params, route->room.client_id_param);
  std::string room =
      route->room.room_param.empty() ? std::string() : ParamValue(params, route->room.room_param);
  if (client_id.empty()) {
    done({nullptr, 400, "missing client id\n"});
    return;
  }
  auto session = std::make_shared<RoomSession>(kinds, route, std::move(room), std::move(client_id),
                                               std::move(client), counters);
  session->client().set_traffic(std::move(traffic));
  session->Start(std::move(done));
}

}  // namespace wsgate::dataplane::transport
