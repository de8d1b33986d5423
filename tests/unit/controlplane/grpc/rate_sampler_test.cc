// The inventory's rate ring: rates over the window between the newest sample and the oldest one
// at most that window older, from real per-worker counters (sample times injected).
#include <gtest/gtest.h>

#include <chrono>

#include "controlplane/grpc/inventory_service.h"
#include "dataplane/stats/route_stats.h"

namespace wsgate::controlplane {
namespace {

using std::chrono::seconds;
using dataplane::Direction;

TEST(RateSamplerTest, RatesOverTenSecondsAndAMinute) {
  dataplane::StatsRegistry stats(2);
  dataplane::RouteStats* r = stats.ForRoute("echo");
  RateSampler sampler(&stats);
  const auto t0 = std::chrono::steady_clock::time_point() + seconds(1000);
  // 70 samples, one a second; 10 messages of 100 bytes in and 5 out per second, split over
  // both workers' slots.
  for (int i = 0; i <= 70; ++i) {
    sampler.Sample(t0 + seconds(i));
    for (int m = 0; m < 10; ++m) r->ForWorker(m % 2).CountMessage(Direction::kFromClient, 100);
    for (int m = 0; m < 5; ++m) r->ForWorker(0).CountMessage(Direction::kToClient, 10);
  }
  RateSampler::Rates ten = sampler.RatesOf("echo", seconds(10));
  EXPECT_DOUBLE_EQ(ten.window_seconds, 10);
  EXPECT_DOUBLE_EQ(ten.per_second[0], 10);    // messages in
  EXPECT_DOUBLE_EQ(ten.per_second[1], 5);     // messages out
  EXPECT_DOUBLE_EQ(ten.per_second[2], 1000);  // bytes in
  EXPECT_DOUBLE_EQ(ten.per_second[3], 50);    // bytes out
  RateSampler::Rates minute = sampler.RatesOf("echo", seconds(60));
  EXPECT_DOUBLE_EQ(minute.window_seconds, 60);  // the ring holds exactly one minute
  EXPECT_DOUBLE_EQ(minute.per_second[0], 10);
  // Unknown route: no rates, but the window is reported.
  EXPECT_DOUBLE_EQ(sampler.RatesOf("nope", seconds(10)).per_second[0], 0);
}

TEST(RateSamplerTest, ShortHistoryUsesWhatThereIs) {
  dataplane::StatsRegistry stats(1);
  dataplane::RouteStats* r = stats.ForRoute("a");
  RateSampler sampler(&stats);
  const auto t0 = std::chrono::steady_clock::time_point() + seconds(5);
  sampler.Sample(t0);
  EXPECT_DOUBLE_EQ(sampler.RatesOf("a", seconds(10)).window_seconds, 0);  // one sample: none
  r->ForWorker(0).CountMessage(Direction::kFromClient, 1);
  r->ForWorker(0).CountMessage(Direction::kFromClient, 1);
  sampler.Sample(t0 + seconds(2));
  RateSampler::Rates rates = sampler.RatesOf("a", seconds(60));
  EXPECT_DOUBLE_EQ(rates.window_seconds, 2);
  EXPECT_DOUBLE_EQ(rates.per_second[0], 1);
}

}  // namespace
}  // namespace wsgate::controlplane
