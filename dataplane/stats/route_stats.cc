#include "dataplane/stats/route_stats.h"

#include "dataplane/stats/handshake_refusals.h"

#include <algorithm>

namespace wsgate::dataplane {

const char* DirectionLabel(Direction d) { return d == Direction::kFromClient ? "in" : "out"; }

const char* OutcomeLabel(ConnectionOutcome o) {
  switch (o) {
    case ConnectionOutcome::kAccepted: return "accepted";
    case ConnectionOutcome::kUpstreamError: return "upstream_error";
    case ConnectionOutcome::kUpstreamTimeout: return "upstream_timeout";
    case ConnectionOutcome::kUpstreamTlsError: return "upstream_tls_error";
    case ConnectionOutcome::kRejected: return "rejected";
    case ConnectionOutcome::kCount: break;
  }
  return "unknown";
}

namespace {
// Standard close codes that keep their own label (RFC 6455 section 7.4.1 and IANA registry).
constexpr uint16_t kStandardCodes[] = {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008,
                                       1009, 1010, 1011, 1012, 1013, 1014, 1015};
constexpr int kStandardCount = sizeof(kStandardCodes) / sizeof(kStandardCodes[0]);
constexpr int kBucket3xxx = kStandardCount;
constexpr int kBucket4xxx = kStandardCount + 1;
constexpr int kBucketOther = kStandardCount + 2;
static_assert(kBucketOther < kCloseCodeBuckets, "close code buckets");
}  // namespace

int CloseCodeBucket(uint16_t code) {
  if (code >= 1000 && code <= 1015) {
    for (int i = 0; i < kStandardCount; ++i) {
      if (kStandardCodes[i] == code) return i;
    }
    return kBucketOther;
  }
  if (code >= 3000 && code <= 3999) return kBucket3xxx;
  if (code >= 4000 && code <= 4999) return kBucket4xxx;
  return kBucketOther;
}

const char* CloseCodeBucketLabel(int bucket) {
  static const char* const kLabels[kCloseCodeBuckets] = {
      "1000", "1001", "1002", "1003", "1005", "1006", "1007", "1008", "1009", "1010",
      "1011", "1012", "1013", "1014", "1015", "3xxx", "4xxx", "other", "", ""};
  return bucket >= 0 && bucket < kCloseCodeBuckets ? kLabels[bucket] : "other";
}

void RouteWorkerCounters::ObserveUpstreamConnect(double seconds) {
  auto it = std::lower_bound(kUpstreamConnectBuckets.begin(), kUpstreamConnectBuckets.end(),
                             seconds);
  upstream_connect_buckets[it - kUpstreamConnectBuckets.begin()].Add();
  upstream_connect_count.Add();
  upstream_connect_micros_sum.Add(static_cast<uint64_t>(seconds * 1e6));
}

const char* BridgeMethodLabel(int method) {
  static const char* const kLabels[kBridgeMethodCount] = {"GET",   "POST", "PUT",  "DELETE",
                                                          "PATCH", "HEAD", "other"};
  return method >= 0 && method < kBridgeMethodCount ? kLabels[method] : "other";
}

const char* BridgeOutcomeLabel(int outcome) {
  static const char* const kLabels[kBridgeOutcomeCount] = {
      "ok",                 "invalid_format",     "missing_field",      "unsupported_method",
      "target_not_allowed", "upstream_timeout",   "upstream_unreachable", "response_too_large",
      "too_many_in_flight", "request_too_large"};
  return outcome >= 0 && outcome < kBridgeOutcomeCount ? kLabels[outcome] : "unknown";
}

const char* RefusalReasonLabel(int reason) {
  static const char* const kLabels[kRefusalReasonCount] = {
      "bad_url", "scheme", "host", "path", "loopback", "private", "link_local", "unspecified",
      "reserved"};
  return reason >= 0 && reason < kRefusalReasonCount ? kLabels[reason] : "unknown";
}

void RouteWorkerCounters::ObserveBridgeRequest(int method, int outcome, double seconds) {
  if (method < 0 || method >= kBridgeMethodCount) method = kBridgeMethodOther;
  if (outcome < 0 || outcome >= kBridgeOutcomeCount) return;
  bridge_requests[method][outcome].Add();
  auto it = std::lower_bound(kBridgeRequestBuckets.begin(), kBridgeRequestBuckets.end(), seconds);
  bridge_seconds_buckets[it - kBridgeRequestBuckets.begin()].Add();
  bridge_seconds_micros_sum.Add(static_cast<uint64_t>(seconds * 1e6));
}

RouteStats::RouteStats(std::string route, int workers)
    : route_(std::move(route)), workers_(workers), slots_(new RouteWorkerCounters[workers]) {}

RouteTotals RouteStats::Fold() const {
  RouteTotals t;
  for (int w = 0; w < workers_; ++w) {
    const RouteWorkerCounters& s = slots_[w];
    t.connections_active += s.connections_active.Get();
    for (int i = 0; i < static_cast<int>(ConnectionOutcome::kCount); ++i) {
      t.connections[i] += s.connections[i].Get();
    }
    for (int d = 0; d < kDirectionCount; ++d) {
      t.messages[d] += s.messages[d].Get();
      t.bytes[d] += s.bytes[d].Get();
    }
    for (int b = 0; b < kCloseCodeBuckets; ++b) t.closes[b] += s.closes[b].Get();
    for (size_t b = 0; b <= kUpstreamConnectBuckets.size(); ++b) {
      t.upstream_connect_buckets[b] += s.upstream_connect_buckets[b].Get();
    }
    t.upstream_connect_count += s.upstream_connect_count.Get();
    t.upstream_connect_seconds_sum += s.upstream_connect_micros_sum.Get() / 1e6;
    for (int m = 0; m < kBridgeMethodCount; ++m) {
      for (int o = 0; o < kBridgeOutcomeCount; ++o) {
        t.bridge_requests[m][o] += s.bridge_requests[m][o].Get();
      }
    }
    for (size_t b = 0; b <= kBridgeRequestBuckets.size(); ++b) {
      t.bridge_seconds_buckets[b] += s.bridge_seconds_buckets[b].Get();
    }
    t.bridge_seconds_sum += s.bridge_seconds_micros_sum.Get() / 1e6;
    t.external_connections_active += s.external_connections_active.Get();
    t.external_connections_opened += s.external_connections_opened.Get();
    for (int r = 0; r < kRefusalReasonCount; ++r) t.targets_refused[r] += s.targets_refused[r].Get();
    for (int k = 0; k < limits::kLimitKindCount; ++k) t.limit_hits[k] += s.limit_hits[k].Get();
    t.pubsub_up_buffered += s.pubsub_up_buffered.Get();
    for (int r = 0; r < kPubSubUpDropCount; ++r) {
      t.pubsub_up_dropped[r] += s.pubsub_up_dropped[r].Get();
    }
  }
  return t;
}

StatsRegistry::StatsRegistry(int workers)
    : workers_(workers), refusals_(std::make_unique<HandshakeRefusals>(workers)) {}
StatsRegistry::~StatsRegistry() = default;

const char* PubSubUpDropLabel(int reason) {
  switch (static_cast<PubSubUpDrop>(reason)) {
    case PubSubUpDrop::kBufferFull:
      return "buffer_full";
    case PubSubUpDrop::kSessionClosed:
      return "session_closed";
    case PubSubUpDrop::kBusStopped:
      return "bus_stopped";
    default:
      return "other";
  }
}

RouteStats* StatsRegistry::ForRoute(const std::string& route) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = routes_[route];
  if (!slot) slot = std::make_unique<RouteStats>(route, workers_);
  slot->set_live(true);
  return slot.get();
}

void StatsRegistry::RetainOnly(const std::set<std::string>& routes) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, stats] : routes_) stats->set_live(routes.count(name) != 0);
}

bool StatsRegistry::IsLive(const std::string& route) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = routes_.find(route);
  return it != routes_.end() && it->second->live();
}

void StatsRegistry::ForEach(const std::function<void(const RouteStats&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, stats] : routes_) fn(*stats);
}

void StatsRegistry::ForEachLive(const std::function<void(const RouteStats&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, stats] : routes_) {
    if (stats->live()) fn(*stats);
  }
}

std::map<std::pair<std::string, std::string>, uint64_t> StatsRegistry::LimitHits() const {
  std::map<std::pair<std::string, std::string>, uint64_t> out;
  ForEachLive([&](const RouteStats& rs) {
    const RouteTotals t = rs.Fold();
    for (int k = 0; k < limits::kLimitKindCount; ++k) {
      if (t.limit_hits[k] == 0) continue;
      out[{rs.route(), limits::LimitKindName(static_cast<limits::LimitKind>(k))}] = t.limit_hits[k];
    }
  });
  return out;
}

}  // namespace wsgate::dataplane
