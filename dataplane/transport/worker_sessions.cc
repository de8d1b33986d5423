// The session registry: ids, descriptions, events, and the queries other threads post.
#include "dataplane/transport/worker_internal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <exception>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "dataplane/codec/ws_handshake.h"
#include "dataplane/kinds/fanout/fanout_kinds.h"
#include "dataplane/codec/frame_in_place.h"
#include "dataplane/transport/http_response.h"

namespace wsgate::dataplane::transport {

using boost::asio::ip::tcp;
namespace wsclose = websocketpp::close::status;

// ---------------------------------------------------------------------------------------------
// Session registry.

namespace {

std::string_view ParamValue(const std::vector<std::pair<std::string, std::string>>& params,
                            std::string_view name) {
  for (const auto& [n, v] : params) {
    if (n == name) return v;
  }
  return {};
}

// The first {name} of a channel template: the pubsub route's session parameter (the control
// plane builds the default templates from it).
std::string_view FirstTemplateParam(std::string_view tmpl) {
  size_t open = tmpl.find('{');
  if (open == std::string_view::npos) return {};
  size_t close = tmpl.find('}', open);
  if (close == std::string_view::npos) return {};
  return tmpl.substr(open + 1, close - open - 1);
}

}  // namespace

void Worker::RegisterSession(const SessionPtr& s, const RequestHead& head,
                             const std::vector<std::pair<std::string, std::string>>& params) {
  const RouteConfig& route = *s->route;
  std::string_view natural;
  switch (route.kind) {
    case RouteKind::kPubSub: {
      natural = ParamValue(params, FirstTemplateParam(route.pubsub.down_channel));
      s->bound_to = ExpandTemplate(route.pubsub.down_channel, params);
      if (!route.pubsub.up_channel.empty()) {
        s->bound_to += "," + ExpandTemplate(route.pubsub.up_channel, params);
      }
      break;
    }
    case RouteKind::kRoom:
      natural = ParamValue(params, route.room.client_id_param);
      // The channel name room_session.cc (kinds/room/) uses for the room.
      s->bound_to = "room:" + route.name + ":";
      if (!route.room.room_param.empty()) {
        s->bound_to += ParamValue(params, route.room.room_param);
      }
      break;
    case RouteKind::kExternalClient:
      natural = ParamValue(params, route.external_client.client_id_param);
      break;
    default:
      break;
  }
  s->sid = options_.session_ids->Claim(
      natural.empty() ? "s-" + std::to_string(index_) + "-" + std::to_string(next_generated_sid_++)
                      : std::string(natural));
  by_sid_[s->sid] = s.get();
  s->path = std::string(TargetPath(head.target));
  s->path_params = params;
  s->user_agent = head.Header("user-agent");
  s->connected_at = sessions::NowUnixNanos();
}

sessions::SessionState Worker::StateOf(const Session& s) const {
  if (s.client_done) return sessions::SessionState::kClosing;
  if (s.relay) {
    switch (s.relay->client_state()) {
      case ProxyRelay::State::kConnecting:
        return sessions::SessionState::kConnecting;
      case ProxyRelay::State::kOpen:
        return sessions::SessionState::kOpen;
      default:
        return sessions::SessionState::kClosing;
    }
  }
  if (s.client_open) {
    return s.client->get_state() == websocketpp::session::state::open
               ? sessions::SessionState::kOpen
               : sessions::SessionState::kClosing;
  }
  return s.open_seen ? sessions::SessionState::kClosing : sessions::SessionState::kConnecting;
}

sessions::SessionInfo Worker::DescribeSession(const Session& s) const {
  sessions::SessionInfo info;
  info.id = s.sid;
  info.route = s.route->name;
  info.kind = RouteKindName(s.route->kind);
  info.path = s.path;
  info.path_params = s.path_params;
  info.remote_address = s.client_ip;
  info.remote_port = s.client_port;
  info.user_agent = s.user_agent;
  if (s.plan == Session::Plan::kProxy) {
    info.subprotocol = s.upstream_subprotocol;
  } else if (s.open_seen) {
    info.subprotocol = s.client->get_subprotocol();
  }
  info.state = StateOf(s);
  info.connected_at = s.connected_at;
  info.last_activity = s.last_activity;
  info.messages_in = s.messages_in;
  info.bytes_in = s.bytes_in;
  info.messages_out = s.messages_out;
  info.bytes_out = s.bytes_out;
  if (s.kind_traffic) {
    info.messages_out += s.kind_traffic->messages_out;
    info.bytes_out += s.kind_traffic->bytes_out;
    info.last_activity = std::max(info.last_activity, s.kind_traffic->last_activity);
  }
  if (s.relay) {
    info.queued_bytes = s.relay->client_queued_bytes();
  } else if (s.client_started) {
    info.queued_bytes = s.client->get_buffered_amount();
  }
  info.bound_to = s.bound_to;
  // After a live update the session follows its route's new limits (ApplyLimitsToOpenSessions).
  info.limits = s.limits.config ? s.limits.config->limits : s.route->limits;
  info.worker = static_cast<uint32_t>(index_);
  return info;
}

Worker::Session* Worker::FindSession(const std::string& id) const {
  auto it = by_sid_.find(id);
  return it == by_sid_.end() ? nullptr : it->second;
}

void Worker::EmitSessionEvent(const Session& s, sessions::SessionEvent::Type type,
                              uint16_t close_code, std::string_view close_reason,
                              std::string_view limit) {
  sessions::SessionEventHub& hub = *options_.session_events;
  if (!hub.active() || s.sid.empty()) return;
  sessions::SessionEvent e;
  e.type = type;
  e.time = sessions::NowUnixNanos();
  e.session_id = s.sid;
  e.route = s.route->name;
  e.remote_address = s.client_ip;
  e.close_code = close_code;
  e.close_reason = std::string(close_reason);
  e.limit = std::string(limit);
  hub.Emit(e);
}

void Worker::Post(std::function<void()> fn) { boost::asio::post(ioc_, std::move(fn)); }

sessions::SessionPage Worker::QuerySessions(const sessions::SessionQuery& q) const {
  sessions::SessionPage page;
  std::vector<const Session*> after;
  for (const auto& [sid, sp] : by_sid_) {
    const Session& s = *sp;
    if (!q.filter.Matches(s.sid, s.route->name, s.client_ip, StateOf(s))) continue;
    ++page.total;
    if (!q.after || sessions::After(*q.after, s.connected_at, s.sid)) after.push_back(&s);
  }
  auto earlier = [](const Session* a, const Session* b) {
    return sessions::Earlier(a->connected_at, a->sid, b->connected_at, b->sid);
  };
  const size_t n = std::min(after.size(), q.limit);
  std::partial_sort(after.begin(), after.begin() + static_cast<std::ptrdiff_t>(n), after.end(),
                    earlier);
  page.more = after.size() > n;
  page.sessions.reserve(n);
  for (size_t i = 0; i < n; ++i) page.sessions.push_back(DescribeSession(*after[i]));
  return page;
}

std::map<std::string, sessions::RouteSessionCounts> Worker::CountSessions() const {
  std::map<std::string, sessions::RouteSessionCounts> out;
  for (const auto& [sid, sp] : by_sid_) {
    sessions::RouteSessionCounts& c = out[sp->route->name];
    switch (StateOf(*sp)) {
      case sessions::SessionState::kConnecting:
        ++c.connecting;
        break;
      case sessions::SessionState::kOpen:
        ++c.open;
        break;
      case sessions::SessionState::kClosing:
        ++c.closing;
        break;
    }
    if (sp->relay && sp->relay->upstream_open()) ++c.upstream_open;
  }
  return out;
}

std::optional<sessions::SessionInfo> Worker::FindSessionInfo(const std::string& id) const {
  const Session* s = FindSession(id);
  return s ? std::optional<sessions::SessionInfo>(DescribeSession(*s)) : std::nullopt;
}

Worker::SessionOpResult Worker::CloseSession(const std::string& id, uint16_t code,
                                             const std::string& reason) {
  Session* s = FindSession(id);
  if (s == nullptr) return SessionOpResult::kNotFound;
  if (StateOf(*s) != sessions::SessionState::kOpen) return SessionOpResult::kNotOpen;
  // Both legs at once, with the same code and reason: the upstream learns why (the client's
  // echo would carry the same code later anyway).
  SessionPtr keep = sessions_.at(s->id);  // closing may finish the session synchronously
  CloseUpstream(*keep, code, reason);
  CloseClient(*keep, code, reason);
  return SessionOpResult::kDone;
}

Worker::SessionOpResult Worker::SendToSession(const std::string& id, const std::string& payload,
                                              bool binary) {
  Session* s = FindSession(id);
  if (s == nullptr) return SessionOpResult::kNotFound;
  if (StateOf(*s) != sessions::SessionState::kOpen) return SessionOpResult::kNotOpen;
  if (s->relay) {
    if (!s->relay->SendToClient(payload, binary)) return SessionOpResult::kNotOpen;
  } else {
    websocketpp::lib::error_code ec = s->client->send(
        payload, binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text);
    if (ec) return SessionOpResult::kNotOpen;
  }
  s->counters->CountMessage(Direction::kToClient, payload.size());
  ++s->messages_out;
  s->bytes_out += payload.size();
  s->last_activity = sessions::CoarseNowUnixNanos();
  return SessionOpResult::kDone;
}

}  // namespace wsgate::dataplane::transport
