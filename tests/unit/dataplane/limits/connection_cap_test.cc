// The process-wide connection cap: its default from the descriptor limit and its counting.
#include "dataplane/limits/connection_cap.h"

#include <gtest/gtest.h>

namespace wsgate::dataplane::limits {
namespace {

TEST(ConnectionCapTest, DefaultLeavesAReserveAndHalvesTheRest) {
  EXPECT_EQ(ConnectionCap::DefaultFor(20000), (20000 - 1024) / 2);  // reserve capped at 1024
  EXPECT_EQ(ConnectionCap::DefaultFor(1024), (1024 - 128) / 2);     // an eighth
  EXPECT_EQ(ConnectionCap::DefaultFor(256), (256 - 32) / 2);        // at least 32
  EXPECT_EQ(ConnectionCap::DefaultFor(20), 1);                      // never zero
}

TEST(ConnectionCapTest, RefusesOverTheMaxAndFreesPlaces) {
  ConnectionCap cap(2);
  EXPECT_TRUE(cap.TryAcquire());
  EXPECT_TRUE(cap.TryAcquire());
  EXPECT_FALSE(cap.TryAcquire());
  EXPECT_EQ(cap.open(), 2);  // a refusal takes nothing
  cap.Release();
  EXPECT_TRUE(cap.TryAcquire());
}

}  // namespace
}  // namespace wsgate::dataplane::limits
