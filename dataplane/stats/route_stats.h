// Per-route, per-worker counters for the hot path.
//
// Each worker writes only its own slot, so an increment is a relaxed load + relaxed store (a
// plain `mov` on x86, no lock prefix): no contention, no atomic read-modify-write. The scraper
// (admin thread) reads all slots with relaxed loads and sums them; it may see a slightly stale
// value, never a torn one. Slots are cache-line aligned so workers never share a line.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "dataplane/limits/limit_kind.h"

namespace wsgate::dataplane {

class HandshakeRefusals;  // handshake_refusals.h

// A counter with one writer thread.
class SingleWriterCounter {
 public:
  void Add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t Get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// A gauge with one writer thread (inc and dec from the same worker).
class SingleWriterGauge {
 public:
  void Add(int64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  int64_t Get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

enum class Direction { kFromClient = 0, kToClient = 1 };
constexpr int kDirectionCount = 2;
const char* DirectionLabel(Direction d);  // "in", "out"

// Outcome of a client connection attempt: the `outcome` label of wsgate_connections_total.
enum class ConnectionOutcome {
  kAccepted = 0,         // handshake completed (101)
  kUpstreamError,        // 502: upstream refused, reset or answered the handshake with an error
  kUpstreamTimeout,      // 504: upstream connect/handshake deadline passed
  kUpstreamTlsError,     // 502: a wss:// upstream's TLS handshake or certificate check failed
  kRejected,             // refused by the gateway (bad handshake, shutdown, not implemented)
  kCount
};
const char* OutcomeLabel(ConnectionOutcome o);

// Close codes are client-chosen (1000-4999), so the `code` label is bucketed: the standard codes
// keep their number, 3000-3999 become "3xxx", 4000-4999 "4xxx", anything else "other".
constexpr int kCloseCodeBuckets = 20;
int CloseCodeBucket(uint16_t code);
const char* CloseCodeBucketLabel(int bucket);

// Upstream connect latency histogram (seconds), upper bounds of the finite buckets.
constexpr std::array<double, 12> kUpstreamConnectBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};

// The outbound kinds. The bridge's `method` label: GET, POST, PUT, DELETE, PATCH, HEAD
// in the order of protocol::HttpMethod, then "other" for requests whose method was never read.
constexpr int kBridgeMethodCount = 7;
constexpr int kBridgeMethodOther = 6;
const char* BridgeMethodLabel(int method);
// The bridge's `outcome` label: 0 is "ok" (an HTTP answer, whatever its status), 1 + i is
// protocol::BridgeErrorCode i in lowercase ("invalid_format", ..., "request_too_large").
constexpr int kBridgeOutcomeCount = 10;
const char* BridgeOutcomeLabel(int outcome);
// The `reason` label of wsgate_targets_refused_total: outbound::RefusalReason in its order.
constexpr int kRefusalReasonCount = 9;
const char* RefusalReasonLabel(int reason);
// Bridge request latency histogram (seconds), upper bounds of the finite buckets.
constexpr std::array<double, 12> kBridgeRequestBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30};

// pubsub client messages for the up channel that the bus never got (wsgate_pubsub_up_dropped_total
// `reason`): "buffer_full" (an outage outlasted the session's buffer), "session_closed" (the
// client left while its messages waited for the bus), "bus_stopped" (the gateway is shutting
// down).
enum class PubSubUpDrop { kBufferFull = 0, kSessionClosed, kBusStopped, kCount };
constexpr int kPubSubUpDropCount = static_cast<int>(PubSubUpDrop::kCount);
const char* PubSubUpDropLabel(int reason);

struct alignas(64) RouteWorkerCounters {
  SingleWriterGauge connections_active;
  SingleWriterCounter connections[static_cast<int>(ConnectionOutcome::kCount)];
  SingleWriterCounter messages[kDirectionCount];
  SingleWriterCounter bytes[kDirectionCount];
  SingleWriterCounter closes[kCloseCodeBuckets];
  SingleWriterCounter upstream_connect_buckets[kUpstreamConnectBuckets.size() + 1];  // last: +Inf
  SingleWriterCounter upstream_connect_count;
  SingleWriterCounter upstream_connect_micros_sum;
  SingleWriterCounter bridge_requests[kBridgeMethodCount][kBridgeOutcomeCount];
  SingleWriterCounter bridge_seconds_buckets[kBridgeRequestBuckets.size() + 1];  // last: +Inf
  SingleWriterCounter bridge_seconds_micros_sum;
  SingleWriterGauge external_connections_active;
  SingleWriterCounter external_connections_opened;  // so the gauge is exported once it was used
  SingleWriterCounter targets_refused[kRefusalReasonCount];
  // wsgate_limit_hits_total: refusals, drops and closes caused by a limit.
  SingleWriterCounter limit_hits[limits::kLimitKindCount];
  // pubsub up channel across a bus outage: messages held for the bus, and the ones it never got.
  SingleWriterCounter pubsub_up_buffered;
  SingleWriterCounter pubsub_up_dropped[kPubSubUpDropCount];

