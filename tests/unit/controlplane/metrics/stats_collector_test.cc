// The scrape-time fold of per-worker counters into Prometheus text, against a hand-filled
// StatsRegistry.
#include "controlplane/metrics/stats_collector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "dataplane/stats/route_stats.h"

namespace wsgate::controlplane {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using dataplane::ConnectionOutcome;
using dataplane::Direction;

class StatsCollectorTest : public ::testing::Test {
 protected:
  std::string Scrape() {
    StatsCollector collector(
        &stats_, [this] { return config_version_; }, "1.2.3");
    return SerializeMetrics({&collector});
  }

  dataplane::StatsRegistry stats_{2};
  uint64_t config_version_ = 7;
};

TEST_F(StatsCollectorTest, FoldsWorkersIntoOneSeriesPerRoute) {
  dataplane::RouteStats* echo = stats_.ForRoute("echo");
  echo->ForWorker(0).connections_active.Add(2);
  echo->ForWorker(1).connections_active.Add(1);
  echo->ForWorker(0).CountOutcome(ConnectionOutcome::kAccepted);
  echo->ForWorker(0).CountOutcome(ConnectionOutcome::kAccepted);
  echo->ForWorker(1).CountOutcome(ConnectionOutcome::kAccepted);
  echo->ForWorker(1).CountOutcome(ConnectionOutcome::kUpstreamTimeout);
  echo->ForWorker(0).CountMessage(Direction::kFromClient, 5);
  echo->ForWorker(1).CountMessage(Direction::kFromClient, 7);
  echo->ForWorker(1).CountMessage(Direction::kToClient, 100);

  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("\nwsgate_connections_active{route=\"echo\"} 3\n"));
  EXPECT_THAT(text,
              HasSubstr("\nwsgate_connections_total{route=\"echo\",outcome=\"accepted\"} 3\n"));
  EXPECT_THAT(
      text,
      HasSubstr("\nwsgate_connections_total{route=\"echo\",outcome=\"upstream_timeout\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("\nwsgate_connections_total{route=\"echo\",outcome=\"rejected\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("\nwsgate_messages_total{route=\"echo\",direction=\"in\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("\nwsgate_messages_total{route=\"echo\",direction=\"out\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("\nwsgate_message_bytes_total{route=\"echo\",direction=\"in\"} 12\n"));
  EXPECT_THAT(text,
              HasSubstr("\nwsgate_message_bytes_total{route=\"echo\",direction=\"out\"} 100\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE wsgate_connections_active gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE wsgate_connections_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE wsgate_messages_total counter\n"));
}

TEST_F(StatsCollectorTest, ClosesOnlyListNonZeroBuckets) {
  dataplane::RouteStats* r = stats_.ForRoute("r");
  r->ForWorker(0).CountClose(1000);
  r->ForWorker(1).CountClose(1000);
  r->ForWorker(1).CountClose(4005);
  r->ForWorker(0).CountClose(4999);
  r->ForWorker(0).CountClose(2999);  // not a code a client may send: "other"

  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("\nwsgate_closes_total{route=\"r\",code=\"1000\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("\nwsgate_closes_total{route=\"r\",code=\"4xxx\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("\nwsgate_closes_total{route=\"r\",code=\"other\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("code=\"1001\"")));
  EXPECT_THAT(text, Not(HasSubstr("code=\"3xxx\"")));
}

TEST_F(StatsCollectorTest, LimitHitsSummedOverWorkersByRouteAndLimit) {
  using dataplane::limits::LimitKind;
  dataplane::RouteStats* r = stats_.ForRoute("r");
  r->ForWorker(0).CountLimitHit(LimitKind::kMessagesPerSecond);
  r->ForWorker(1).CountLimitHit(LimitKind::kMessagesPerSecond);
  r->ForWorker(1).CountLimitHit(LimitKind::kMaxConnectionsPerAddress);
  r->ForWorker(0).CountLimitHit(LimitKind::kCount);  // not a limit: ignored

  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("# TYPE wsgate_limit_hits_total counter\n"));
  EXPECT_THAT(text, HasSubstr("\nwsgate_limit_hits_total{route=\"r\",limit=\"messages_per_second\"} "
                              "2\n"));
  EXPECT_THAT(text, HasSubstr("\nwsgate_limit_hits_total{route=\"r\",limit=\"max_connections_per_"
                              "address\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("limit=\"idle_timeout_ms\"")));

  const auto hits = stats_.LimitHits();
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits.at({"r", "messages_per_second"}), 2u);
  EXPECT_EQ(hits.at({"r", "max_connections_per_address"}), 1u);
}

TEST_F(StatsCollectorTest, HistogramBucketsAreCumulative) {
  dataplane::RouteStats* up = stats_.ForRoute("up");
  up->ForWorker(0).ObserveUpstreamConnect(0.0002);  // <= 0.0005
  up->ForWorker(1).ObserveUpstreamConnect(0.0004);  // <= 0.0005
  up->ForWorker(0).ObserveUpstreamConnect(0.003);   // <= 0.005
  up->ForWorker(1).ObserveUpstreamConnect(0.2);     // <= 0.25
  up->ForWorker(1).ObserveUpstreamConnect(9);       // +Inf only

  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("# TYPE wsgate_upstream_connect_seconds histogram\n"));
  EXPECT_THAT(
      text, HasSubstr("\nwsgate_upstream_connect_seconds_bucket{route=\"up\",le=\"0.0005\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("\nwsgate_upstream_connect_seconds_bucket{route=\"up\",le=\"0.001\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("\nwsgate_upstream_connect_seconds_bucket{route=\"up\",le=\"0.005\"} 3\n"));
  EXPECT_THAT(text,
              HasSubstr("\nwsgate_upstream_connect_seconds_bucket{route=\"up\",le=\"0.1\"} 3\n"));
  EXPECT_THAT(text,
              HasSubstr("\nwsgate_upstream_connect_seconds_bucket{route=\"up\",le=\"0.25\"} 4\n"));
  EXPECT_THAT(text,
              HasSubstr("\nwsgate_upstream_connect_seconds_bucket{route=\"up\",le=\"5\"} 4\n"));
  EXPECT_THAT(text,
              HasSubstr("\nwsgate_upstream_connect_seconds_bucket{route=\"up\",le=\"+Inf\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("\nwsgate_upstream_connect_seconds_count{route=\"up\"} 5\n"));
  // 0.0002 + 0.0004 + 0.003 + 0.2 + 9, counted in whole microseconds.
  EXPECT_THAT(text, HasSubstr("\nwsgate_upstream_connect_seconds_sum{route=\"up\"} 9.2036\n"));
}

TEST_F(StatsCollectorTest, ConfigVersionAndBuildInfo) {
  config_version_ = 42;
  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("\nwsgate_config_version 42\n"));
  EXPECT_THAT(text, HasSubstr("\nwsgate_build_info{version=\"1.2.3\"} 1\n"));
  // No routes: the per-route families carry no series, and nothing is invented.
  EXPECT_THAT(text, Not(HasSubstr("route=")));
}

TEST_F(StatsCollectorTest, RouteNamesAreEscapedInLabels) {
  // Route names are validated upstream, but the exposition must stay parseable regardless.
  stats_.ForRoute("we\"ird\\name")->ForWorker(0).connections_active.Add(1);
  EXPECT_THAT(Scrape(), HasSubstr("wsgate_connections_active{route=\"we\\\"ird\\\\name\"} 1\n"));
}

TEST_F(StatsCollectorTest, EveryRouteEverSeenIsListedInNameOrder) {
  stats_.ForRoute("b");
  stats_.ForRoute("a");
  const std::string text = Scrape();
  const size_t a = text.find("wsgate_connections_active{route=\"a\"} 0");
  const size_t b = text.find("wsgate_connections_active{route=\"b\"} 0");
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  EXPECT_LT(a, b);
}

TEST_F(StatsCollectorTest, OutboundKindsSeries) {
  dataplane::RouteStats* bridge = stats_.ForRoute("bridge");
  // method 1 = POST; outcome 0 = ok, 4 = target_not_allowed (1 + BridgeErrorCode index 3).
  bridge->ForWorker(0).ObserveBridgeRequest(1, 0, 0.003);
  bridge->ForWorker(1).ObserveBridgeRequest(1, 0, 0.2);
  bridge->ForWorker(1).ObserveBridgeRequest(dataplane::kBridgeMethodOther, 4, 0.0001);
  bridge->ForWorker(0).targets_refused[4].Add();  // loopback
  dataplane::RouteStats* ext = stats_.ForRoute("ext");
  ext->ForWorker(0).external_connections_opened.Add();
  ext->ForWorker(0).external_connections_active.Add(1);
  ext->ForWorker(1).external_connections_opened.Add();
  ext->ForWorker(1).external_connections_active.Add(1);
  ext->ForWorker(1).external_connections_active.Add(-1);
  stats_.ForRoute("plain");

  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("\nwsgate_bridge_requests_total{route=\"bridge\",method=\"POST\","
                              "outcome=\"ok\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("\nwsgate_bridge_requests_total{route=\"bridge\",method=\"other\","
                              "outcome=\"target_not_allowed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nwsgate_bridge_request_seconds_count{route=\"bridge\"} 3\n"));
  EXPECT_THAT(
      text, HasSubstr("\nwsgate_bridge_request_seconds_bucket{route=\"bridge\",le=\"0.005\"} 2\n"));
  EXPECT_THAT(
      text, HasSubstr("\nwsgate_targets_refused_total{route=\"bridge\",reason=\"loopback\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nwsgate_external_connections_active{route=\"ext\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE wsgate_bridge_request_seconds histogram\n"));
  // Routes that never used a kind get none of its series.
  EXPECT_THAT(text, Not(HasSubstr("wsgate_bridge_requests_total{route=\"plain\"")));
  EXPECT_THAT(text, Not(HasSubstr("wsgate_external_connections_active{route=\"plain\"")));
  EXPECT_THAT(text, Not(HasSubstr("wsgate_external_connections_active{route=\"bridge\"")));
}

}  // namespace
}  // namespace wsgate::controlplane
