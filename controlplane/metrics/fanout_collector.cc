#include "controlplane/metrics/fanout_collector.h"

#include <string>
#include <utility>

namespace wsgate::controlplane {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily One(std::string name, std::string help, MetricType type, double value,
                 std::vector<ClientMetric::Label> labels = {}) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  f.metric.emplace_back();
  f.metric.back().label = std::move(labels);
  if (type == MetricType::Counter) {
    f.metric.back().counter.value = value;
  } else {
    f.metric.back().gauge.value = value;
  }
  return f;
}

}  // namespace

std::vector<MetricFamily> FanoutCollector::Collect() const {
  std::vector<MetricFamily> out;
  dataplane::bus::MessageBus* bus = data_plane_->message_bus();
  if (bus != nullptr) {
    const dataplane::bus::BusStats s = bus->stats();
    const std::vector<ClientMetric::Label> kind = {{"bus", bus->kind()}};
    out.push_back(One("wsgate_bus_published_total", "Messages handed to the message bus.",
                      MetricType::Counter, static_cast<double>(s.published), kind));
    out.push_back(One("wsgate_bus_received_total",
                      "Messages the bus received for a subscribed channel.", MetricType::Counter,
                      static_cast<double>(s.received), kind));
    out.push_back(One("wsgate_bus_publish_failures_total",
                      "Publishes refused or dropped because the bus was down.", MetricType::Counter,
                      static_cast<double>(s.publish_failures), kind));
    out.push_back(One("wsgate_bus_channels_active", "Channels subscribed upstream now.",
                      MetricType::Gauge, static_cast<double>(s.channels_active)));
    out.push_back(One("wsgate_bus_reconnects_total",
                      "Connections to Redis re-established after a loss.", MetricType::Counter,
                      static_cast<double>(s.reconnects)));
    out.push_back(One("wsgate_bus_up", "1 while the message bus is usable (Redis reachable).",
                      MetricType::Gauge, s.up ? 1.0 : 0.0));
  }
  const dataplane::DataPlane::FanoutCounts counts = data_plane_->Fanout();
  MetricFamily members;
  members.name = "wsgate_room_members";
  members.help = "Room members connected to this process, by route.";
  members.type = MetricType::Gauge;
  for (const auto& [route, n] : counts.room_members) {
    if (!Live(route)) continue;
    members.metric.emplace_back();
    members.metric.back().label = {{"route", route}};
    members.metric.back().gauge.value = static_cast<double>(n);
  }
  out.push_back(std::move(members));
  MetricFamily slow;
  slow.name = "wsgate_backpressure_closes_total";
  slow.help = "Room and pubsub clients closed with 1008 for reading too slowly, by route.";
  slow.type = MetricType::Counter;
  for (const auto& [route, n] : counts.backpressure_closes) {
    if (!Live(route)) continue;
    slow.metric.emplace_back();
    slow.metric.back().label = {{"route", route}};
    slow.metric.back().counter.value = static_cast<double>(n);
  }
  out.push_back(std::move(slow));
  MetricFamily auth;
  auth.name = "wsgate_auth_failures_total";
  auth.help =
      "Refused pubsub handshakes by route and reason (malformed, unknown_token, "
      "mismatch, unavailable).";
  auth.type = MetricType::Counter;
  for (const auto& [key, n] : counts.auth_failures) {
    if (!Live(key.first)) continue;
    auth.metric.emplace_back();
    auth.metric.back().label = {{"route", key.first}, {"reason", key.second}};
    auth.metric.back().counter.value = static_cast<double>(n);
  }
  out.push_back(std::move(auth));
  return out;
}

}  // namespace wsgate::controlplane
