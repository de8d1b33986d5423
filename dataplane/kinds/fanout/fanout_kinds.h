// The route kinds that fan messages out through the message bus: `room` (seed 002,
// chat-style broadcast) and `pubsub` (seed 004, a connection bound to a session's down/up
// channels). Both subscribe to their channel *before* the client's handshake is answered, so the
// worker asks FanoutKinds::Prepare for a KindSession first and starts the client leg when the
// answer comes: a session (101) or an HTTP status (409 duplicate client id, 503 bus down, 504
// subscription timeout).
//
// This folder holds what both kinds share (this entry point, fanout_session.h); each kind's
// session is in its own folder: ../room/ (session, registry, REST) and ../pubsub/ (session, auth).
//
// Threading: FanoutKinds, every session it creates and every bus callback they receive belong
// to one worker thread. RoomRegistry (../room/room_registry.h) is shared by the workers of a
// data plane and is thread-safe (a mutex taken on join and leave, never per message).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "dataplane/bus/message_bus.h"
#include "dataplane/kinds/fanout/shared_frame.h"
#include "dataplane/kinds/outbound/outbound_kinds.h"
#include "dataplane/kinds/room/room_registry.h"
#include "dataplane/routing/snapshot.h"
#include "dataplane/stats/route_stats.h"
#include "dataplane/transport/request_head.h"
#include "dataplane/transport/ws_config.h"

namespace wsgate::dataplane::transport {

// Rare events of the fan-out kinds, by route, for wsgate_backpressure_closes_total and
// wsgate_auth_failures_total. Thread-safe (a mutex per event: a close or a refused handshake,
// never a message).
class FanoutEvents {
 public:
  void CountBackpressureClose(const std::string& route);
  void CountAuthFailure(const std::string& route, const std::string& reason);
  std::map<std::string, uint64_t> BackpressureCloses() const;
  std::map<std::pair<std::string, std::string>, uint64_t> AuthFailures() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> backpressure_closes_;
  std::map<std::pair<std::string, std::string>, uint64_t> auth_failures_;
};

// What Prepare decided: a session to start (status 0), or an HTTP status for the handshake.
struct PrepareResult {
  std::shared_ptr<KindSession> session;
  int status = 0;
  std::string body;
};

// Per-worker state of the fan-out kinds. Owned by the worker, used only on its thread.
class FanoutKinds {
 public:
  // `bus` may be null (no bus: every room/pubsub handshake gets 503); it must outlive this
  // object's use on the worker thread. `rooms` is shared by all workers. `ping_interval` and
  // `ping_timeout`: pubsub liveness (DataPlaneOptions::pubsub_ping_*).
  FanoutKinds(int worker_index, bus::MessageBus* bus, std::shared_ptr<RoomRegistry> rooms,
              std::shared_ptr<FanoutEvents> events, std::chrono::milliseconds ping_interval,
              std::chrono::milliseconds ping_timeout);
  ~FanoutKinds();
  FanoutKinds(const FanoutKinds&) = delete;
  FanoutKinds& operator=(const FanoutKinds&) = delete;

  // For a route of kind kRoom or kPubSub. `done` runs once on the worker thread, possibly before
  // Prepare returns. When the worker no longer wants a returned session (the client went away
  // meanwhile) it must call OnTerminated() on it so that it leaves its channel.
  // `head` is the client's request (the pubsub token: Authorization header, subprotocol offers or
  // query string); read before Prepare returns.
  void Prepare(std::shared_ptr<const RouteConfig> route,
               const std::vector<std::pair<std::string, std::string>>& params,
               const RequestHead& head, ServerConnectionPtr client, RouteWorkerCounters* counters,
               std::function<void(PrepareResult)> done,
               std::shared_ptr<sessions::SessionTraffic> traffic = nullptr);

  // /health must say 503 while a configured Redis is unreachable.
  bool bus_down() const;

  // POST /api/clients (seed 002: {"client_id": "<uuid>"}) and, when `root_free` (no route
  // serves "/"), GET / (a small chat page). False when `path` is neither.
  bool HandleHttp(const ServerConnectionPtr& con, std::string_view path, bool root_free,
                  const SnapshotPtr& snapshot);

  bus::MessageBus* bus() { return bus_; }
  RoomRegistry& rooms() { return *rooms_; }
  FanoutEvents& events() { return *events_; }
  int worker_index() const { return worker_index_; }
  // A token unique to one room member in every process: a member skips the broadcasts it
  // published itself (the sender gets "You wrote: ..." directly), so nothing is echoed twice.
  std::string NextMemberToken();
  std::string NewUuid();
  // Pubsub liveness (seed 004's WS_PING_INTERVAL_SECS, default 30, and WS_PING_TIMEOUT_SECS,
  // default 10, read by the control plane's settings; 0 disables): a ping every interval, closed
  // without a pong in time.
  std::chrono::milliseconds ping_interval() const { return ping_interval_; }
  std::chrono::milliseconds ping_timeout() const { return ping_timeout_; }
  // The frame of the bus message being delivered, shared by this worker's subscribers.
  SharedFrames& frames() { return frames_; }

 private:
  const int worker_index_;
  bus::MessageBus* const bus_;
  std::shared_ptr<RoomRegistry> rooms_;
  std::shared_ptr<FanoutEvents> events_;
  std::chrono::milliseconds ping_interval_;
  std::chrono::milliseconds ping_timeout_;
  std::string token_prefix_;  // random per worker and process
  uint64_t next_token_ = 1;
  SharedFrames frames_;
};

// Substitutes {name} in `tmpl` with the value of path parameter `name` (unknown names: empty).
std::string ExpandTemplate(std::string_view tmpl,
                           const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace wsgate::dataplane::transport