  void CountLimitHit(limits::LimitKind k) {
    if (k != limits::LimitKind::kCount) limit_hits[static_cast<int>(k)].Add();
  }
  void CountMessage(Direction d, uint64_t size) {
    messages[static_cast<int>(d)].Add();
    bytes[static_cast<int>(d)].Add(size);
  }
  void CountOutcome(ConnectionOutcome o) { connections[static_cast<int>(o)].Add(); }
  void CountClose(uint16_t code) { closes[CloseCodeBucket(code)].Add(); }
  void ObserveUpstreamConnect(double seconds);
  void ObserveBridgeRequest(int method, int outcome, double seconds);
};

// Folded (summed over workers) values, for the scraper and the inventory.
struct RouteTotals {
  int64_t connections_active = 0;
  uint64_t connections[static_cast<int>(ConnectionOutcome::kCount)] = {};
  uint64_t messages[kDirectionCount] = {};
  uint64_t bytes[kDirectionCount] = {};
  uint64_t closes[kCloseCodeBuckets] = {};
  uint64_t upstream_connect_buckets[kUpstreamConnectBuckets.size() + 1] = {};  // not cumulative
  uint64_t upstream_connect_count = 0;
  double upstream_connect_seconds_sum = 0;
  uint64_t bridge_requests[kBridgeMethodCount][kBridgeOutcomeCount] = {};
  uint64_t bridge_seconds_buckets[kBridgeRequestBuckets.size() + 1] = {};  // not cumulative
  double bridge_seconds_sum = 0;
  int64_t external_connections_active = 0;
  uint64_t external_connections_opened = 0;
  uint64_t targets_refused[kRefusalReasonCount] = {};
  uint64_t limit_hits[limits::kLimitKindCount] = {};
  uint64_t pubsub_up_buffered = 0;
  uint64_t pubsub_up_dropped[kPubSubUpDropCount] = {};
};

// Counters of one route name, one slot per worker. Never freed while the registry lives, so a
// connection can keep a raw pointer for its whole life even if its route is deleted.
class RouteStats {
 public:
  RouteStats(std::string route, int workers);
  const std::string& route() const { return route_; }
  // Only worker `w` may call this (and write through the result).
  RouteWorkerCounters& ForWorker(int w) { return slots_[w]; }
  RouteTotals Fold() const;
  // False once the route was deleted (until a route of that name is configured again): its
  // series leave /metrics, while connections that outlive the route still count here.
  bool live() const { return live_.load(std::memory_order_relaxed); }
  void set_live(bool live) { live_.store(live, std::memory_order_relaxed); }

 private:
  std::string route_;
  int workers_;
  std::unique_ptr<RouteWorkerCounters[]> slots_;
  std::atomic<bool> live_{true};
};

// Name -> RouteStats. The mutex is taken when a snapshot is built and at scrape time, never per
// message. Thread-safe.
class StatsRegistry {
 public:
  explicit StatsRegistry(int workers);
  ~StatsRegistry();
  int workers() const { return workers_; }
  // Connections refused before a route kind took them (handshake_refusals.h).
  HandshakeRefusals& refusals() const { return *refusals_; }
  // Returns the stats of `route`, creating them on first use (and marking them live). The
  // pointer stays valid for the registry's lifetime.
  RouteStats* ForRoute(const std::string& route);
  // A new configuration was applied: routes not in `routes` are no longer live. Their objects
  // stay (connections keep raw pointers to them), so each name ever configured costs one
  // RouteStats for the process's life; only the exported series go away.
  void RetainOnly(const std::set<std::string>& routes);
  // Whether `route` is configured now.
  bool IsLive(const std::string& route) const;
  // Calls fn for every route ever seen, in name order (deleted ones included: their
  // connections may still be open).
  void ForEach(const std::function<void(const RouteStats&)>& fn) const;
  // Calls fn for every route configured now, in name order: what /metrics exports.
  void ForEachLive(const std::function<void(const RouteStats&)>& fn) const;
  // Limit hits summed over workers, per (live route, limit name), zero entries left out.
  // Thread-safe (the inventory and the metrics call it from their own threads).
  std::map<std::pair<std::string, std::string>, uint64_t> LimitHits() const;

 private:
  const int workers_;
  const std::unique_ptr<HandshakeRefusals> refusals_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<RouteStats>> routes_;
};

}  // namespace wsgate::dataplane
