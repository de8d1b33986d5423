// Kind `pubsub` (seed 004): a connection bound to a session's channels, `down` (bus → client)
// and `up` (client → bus). One PubSubSession per client connection (pubsub_session.cc), with the
// route's auth mode checked before it subscribes; FanoutKinds::Prepare hands a kPubSub route to
// PreparePubSub.
//
// Threading: the session and every bus callback it receives run on the worker thread that owns
// the client (a Redis token lookup runs on the bus thread and completes on the worker).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/kinds/fanout/fanout_kinds.h"

namespace wsgate::dataplane::transport {

// Expands the route's channel templates, checks the client's token (per the route's auth mode;
// `head` is read before this returns) and subscribes the down channel; `done` gets the session
// or the handshake's HTTP status (see FanoutKinds::Prepare).
void PreparePubSub(FanoutKinds& kinds, std::shared_ptr<const RouteConfig> route,
                   const std::vector<std::pair<std::string, std::string>>& params,
                   const RequestHead& head, ServerConnectionPtr client,
                   RouteWorkerCounters* counters, std::function<void(PrepareResult)> done,
                   std::shared_ptr<sessions::SessionTraffic> traffic);

}  // namespace wsgate::dataplane::transport
