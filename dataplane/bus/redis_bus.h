// The bus across processes: Redis Pub/Sub through hiredis's async API on the bus thread.
//
// One subscriber connection and one publish connection per process (never one per WebSocket),
// both owned by the bus thread. Losing either closes both, marks the bus down, and reconnects
// with exponential backoff and jitter; once both are back every channel some worker still wants
// is subscribed again and `reconnects` moves. Messages published while the bus is down are lost
// (Pub/Sub semantics).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <memory>
#include <vector>

#include "dataplane/bus/message_bus.h"
#include "dataplane/bus/redis_url.h"

namespace wsgate::dataplane::bus {

struct RedisBusOptions {
  RedisEndpoint endpoint;
  // Both connections must be ready (connected, AUTH/SELECT answered) within this time.
  std::chrono::milliseconds connect_timeout{2000};
  // Reconnect delay: starts here, doubles after each failed attempt up to `reconnect_max`; each
  // wait is drawn uniformly from [delay/2, delay] so that replicas do not reconnect in step.
  std::chrono::milliseconds reconnect_initial{100};
  std::chrono::milliseconds reconnect_max{5000};
  // Health probe while connected: every `health_interval` a PUBLISH on the process's private
  // keepalive channel, which the subscriber connection receives. When either connection has
  // been silent (no PUBLISH reply, no keepalive message) for `health_timeout`, Redis is taken
  // as hung (a stopped or wedged server keeps the TCP connection open and answers nothing):
  // both connections are torn down and the usual reconnect path runs. Zero interval: no probe.
  std::chrono::milliseconds health_interval{1000};
  std::chrono::milliseconds health_timeout{3000};
};

// Starts the bus thread and the first connection attempt, and returns at once: up() turns true
// when Redis answers (a process may start while Redis is down). `workers[w]` is worker w's
// executor.
std::unique_ptr<MessageBus> MakeRedisBus(RedisBusOptions options,
                                         std::vector<boost::asio::any_io_executor> workers);

}  // namespace wsgate::dataplane::bus
