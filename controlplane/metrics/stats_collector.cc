#include "controlplane/metrics/stats_collector.h"

#include "dataplane/stats/handshake_refusals.h"

#include <limits>
#include <sstream>
#include <utility>

#include "prometheus/text_serializer.h"

namespace wsgate::controlplane {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric& AddMetric(MetricFamily& family, std::vector<ClientMetric::Label> labels) {
  family.metric.emplace_back();
  family.metric.back().label = std::move(labels);
  return family.metric.back();
}

// Fills a histogram from per-bucket counts (one more than `bounds`: the last is +Inf). The count
// is the +Inf bucket, so the exposition is self-consistent even if a worker bumped a bucket
// between our reads.
template <typename Counts, typename Bounds>
void FillHistogram(ClientMetric& m, const Counts& counts, const Bounds& bounds, double sum) {
  uint64_t cumulative = 0;
  for (size_t b = 0; b <= bounds.size(); ++b) {
    cumulative += counts[b];
    ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound = b < bounds.size() ? bounds[b] : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(bucket);
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum;
}

}  // namespace

StatsCollector::StatsCollector(const dataplane::StatsRegistry* stats,
                               std::function<uint64_t()> config_version, std::string build_version)
    : stats_(stats),
      config_version_(std::move(config_version)),
      build_version_(std::move(build_version)) {}

std::vector<MetricFamily> StatsCollector::Collect() const {
  MetricFamily active = Family("wsgate_connections_active",
                               "Client connections open now, by route.", MetricType::Gauge);
  MetricFamily connections =
      Family("wsgate_connections_total",
             "Client connection attempts, by route and outcome (accepted, upstream_error, "
             "upstream_timeout, upstream_tls_error, rejected).",
             MetricType::Counter);
  MetricFamily messages = Family("wsgate_messages_total",
                                 "WebSocket messages, by route and direction (in: from clients, "
                                 "out: to clients).",
                                 MetricType::Counter);
  MetricFamily bytes =
      Family("wsgate_message_bytes_total",
             "WebSocket message payload bytes, by route and direction.", MetricType::Counter);
  MetricFamily closes = Family("wsgate_closes_total",
                               "Client connection closes, by route and close code (3xxx, 4xxx "
                               "and other are buckets). Codes never seen are omitted.",
                               MetricType::Counter);
  MetricFamily upstream = Family("wsgate_upstream_connect_seconds",
                                 "Time to open an upstream connection and finish its handshake.",
                                 MetricType::Histogram);

  MetricFamily bridge_requests =
      Family("wsgate_bridge_requests_total",
             "HTTP bridge requests, by route, method and outcome (ok: an HTTP answer of any "
             "status; otherwise the error code in lowercase).",
             MetricType::Counter);
  MetricFamily bridge_seconds =
      Family("wsgate_bridge_request_seconds",
             "Time from a bridge request's arrival to its answer, by route.",
             MetricType::Histogram);
  MetricFamily external_active =
      Family("wsgate_external_connections_active",
             "External WebSocket connections open now (external_client routes), by route.",
             MetricType::Gauge);
  MetricFamily refused = Family("wsgate_targets_refused_total",
                                "Outbound targets refused by a route's allow-list or address "
                                "ranges, by route and reason. Reasons never seen are omitted.",
                                MetricType::Counter);
  MetricFamily limit_hits = Family("wsgate_limit_hits_total",
                                   "Handshakes refused, messages dropped and connections closed "
                                   "because of a limit, by route and limit (the Limits field "
                                   "name). Limits never hit are omitted.",
                                   MetricType::Counter);

  MetricFamily refusals =
      Family("wsgate_handshakes_refused_total",
             "Connections refused before any route took them, by reason (head_timeout, "
             "head_too_large, malformed, no_route, bad_version, bad_key, over_capacity, "
             "shutting_down, descriptors_exhausted).",
             MetricType::Counter);
  const auto refused_by_reason = stats_->refusals().Fold();
  for (int r = 0; r < static_cast<int>(dataplane::RefusalReason::kCount); ++r) {
    AddMetric(refusals, {{"reason", dataplane::RefusalReasonLabel(
                                        static_cast<dataplane::RefusalReason>(r))}})
        .counter.value = static_cast<double>(refused_by_reason[r]);
  }

  MetricFamily up_buffered = Family(
      "wsgate_pubsub_up_buffered_total",
      "pubsub client messages held for the up channel while the message bus was down, by route "
      "(published once it is back). Routes that never buffered are omitted.",
      MetricType::Counter);
  MetricFamily up_dropped = Family(
      "wsgate_pubsub_up_dropped_total",
      "pubsub client messages the up channel never got, by route and reason (buffer_full, "
      "session_closed, bus_stopped). Zero entries are omitted.",
      MetricType::Counter);

  stats_->ForEachLive([&](const dataplane::RouteStats& rs) {
    const dataplane::RouteTotals t = rs.Fold();
    const std::string& route = rs.route();

    AddMetric(active, {{"route", route}}).gauge.value = static_cast<double>(t.connections_active);

    for (int o = 0; o < static_cast<int>(dataplane::ConnectionOutcome::kCount); ++o) {
      const char* outcome = dataplane::OutcomeLabel(static_cast<dataplane::ConnectionOutcome>(o));
      AddMetric(connections, {{"route", route}, {"outcome", outcome}}).counter.value =
          static_cast<double>(t.connections[o]);
    }
    for (int d = 0; d < dataplane::kDirectionCount; ++d) {
      const char* direction = dataplane::DirectionLabel(static_cast<dataplane::Direction>(d));
      AddMetric(messages, {{"route", route}, {"direction", direction}}).counter.value =
          static_cast<double>(t.messages[d]);
      AddMetric(bytes, {{"route", route}, {"direction", direction}}).counter.value =
          static_cast<double>(t.bytes[d]);
    }
    for (int b = 0; b < dataplane::kCloseCodeBuckets; ++b) {
      if (t.closes[b] == 0) continue;
      AddMetric(closes, {{"route", route}, {"code", dataplane::CloseCodeBucketLabel(b)}})
          .counter.value = static_cast<double>(t.closes[b]);
    }

    FillHistogram(AddMetric(upstream, {{"route", route}}), t.upstream_connect_buckets,
                  dataplane::kUpstreamConnectBuckets, t.upstream_connect_seconds_sum);

    // The outbound kinds' series exist only for routes that used them.
    uint64_t bridge_total = 0;
    for (int m = 0; m < dataplane::kBridgeMethodCount; ++m) {
      for (int o = 0; o < dataplane::kBridgeOutcomeCount; ++o) {
        if (t.bridge_requests[m][o] == 0) continue;
        bridge_total += t.bridge_requests[m][o];
        AddMetric(bridge_requests, {{"route", route},
                                    {"method", dataplane::BridgeMethodLabel(m)},
                                    {"outcome", dataplane::BridgeOutcomeLabel(o)}})
            .counter.value = static_cast<double>(t.bridge_requests[m][o]);
      }
    }
    if (bridge_total != 0) {
      FillHistogram(AddMetric(bridge_seconds, {{"route", route}}), t.bridge_seconds_buckets,
                    dataplane::kBridgeRequestBuckets, t.bridge_seconds_sum);
    }
    if (t.external_connections_opened != 0) {
      AddMetric(external_active, {{"route", route}}).gauge.value =
          static_cast<double>(t.external_connections_active);
    }
    for (int r = 0; r < dataplane::kRefusalReasonCount; ++r) {
      if (t.targets_refused[r] == 0) continue;
      AddMetric(refused, {{"route", route}, {"reason", dataplane::RefusalReasonLabel(r)}})
          .counter.value = static_cast<double>(t.targets_refused[r]);
    }
    for (int k = 0; k < dataplane::limits::kLimitKindCount; ++k) {
      if (t.limit_hits[k] == 0) continue;
      const char* limit =
          dataplane::limits::LimitKindName(static_cast<dataplane::limits::LimitKind>(k));
      AddMetric(limit_hits, {{"route", route}, {"limit", limit}}).counter.value =
          static_cast<double>(t.limit_hits[k]);
    }
    if (t.pubsub_up_buffered != 0) {
      AddMetric(up_buffered, {{"route", route}}).counter.value =
          static_cast<double>(t.pubsub_up_buffered);
    }
    for (int r = 0; r < dataplane::kPubSubUpDropCount; ++r) {
      if (t.pubsub_up_dropped[r] == 0) continue;
      AddMetric(up_dropped, {{"route", route}, {"reason", dataplane::PubSubUpDropLabel(r)}})
          .counter.value = static_cast<double>(t.pubsub_up_dropped[r]);
    }
  });

  MetricFamily version = Family(
      "wsgate_config_version", "The config version the data plane has applied.", MetricType::Gauge);
  AddMetric(version, {}).gauge.value = static_cast<double>(config_version_());

  MetricFamily build = Family("wsgate_build_info", "Always 1; the version label says which build.",
                              MetricType::Gauge);
  AddMetric(build, {{"version", build_version_}}).gauge.value = 1;

  std::vector<MetricFamily> out;
  out.reserve(16);
  out.push_back(std::move(active));
  out.push_back(std::move(connections));
  out.push_back(std::move(messages));
  out.push_back(std::move(bytes));
  out.push_back(std::move(closes));
  out.push_back(std::move(upstream));
  out.push_back(std::move(bridge_requests));
  out.push_back(std::move(bridge_seconds));
  out.push_back(std::move(external_active));
  out.push_back(std::move(refused));
  out.push_back(std::move(limit_hits));
  out.push_back(std::move(refusals));
  out.push_back(std::move(up_buffered));
  out.push_back(std::move(up_dropped));
  out.push_back(std::move(version));
  out.push_back(std::move(build));
  return out;
}

std::string SerializeMetrics(const std::vector<const prometheus::Collectable*>& collectables) {
  std::vector<MetricFamily> families;
  for (const prometheus::Collectable* c : collectables) {
    std::vector<MetricFamily> f = c->Collect();
    families.insert(families.end(), std::make_move_iterator(f.begin()),
                    std::make_move_iterator(f.end()));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace wsgate::controlplane
