// Kind `room` (seed 002): chat-style broadcast among the members of a room, through the message
// bus channel `room:<route>:<room>`. One RoomSession per client connection (room_session.cc);
// FanoutKinds::Prepare hands a kRoom route to PrepareRoom.
//
// Threading: the session and every bus callback it receives run on the worker thread that owns
// the client; only RoomRegistry (room_registry.h) is shared across workers.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/kinds/fanout/fanout_kinds.h"

namespace wsgate::dataplane::transport {

// Joins the client to the room named by the path parameters (400 without a client id), takes
// its lease and subscribes; `done` gets the session or the handshake's HTTP status (see
// FanoutKinds::Prepare).
void PrepareRoom(FanoutKinds& kinds, std::shared_ptr<const RouteConfig> route,
                 const std::vector<std::pair<std::string, std::string>>& params,
                 ServerConnectionPtr client, RouteWorkerCounters* counters,
                 std::function<void(PrepareResult)> done,
                 std::shared_ptr<sessions::SessionTraffic> traffic);

}  // namespace wsgate::dataplane::transport
