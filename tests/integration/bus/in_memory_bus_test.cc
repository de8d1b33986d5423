// InMemoryBus: the one-process bus, on real worker threads.
#include "dataplane/bus/in_memory_bus.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/integration/bus/bus_test_support.h"

namespace wsgate::dataplane::bus::testing {
namespace {

class InMemoryBusTest : public ::testing::Test {
 protected:
  void SetUp() override { bus_ = MakeInMemoryBus(workers_.executors()); }
  void TearDown() override {
    // Contract: worker threads stop before the bus goes.
    workers_.StopAndJoin();
    bus_.reset();
  }
  WorkerThreads workers_{2};
  std::unique_ptr<MessageBus> bus_;
};

TEST_F(InMemoryBusTest, SubscribersOnTwoWorkersEachReceiveEveryMessageOnceInOrder) {
  RecordingSubscriber a0, b0, a1;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "room:1", &a0).ok());
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "room:1", &b0).ok());
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 1, "room:1", &a1).ok());
  RecordingSubscriber other;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 1, "room:2", &other).ok());

  constexpr int kMessages = 10000;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(bus_->Publish("room:1", std::to_string(i), false).ok());
  }
  for (RecordingSubscriber* s : {&a0, &b0, &a1}) {
    ASSERT_TRUE(s->WaitForCount(kMessages));
    auto got = s->messages();
    ASSERT_EQ(got.size(), static_cast<size_t>(kMessages));
    for (int i = 0; i < kMessages; ++i) {
      ASSERT_EQ(got[i]->payload, std::to_string(i)) << "out of order at " << i;
      ASSERT_EQ(got[i]->channel, "room:1");
      ASSERT_FALSE(got[i]->is_binary);
    }
  }
  // The two subscribers of worker 0 share one message object (no copy per subscriber), and
  // worker 1 got the very same one.
  EXPECT_EQ(a0.messages()[42].get(), b0.messages()[42].get());
  EXPECT_EQ(a0.messages()[42].get(), a1.messages()[42].get());
  EXPECT_EQ(other.count(), 0u);
  BusStats st = bus_->stats();
  EXPECT_EQ(st.published, static_cast<uint64_t>(kMessages));
  EXPECT_TRUE(WaitFor([&] { return bus_->stats().delivered == 3u * kMessages; }));
  EXPECT_EQ(st.channels_active, 2);
  EXPECT_TRUE(st.up);
  EXPECT_STREQ(bus_->kind(), "memory");
}

TEST_F(InMemoryBusTest, OnMessageRunsOnTheSubscribersWorker) {
  RecordingSubscriber s0, s1;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "c", &s0).ok());
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 1, "c", &s1).ok());
  std::thread::id t0, t1;
  workers_.RunOn(0, [&] { t0 = std::this_thread::get_id(); });
  workers_.RunOn(1, [&] { t1 = std::this_thread::get_id(); });
  ASSERT_TRUE(bus_->Publish("c", "x", false).ok());
  ASSERT_TRUE(s0.WaitForCount(1));
  ASSERT_TRUE(s1.WaitForCount(1));
  EXPECT_EQ(s0.last_thread(), t0);
  EXPECT_EQ(s1.last_thread(), t1);
}

TEST_F(InMemoryBusTest, UnsubscribeStopsDeliveryAndLastOneReleasesTheChannel) {
  RecordingSubscriber gone, stays;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "c", &gone).ok());
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "c", &stays).ok());
  ASSERT_TRUE(bus_->Publish("c", "first", false).ok());
  ASSERT_TRUE(gone.WaitForCount(1));
  ASSERT_TRUE(stays.WaitForCount(1));

  UnsubscribeOn(*bus_, workers_, 0, "c", &gone);
  ASSERT_TRUE(bus_->Publish("c", "second", false).ok());
  // Both were on one worker and messages of a channel keep their order: once `stays` has the
  // second message, `gone` would have it too had it still been subscribed.
  ASSERT_TRUE(stays.WaitForCount(2));
  EXPECT_EQ(gone.count(), 1u);
  EXPECT_EQ(bus_->stats().channels_active, 1);

  UnsubscribeOn(*bus_, workers_, 0, "c", &stays);
  EXPECT_TRUE(WaitFor([&] { return bus_->stats().channels_active == 0; }));
  // Unknown pairs are ignored.
  UnsubscribeOn(*bus_, workers_, 0, "c", &stays);
  UnsubscribeOn(*bus_, workers_, 1, "nope", &stays);
}

