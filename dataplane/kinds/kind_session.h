// The interface between the worker and a route kind's sessions. Each kind lives in its own
// folder below dataplane/kinds/ (session, codec glue, README); the worker (dataplane/transport/)
// creates a kind's session once the handshake is routed and admitted, and calls it on the
// worker thread only.
//
// Kind `websocket` does not use this interface: its relay takes the client's socket out of
// websocketpp altogether (kinds/websocket/README.md). Kind `echo` has no session of its own.
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/transport/ws_config.h"

namespace wsgate::dataplane::transport {

// The client leg of one session as a route kind sees it.
class ClientLink {
 public:
  virtual ~ClientLink() = default;
  // Dropped when the leg is not open (closing or gone).
  virtual void SendText(const std::string& text) = 0;
  virtual void Close(uint16_t code, const std::string& reason) = 0;
};

// One client connection of a route kind that websocketpp serves (http_bridge, external_client,
// room, pubsub): the few calls the worker makes. The worker owns the client leg, its limits
// and the session registry; the kind owns what the connection means.
class KindSession {
 public:
  virtual ~KindSession() = default;
  // websocketpp's validate step of an accepted handshake (before 101), the only moment a
  // response header or the subprotocol can be set. Default: nothing.
  virtual void OnValidate() {}
  virtual void OnOpen() = 0;
  virtual void OnMessage(const MessagePtr& msg) = 0;
  // The client leg has terminated (called once): cancel and release everything. No callback of
  // this session reaches the client afterwards.
  virtual void OnTerminated() = 0;
};

}  // namespace wsgate::dataplane::transport
