// What the session registry reports about one connection, and the query language of
// ListSessions (filters, order, page cursor). Plain C++: the data plane has no protobuf; the
// control plane maps these to wsgate.v1.Session.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dataplane/routing/route_config.h"

namespace wsgate::dataplane::sessions {

enum class SessionState { kConnecting = 1, kOpen = 2, kClosing = 3 };

// Nanoseconds since the Unix epoch (system clock).
using UnixNanos = int64_t;
UnixNanos NowUnixNanos();
// CLOCK_REALTIME_COARSE: a few ns, resolution of a scheduler tick (1-4 ms). Used per message
// for `last_activity`, where a tick of error does not matter.
UnixNanos CoarseNowUnixNanos();

// What a route kind (room, pubsub, http_bridge, external_client) sends to its client itself,
// outside the worker's own send paths: counted by the kind, read by the registry. Owned jointly by
// the worker's session and the kind's client leg (shared_ptr: the kind may outlive the session
// by a pending callback); worker thread only.
struct SessionTraffic {
  uint64_t messages_out = 0;
  uint64_t bytes_out = 0;
  UnixNanos last_activity = 0;
  void CountOut(size_t bytes) {
    ++messages_out;
    bytes_out += bytes;
    last_activity = CoarseNowUnixNanos();
  }
};

struct SessionInfo {
  std::string id;
  std::string route;
  std::string kind;  // RouteKindName: "websocket", "echo", ...
  std::string path;
  std::vector<std::pair<std::string, std::string>> path_params;
  std::string remote_address;
  uint16_t remote_port = 0;
  std::string user_agent;
  std::string subprotocol;
  SessionState state = SessionState::kConnecting;
  UnixNanos connected_at = 0;
  UnixNanos last_activity = 0;  // 0: no message yet
  uint64_t messages_in = 0;
  uint64_t bytes_in = 0;
  uint64_t messages_out = 0;
  uint64_t bytes_out = 0;
  uint64_t queued_bytes = 0;
  std::string bound_to;
  // The limits of the route the session started with (what the data plane enforces for it).
  RouteLimits limits;
  uint32_t worker = 0;
};

// ListSessions filters; empty / nullopt matches anything.
struct SessionFilter {
  std::string route;
  std::string id_prefix;
  std::string remote_address;
  std::optional<SessionState> state;

  bool Matches(std::string_view id, std::string_view route_name, std::string_view address,
               SessionState s) const;
};

// Sessions are listed in (connected_at, id) order; a page starts after the last one of the
// previous page. Encoding that position (rather than an offset) keeps pages stable while
// sessions come and go between two calls: nothing is skipped or repeated except sessions that
// connected or left meanwhile.
struct PageCursor {
  UnixNanos connected_at = 0;
  std::string id;
};
// True when (at, id) sorts strictly after `cursor`.
bool After(const PageCursor& cursor, UnixNanos at, std::string_view id);
// (a_at, a_id) < (b_at, b_id).
inline bool Earlier(UnixNanos a_at, std::string_view a_id, UnixNanos b_at, std::string_view b_id) {
  return a_at != b_at ? a_at < b_at : a_id < b_id;
}

// Opaque to clients: base64url of "c1:<connected_at>:<id>".
std::string EncodePageToken(const PageCursor& cursor);
// nullopt for anything EncodePageToken did not produce.
std::optional<PageCursor> DecodePageToken(std::string_view token);

struct SessionQuery {
  SessionFilter filter;
  std::optional<PageCursor> after;
  size_t limit = 100;
};

struct SessionPage {
  std::vector<SessionInfo> sessions;  // at most `limit`, in order
  uint64_t total = 0;                 // matching the filter, on every page
  bool more = false;                  // sessions after the last one returned
};

// Per route: sessions by state, and upstream legs open (kind websocket's upstream connections;
// kind external_client's are in the route's counters).
struct RouteSessionCounts {
  uint64_t connecting = 0;
  uint64_t open = 0;
  uint64_t closing = 0;
  uint64_t upstream_open = 0;
};

}  // namespace wsgate::dataplane::sessions
