// The Redis backend of the ConfigStore (--store-url): control-plane replicas sharing one config.
//
// Key layout (in the URL's database): one hash `wsgate:config` with the fields
//   version  the config version, decimal (absent: nothing stored yet)
//   state    a wsgate.v1.StoredState in protobuf's JSON mapping (routes.json's format)
// and the Pub/Sub channel `wsgate:config:changed`, on which every write publishes the new
// version. A write is one EVAL: it compares `version` with the version the change started
// from, and only if they are equal sets both fields and publishes, all atomically.
//
// Connections (hiredis, synchronous, 1 s connect/read/write timeouts): one for commands, shared
// under a mutex by the gRPC threads' writes and the watcher's reads; one subscribed to the
// channel, owned by the watcher thread. The watcher also probes `version` every second, which
// notices a Redis that hangs (its sockets stay open) and a change whose message was lost.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "controlplane/config/store_backend.h"

namespace wsgate::controlplane {

inline constexpr char kRedisStoreKey[] = "wsgate:config";
inline constexpr char kRedisStoreChannel[] = "wsgate:config:changed";

// Checks a store URL, `redis://[[user]:password@]host[:port][/db]` (the REDIS_URL grammar and
// parser); errors are INVALID_ARGUMENT and start with `source` ("--store-url: ...").
absl::Status CheckStoreUrl(const std::string& url, const std::string& source);

// Parses `url` (INVALID_ARGUMENT naming --store-url); connects on first use. ConfigStore::Open's
// first Load is that use: a Redis that cannot be reached (or refuses AUTH) at start is
// UNAVAILABLE naming the store, and the gateway refuses to start.
absl::StatusOr<std::unique_ptr<StoreBackend>> MakeRedisStoreBackend(const std::string& url);

}  // namespace wsgate::controlplane
