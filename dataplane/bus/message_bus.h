// The message bus under the `room` and `pubsub` route kinds: publish / subscribe on named
// channels, delivered to subscribers that live on data-plane workers.
//
// Threading: a bus is created with the executors of the N workers (one io_context each). A
// subscription belongs to one worker: Subscribe / Unsubscribe for worker `w` must be called on
// worker w's thread, and the subscriber's OnMessage and the subscribe completion run there too.
// Publish, GetAndDelete, up() and stats() are thread-safe. Each worker keeps its own
// channel -> subscribers map, touched only by that worker, so fan-out within a worker is a plain
// loop with no lock; a message crosses into a worker with one post per (worker, message),
// however many subscribers the worker has, and the payload is shared, never copied.
//
// Lifetime: stop the worker threads (their io_contexts no longer run) before destroying the
// bus, and destroy the bus before destroying the workers' io_contexts.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wsgate::dataplane::bus {

// One published message, shared by every subscriber that receives it.
struct BusMessage {
  std::string channel;
  std::string payload;
  // Redis Pub/Sub carries bytes only: a message received from Redis is binary when its payload
  // is not valid UTF-8 (so it can always be sent as the matching WebSocket frame type).
  bool is_binary = false;
};
using BusMessagePtr = std::shared_ptr<const BusMessage>;

// Implemented by whatever lives on a worker and wants messages (a room member, a pubsub session).
class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // Called on the subscriber's worker thread, once per message, in publish order per channel.
  // May call Subscribe / Unsubscribe (of any channel, including this one).
  virtual void OnMessage(const BusMessagePtr& message) = 0;
};

// Called once on the subscriber's worker thread, unless Unsubscribe ran first (then never):
//  - OK: the channel is subscribed upstream (for Redis: SUBSCRIBE acknowledged); messages
//    published from now on reach OnMessage.
//  - UNAVAILABLE: the bus is down (Redis unreachable or the connection was lost meanwhile).
//  - DEADLINE_EXCEEDED: no acknowledgement within SubscribeOptions::timeout.
//  - FAILED_PRECONDITION: the bus is stopped.
// On any error the subscriber is not subscribed (no Unsubscribe needed; it is harmless).
using SubscribeCallback = std::function<void(absl::Status)>;

struct SubscribeOptions {
  // 0: wait for the acknowledgement (or the loss of the connection) however long it takes.
  std::chrono::milliseconds timeout{5000};
};

// GetAndDelete result: the value, std::nullopt when the key does not exist, or an error
// (UNAVAILABLE: Redis down; UNIMPLEMENTED: a bus with no key-value store; INTERNAL: Redis error).
using GetAndDeleteCallback = std::function<void(absl::StatusOr<std::optional<std::string>>)>;

// Lease result: true when the caller holds the key now (newly set, or already its own and
// refreshed), false when another value holds it, or an error (UNAVAILABLE: Redis down).
using LeaseCallback = std::function<void(absl::StatusOr<bool>)>;

// Counters read at scrape time (relaxed loads of single-writer integers; see route_stats.h).
struct BusStats {
  uint64_t published = 0;         // messages handed to the bus transport (Redis: PUBLISH sent)
  uint64_t publish_failures = 0;  // Publish calls refused or dropped because the bus was down
  uint64_t received = 0;          // messages the bus received for a subscribed channel
  uint64_t delivered = 0;         // OnMessage calls, summed over workers
  int64_t channels_active = 0;    // channels subscribed upstream right now
  uint64_t reconnects = 0;        // connections to Redis re-established after a loss
  bool up = false;                // in-memory: always true once started
};

class MessageBus {
 public:
  virtual ~MessageBus() = default;

  // "memory" or "redis": the `bus` label of the metrics.
  virtual const char* kind() const = 0;
  virtual int workers() const = 0;

  // Thread-safe. Queues the message for every subscriber of `channel` in this process (and, on
  // Redis, in every process). Fails fast with UNAVAILABLE while the bus is down (the message is
  // not queued) and FAILED_PRECONDITION once stopped. Messages of one channel published from one
  // thread are delivered in that order.
  virtual absl::Status Publish(std::string channel, std::string payload, bool is_binary) = 0;

  // On worker `worker`'s thread only (an index out of range is a bug and aborts). `subscriber`
  // must stay alive until Unsubscribe returns or `done` reports an error. Subscribing the same
  // subscriber twice to one channel is a caller error (it would receive every message twice).
  virtual void Subscribe(int worker, const std::string& channel, Subscriber* subscriber,
                         SubscribeOptions options, SubscribeCallback done) = 0;
  // On worker `worker`'s thread only. After it returns, `subscriber` gets no OnMessage and no
  // subscribe completion for `channel`. The last local subscriber of a channel leaving
  // unsubscribes the process upstream. Unknown (channel, subscriber) pairs are ignored.
  virtual void Unsubscribe(int worker, const std::string& channel, Subscriber* subscriber) = 0;

  // Thread-safe. Atomically reads and deletes `key` (Redis GETDEL) and calls `done` on worker
  // `worker`'s thread. For the `redis_token` auth mode (`session:{id}:auth`).
  virtual void GetAndDelete(int worker, std::string key, GetAndDeleteCallback done) = 0;

  // Thread-safe. A cluster-wide lease: sets `key` to `value` with a time to live of `ttl` unless
  // another value holds it, or extends it when `value` already does; `done` on worker `worker`'s
  // thread. ReleaseLease deletes `key` only while it still holds `value` (fire and forget). For
  // the room kind's cross-process duplicate client_id check. The in-memory bus (one process,
  // where the room registry already sees everyone) always grants.
  virtual void Lease(int worker, std::string key, std::string value, std::chrono::milliseconds ttl,
                     LeaseCallback done) = 0;
  virtual void ReleaseLease(std::string key, std::string value) = 0;

  // Thread-safe. False while Redis is unreachable, and after a reconnect until every channel
  // kept through the outage is subscribed again (new pubsub handshakes get 503 meanwhile).
  virtual bool up() const = 0;
  virtual BusStats stats() const = 0;

  // Stops the bus thread and closes the Redis connections. Idempotent; also done by the
  // destructor. Not from a worker thread or a bus callback.
  virtual void Stop() = 0;
};

}  // namespace wsgate::dataplane::bus