TEST_F(InMemoryBusTest, BinaryPayloadWithNulBytesIsDeliveredIntact) {
  RecordingSubscriber s;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 1, "bin", &s).ok());
  const std::string payload("a\0b\xff\0", 5);
  ASSERT_TRUE(bus_->Publish("bin", payload, true).ok());
  ASSERT_TRUE(bus_->Publish("bin", "", false).ok());
  ASSERT_TRUE(s.WaitForCount(2));
  EXPECT_EQ(s.messages()[0]->payload, payload);
  EXPECT_EQ(s.messages()[0]->payload.size(), 5u);
  EXPECT_TRUE(s.messages()[0]->is_binary);
  EXPECT_EQ(s.messages()[1]->payload, "");
  EXPECT_FALSE(s.messages()[1]->is_binary);
}

TEST_F(InMemoryBusTest, SubscriberMayUnsubscribeItselfAndOthersInsideOnMessage) {
  RecordingSubscriber first, second, third;
  // `first` drops itself and `second` when the first message arrives; `third` stays.
  first.on_message = [&](const BusMessagePtr&) {
    bus_->Unsubscribe(0, "c", &first);
    bus_->Unsubscribe(0, "c", &second);
  };
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "c", &first).ok());
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "c", &second).ok());
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "c", &third).ok());
  ASSERT_TRUE(bus_->Publish("c", "1", false).ok());
  ASSERT_TRUE(bus_->Publish("c", "2", false).ok());
  ASSERT_TRUE(third.WaitForCount(2));
  EXPECT_EQ(first.count(), 1u);
  // `second` comes after `first` in the fan-out order, so it never saw message 1.
  EXPECT_EQ(second.count(), 0u);
  UnsubscribeOn(*bus_, workers_, 0, "c", &third);
  EXPECT_TRUE(WaitFor([&] { return bus_->stats().channels_active == 0; }));
}

TEST_F(InMemoryBusTest, LastSubscriberLeavingInsideOnMessageReleasesTheChannel) {
  RecordingSubscriber only;
  only.on_message = [&](const BusMessagePtr&) { bus_->Unsubscribe(1, "c", &only); };
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 1, "c", &only).ok());
  ASSERT_TRUE(bus_->Publish("c", "1", false).ok());
  ASSERT_TRUE(only.WaitForCount(1));
  EXPECT_TRUE(WaitFor([&] { return bus_->stats().channels_active == 0; }));
  // Resubscribing afterwards works (a fresh interest, not the released one).
  RecordingSubscriber again;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 1, "c", &again).ok());
  ASSERT_TRUE(bus_->Publish("c", "2", false).ok());
  ASSERT_TRUE(again.WaitForCount(1));
  EXPECT_EQ(only.count(), 1u);
}

TEST_F(InMemoryBusTest, UnsubscribeBeforeTheCompletionMeansNoCompletion) {
  RecordingSubscriber s;
  auto calls = std::make_shared<std::atomic<int>>(0);
  workers_.RunOn(0, [&] {
    bus_->Subscribe(0, "c", &s, {}, [calls](absl::Status) { ++*calls; });
    bus_->Unsubscribe(0, "c", &s);
  });
  // A second subscriber's completion, posted after, proves the first one had its chance.
  RecordingSubscriber probe;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "c", &probe).ok());
  ASSERT_TRUE(bus_->Publish("c", "x", false).ok());
  ASSERT_TRUE(probe.WaitForCount(1));
  EXPECT_EQ(calls->load(), 0);
  EXPECT_EQ(s.count(), 0u);
}

TEST_F(InMemoryBusTest, AfterStopPublishAndSubscribeFailClearly) {
  bus_->Stop();
  absl::Status p = bus_->Publish("c", "x", false);
  EXPECT_EQ(p.code(), absl::StatusCode::kFailedPrecondition);
  RecordingSubscriber s;
  absl::Status st = SubscribeAndWait(*bus_, workers_, 0, "c", &s);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_FALSE(bus_->up());
  EXPECT_EQ(bus_->stats().publish_failures, 1u);
}

TEST_F(InMemoryBusTest, GetAndDeleteIsUnimplementedWithoutRedis) {
  Promise<absl::StatusOr<std::optional<std::string>>> result;
  bus_->GetAndDelete(1, "session:x:auth", [&](auto r) { result.Set(std::move(r)); });
  auto* r = result.Wait();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->status().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace wsgate::dataplane::bus::testing
