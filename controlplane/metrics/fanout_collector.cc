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
  MetricFamily members;
  members.name = "wsgate_room_members";
  members.help = "Room members connected to this process, by route.";
  members.type = MetricType::Gauge;
  for (const auto& [route, n] : data_plane_->RoomMembers()) {
    members.metric.emplace_back();
    members.metric.back().label = {{"route", route}};
    members.metric.back().gauge.value = static_cast<double>(n);
  }
  out.push_back(std::move(members));
  return out;
}

}  // namespace wsgate::controlplane
