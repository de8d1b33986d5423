#include "dataplane/limits/token_bucket.h"

#include <gtest/gtest.h>

namespace wsgate::dataplane::limits {
namespace {

using Clock = TokenBucket::Clock;
using std::chrono::milliseconds;

TEST(TokenBucketTest, UnlimitedWhenNoRate) {
  TokenBucket b;
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  b.Configure(0, 0, t0);
  EXPECT_TRUE(b.unlimited());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(b.TryTake(t0));
}

TEST(TokenBucketTest, BurstThenRate) {
  TokenBucket b;
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  b.Configure(2, 3, t0);  // 2/s, burst 3
  EXPECT_TRUE(b.TryTake(t0));
  EXPECT_TRUE(b.TryTake(t0));
  EXPECT_TRUE(b.TryTake(t0));
  EXPECT_FALSE(b.TryTake(t0));
  EXPECT_DOUBLE_EQ(b.SecondsUntilToken(t0), 0.5);
  EXPECT_FALSE(b.TryTake(t0 + milliseconds(499)));
  EXPECT_TRUE(b.TryTake(t0 + milliseconds(500)));
  EXPECT_FALSE(b.TryTake(t0 + milliseconds(500)));
  // A long pause refills up to the burst only.
  const auto t1 = t0 + std::chrono::seconds(100);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.TryTake(t1)) << i;
  EXPECT_FALSE(b.TryTake(t1));
}

TEST(TokenBucketTest, DefaultBurstIsOneSecondOfRate) {
  EXPECT_EQ(TokenBucket::DefaultBurst(0.2), 1.0);
  EXPECT_EQ(TokenBucket::DefaultBurst(2.5), 3.0);
  TokenBucket b;
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  b.Configure(5, 0, t0);
  EXPECT_EQ(b.burst(), 5.0);
  int taken = 0;
  while (b.TryTake(t0)) ++taken;
  EXPECT_EQ(taken, 5);
}

TEST(TokenBucketTest, LoweringKeepsNoMoreThanTheNewBurstAndRaisingGivesNoFreeBurst) {
  TokenBucket b;
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  b.Configure(100, 100, t0);
  b.Configure(1, 1, t0);  // live lowering
  EXPECT_TRUE(b.TryTake(t0));
  EXPECT_FALSE(b.TryTake(t0));
  b.Configure(100, 100, t0);  // raising: the bucket is still empty
  EXPECT_FALSE(b.TryTake(t0));
  EXPECT_TRUE(b.TryTake(t0 + milliseconds(10)));
  b.Configure(0, 0, t0 + milliseconds(10));  // removing the limit
  EXPECT_TRUE(b.TryTake(t0 + milliseconds(10)));
  // From unlimited to a rate (a live update on an open connection): a full burst first.
  b.Configure(1, 2, t0 + milliseconds(10));
  EXPECT_TRUE(b.TryTake(t0 + milliseconds(10)));
  EXPECT_TRUE(b.TryTake(t0 + milliseconds(10)));
  EXPECT_FALSE(b.TryTake(t0 + milliseconds(10)));
}

}  // namespace
}  // namespace wsgate::dataplane::limits
