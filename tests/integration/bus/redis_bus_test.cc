// RedisBus against a real redis-server started by the test, with redis-cli as an independent
// client.
#include "dataplane/bus/redis_bus.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "dataplane/bus/redis_url.h"
#include "tests/integration/bus/bus_test_support.h"

namespace wsgate::dataplane::bus::testing {
namespace {

RedisBusOptions OptionsFor(const std::string& url) {
  RedisBusOptions o;
  auto ep = ParseRedisUrl(url);
  EXPECT_TRUE(ep.ok()) << ep.status();
  o.endpoint = *ep;
  o.connect_timeout = 1000ms;
  o.reconnect_initial = 50ms;
  o.reconnect_max = 400ms;
  return o;
}

class RedisBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.Start()) << "redis-server did not start on port " << redis_.port();
    bus_ = MakeRedisBus(OptionsFor(redis_.url()), workers_.executors());
    ASSERT_TRUE(WaitFor([&] { return bus_->up(); })) << "bus never connected";
  }
  void TearDown() override {
    workers_.StopAndJoin();
    bus_.reset();
  }
  RedisServer redis_;
  WorkerThreads workers_{2};
  std::unique_ptr<MessageBus> bus_;
};

TEST_F(RedisBusTest, SubscribersOnTwoWorkersEachReceiveEveryMessageOnceInOrder) {
  RecordingSubscriber a0, b0, a1;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "room:1", &a0).ok());
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "room:1", &b0).ok());
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 1, "room:1", &a1).ok());
  // One Redis subscription for the whole process, however many local subscribers.
  EXPECT_EQ(redis_.NumSub("room:1"), 1);

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
    }
  }
  EXPECT_EQ(a0.messages()[7].get(), b0.messages()[7].get());  // shared, not copied
  BusStats st = bus_->stats();
  EXPECT_EQ(st.published, static_cast<uint64_t>(kMessages));
  EXPECT_EQ(st.received, static_cast<uint64_t>(kMessages));
  EXPECT_EQ(st.channels_active, 1);
  EXPECT_EQ(st.reconnects, 0u);
  EXPECT_TRUE(st.up);
  EXPECT_STREQ(bus_->kind(), "redis");
}

TEST_F(RedisBusTest, MessagePublishedWithRedisCliArrives) {
  RecordingSubscriber s;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 1, "session:test-session-123:down", &s).ok());
  EXPECT_EQ(redis_.Cli({"PUBLISH", "session:test-session-123:down",
                        R"({"type": "data", "payload": "Hello from Redis!"})"}),
            "1");
  ASSERT_TRUE(s.WaitForCount(1));
  EXPECT_EQ(s.messages()[0]->payload, R"({"type": "data", "payload": "Hello from Redis!"})");
  EXPECT_EQ(s.messages()[0]->channel, "session:test-session-123:down");
  EXPECT_FALSE(s.messages()[0]->is_binary);
}

TEST_F(RedisBusTest, SubscribeCompletesOnlyOnceRedisHasTheSubscription) {
  RecordingSubscriber s;
  auto numsub_at_completion = std::make_shared<Promise<int>>();
  workers_.RunOn(0, [&] {
    bus_->Subscribe(0, "ack:c", &s, {}, [&, numsub_at_completion](absl::Status st) {
      // Still on the worker, before anything else: ask Redis itself.
      numsub_at_completion->Set(st.ok() ? redis_.NumSub("ack:c") : -100);
    });
  });
  const int* n = numsub_at_completion->Wait(15s);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(*n, 1);
}

TEST_F(RedisBusTest, SlowAcknowledgementTimesOutAndIsCleanedUpLater) {
  redis_.Pause();  // connections stay open, nothing is answered
  RecordingSubscriber s;
  SubscribeOptions options;
  options.timeout = 300ms;
  absl::Status st = SubscribeAndWait(*bus_, workers_, 0, "slow:c", &s, options);
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
  redis_.Resume();
  // The late SUBSCRIBE ack finds nobody interested: the bus unsubscribes again.
  EXPECT_TRUE(
      WaitFor([&] { return redis_.NumSub("slow:c") == 0 && bus_->stats().channels_active == 0; }));
  EXPECT_EQ(s.count(), 0u);
  // And the channel still works afterwards.
  RecordingSubscriber t;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "slow:c", &t).ok());
  EXPECT_EQ(redis_.Cli({"PUBLISH", "slow:c", "hi"}), "1");
  ASSERT_TRUE(t.WaitForCount(1));
}

TEST_F(RedisBusTest, LastLocalUnsubscribeUnsubscribesFromRedis) {
  RecordingSubscriber a, b;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "u:c", &a).ok());
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 1, "u:c", &b).ok());
  EXPECT_EQ(redis_.NumSub("u:c"), 1);

  UnsubscribeOn(*bus_, workers_, 0, "u:c", &a);
  EXPECT_EQ(redis_.Cli({"PUBLISH", "u:c", "after-a-left"}), "1");  // still subscribed for b
  ASSERT_TRUE(b.WaitForCount(1));
  EXPECT_EQ(a.count(), 0u);

  UnsubscribeOn(*bus_, workers_, 1, "u:c", &b);
  EXPECT_TRUE(WaitFor([&] { return redis_.NumSub("u:c") == 0; }));
  EXPECT_TRUE(WaitFor([&] { return bus_->stats().channels_active == 0; }));
  EXPECT_EQ(redis_.Cli({"PUBLISH", "u:c", "nobody"}), "0");
}

TEST_F(RedisBusTest, QuickUnsubscribeResubscribeChurnEndsSubscribed) {
  // Interest flapping faster than Redis answers must leave exactly the wanted state.
  RecordingSubscriber s;
  workers_.RunOn(0, [&] {
    for (int i = 0; i < 50; ++i) {
      bus_->Subscribe(0, "churn", &s, {}, [](absl::Status) {});
      bus_->Unsubscribe(0, "churn", &s);
    }
  });
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "churn", &s).ok());
  EXPECT_EQ(redis_.NumSub("churn"), 1);
  EXPECT_EQ(redis_.Cli({"PUBLISH", "churn", "m"}), "1");
  ASSERT_TRUE(s.WaitForCount(1));
  UnsubscribeOn(*bus_, workers_, 0, "churn", &s);
  EXPECT_TRUE(WaitFor([&] { return redis_.NumSub("churn") == 0; }));
}

TEST_F(RedisBusTest, BinaryPayloadWithNulBytesIsDeliveredIntact) {
  RecordingSubscriber s;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "bin", &s).ok());
  const std::string binary("\0a\0b\xff\xfe", 6);
  ASSERT_TRUE(bus_->Publish("bin", binary, true).ok());
  ASSERT_TRUE(bus_->Publish("bin", "h\xc3\xa9llo", false).ok());  // valid UTF-8
  ASSERT_TRUE(s.WaitForCount(2));
  EXPECT_EQ(s.messages()[0]->payload, binary);
  EXPECT_EQ(s.messages()[0]->payload.size(), 6u);
  EXPECT_TRUE(s.messages()[0]->is_binary);
  EXPECT_EQ(s.messages()[1]->payload, "h\xc3\xa9llo");
  EXPECT_FALSE(s.messages()[1]->is_binary);
}

TEST_F(RedisBusTest, GetAndDeleteReturnsTheValueOnceThenNothing) {
  ASSERT_EQ(redis_.Cli({"SET", "session:s1:auth", "tok-123"}), "OK");
  for (int round = 0; round < 2; ++round) {
    Promise<absl::StatusOr<std::optional<std::string>>> result;
    std::thread::id ran_on;
    bus_->GetAndDelete(1, "session:s1:auth", [&](auto r) {
      ran_on = std::this_thread::get_id();
      result.Set(std::move(r));
    });
    auto* r = result.Wait();
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->ok()) << r->status();
    if (round == 0) {
      ASSERT_TRUE(r->value().has_value());
      EXPECT_EQ(*r->value(), "tok-123");
    } else {
      EXPECT_FALSE(r->value().has_value());
    }
    std::thread::id worker1;
    workers_.RunOn(1, [&] { worker1 = std::this_thread::get_id(); });
    EXPECT_EQ(ran_on, worker1);
  }
  EXPECT_EQ(redis_.Cli({"EXISTS", "session:s1:auth"}), "0");
}

TEST_F(RedisBusTest, GetAndDeleteOfTheWrongTypeIsAnError) {
  ASSERT_EQ(redis_.Cli({"LPUSH", "session:s2:auth", "x"}), "1");
  Promise<absl::StatusOr<std::optional<std::string>>> result;
  bus_->GetAndDelete(0, "session:s2:auth", [&](auto r) { result.Set(std::move(r)); });
  auto* r = result.Wait();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->status().code(), absl::StatusCode::kInternal) << r->status();
}

TEST_F(RedisBusTest, RedisKilledAndRestartedReconnectsResubscribesAndDeliversAgain) {
  RecordingSubscriber s0, s1;
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 0, "session:S:down", &s0).ok());
  ASSERT_TRUE(SubscribeAndWait(*bus_, workers_, 1, "session:S:down", &s1).ok());
  EXPECT_EQ(redis_.Cli({"PUBLISH", "session:S:down", "before"}), "1");
  ASSERT_TRUE(s0.WaitForCount(1));
  ASSERT_TRUE(s1.WaitForCount(1));

  redis_.Kill();
  ASSERT_TRUE(WaitFor([&] { return !bus_->up(); }));
  EXPECT_FALSE(bus_->stats().up);
  // While down: publishes fail fast, new subscriptions and token reads report UNAVAILABLE.
  EXPECT_EQ(bus_->Publish("session:S:down", "lost", false).code(), absl::StatusCode::kUnavailable);
  RecordingSubscriber late;
  EXPECT_EQ(SubscribeAndWait(*bus_, workers_, 0, "session:T:down", &late).code(),
            absl::StatusCode::kUnavailable);
  // A new subscriber of a channel this worker already has is refused too (503 during outage).
  RecordingSubscriber late2;
  EXPECT_EQ(SubscribeAndWait(*bus_, workers_, 0, "session:S:down", &late2).code(),
            absl::StatusCode::kUnavailable);
  Promise<absl::StatusOr<std::optional<std::string>>> token;
  bus_->GetAndDelete(0, "session:S:auth", [&](auto r) { token.Set(std::move(r)); });
  ASSERT_NE(token.Wait(), nullptr);
  EXPECT_EQ(token.Wait()->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_GE(bus_->stats().publish_failures, 1u);

  RedisServer again(redis_.port());
  ASSERT_TRUE(again.Start());
  ASSERT_TRUE(WaitFor([&] { return bus_->up(); }, 15s)) << "bus never reconnected";
  // Resubscribed on its own before reporting up: the channel both workers kept is already back
  // on the new server.
  EXPECT_EQ(again.NumSub("session:S:down"), 1);
  EXPECT_EQ(again.NumSub("session:T:down"), 0);
  EXPECT_EQ(again.Cli({"PUBLISH", "session:S:down", "after"}), "1");
  ASSERT_TRUE(s0.WaitForCount(2));
  ASSERT_TRUE(s1.WaitForCount(2));
  EXPECT_EQ(s0.messages()[1]->payload, "after");
  EXPECT_EQ(s1.messages()[1]->payload, "after");
  EXPECT_EQ(s0.count(), 2u);
  BusStats st = bus_->stats();
  EXPECT_GE(st.reconnects, 1u);
  EXPECT_TRUE(st.up);
  EXPECT_EQ(st.channels_active, 1);
  // Publishing through the bus works again too.
  ASSERT_TRUE(bus_->Publish("session:S:down", "via-bus", false).ok());
  ASSERT_TRUE(s1.WaitForCount(3));
}

TEST_F(RedisBusTest, LeaseIsExclusiveRenewableAndReleasedOnlyByItsHolder) {
  auto lease = [&](const std::string& value, std::chrono::milliseconds ttl) {
    Promise<absl::StatusOr<bool>> p;
    bus_->Lease(1, "lease:k", value, ttl, [&](absl::StatusOr<bool> r) { p.Set(std::move(r)); });
    auto* r = p.Wait();
    EXPECT_NE(r, nullptr);
    EXPECT_TRUE(r->ok()) << r->status();
    return r != nullptr && r->ok() && **r;
  };
  EXPECT_TRUE(lease("a", 10000ms));
  EXPECT_EQ(redis_.Cli({"GET", "lease:k"}), "a");
  EXPECT_FALSE(lease("b", 10000ms));  // held by a
  EXPECT_TRUE(lease("a", 20000ms));   // a renews
  EXPECT_GT(std::stoll(redis_.Cli({"PTTL", "lease:k"})), 10000);
  bus_->ReleaseLease("lease:k", "b");  // not b's: kept
  EXPECT_FALSE(lease("b", 10000ms));
  bus_->ReleaseLease("lease:k", "a");
  EXPECT_TRUE(WaitFor([&] { return redis_.Cli({"EXISTS", "lease:k"}) == "0"; }));
  EXPECT_TRUE(lease("b", 200ms));
  // Expiry frees it (a process that died without releasing).
  EXPECT_TRUE(WaitFor([&] { return redis_.Cli({"EXISTS", "lease:k"}) == "0"; }));
  EXPECT_TRUE(lease("a", 10000ms));
}

TEST(RedisBusHungTest, HealthProbeTakesAHungRedisDownAndRecovers) {
  RedisServer redis;
  ASSERT_TRUE(redis.Start());
  WorkerThreads workers(1);
  RedisBusOptions options = OptionsFor(redis.url());
  options.health_interval = 100ms;
  options.health_timeout = 500ms;
  auto bus = MakeRedisBus(options, workers.executors());
  ASSERT_TRUE(WaitFor([&] { return bus->up(); }));
  RecordingSubscriber s;
  ASSERT_TRUE(SubscribeAndWait(*bus, workers, 0, "hung:c", &s).ok());
  // The probe's own traffic is neither delivered nor counted.
  std::this_thread::sleep_for(300ms);  // a few probe rounds (not a synchronisation)
  EXPECT_EQ(s.count(), 0u);
  EXPECT_EQ(bus->stats().received, 0u);

  redis.Pause();  // TCP stays open, nothing is answered: only the probe can tell
  // A token read in flight when Redis hangs is answered UNAVAILABLE at the teardown.
  Promise<absl::StatusOr<std::optional<std::string>>> token;
  bus->GetAndDelete(0, "hung:auth", [&](auto r) { token.Set(std::move(r)); });
  ASSERT_TRUE(WaitFor([&] { return !bus->up(); })) << "a hung Redis was never noticed";
  ASSERT_NE(token.Wait(), nullptr);
  EXPECT_EQ(token.Wait()->status().code(), absl::StatusCode::kUnavailable);
  redis.Resume();
  ASSERT_TRUE(WaitFor([&] { return bus->up(); }, 15s)) << "bus never reconnected";
  EXPECT_GE(bus->stats().reconnects, 1u);
  ASSERT_TRUE(WaitFor([&] { return redis.NumSub("hung:c") == 1; }));
  EXPECT_EQ(redis.Cli({"PUBLISH", "hung:c", "after"}), "1");
  ASSERT_TRUE(s.WaitForCount(1));
  EXPECT_EQ(s.messages()[0]->payload, "after");
  workers.StopAndJoin();
  bus->Stop();
}

TEST(RedisBusDownTest, SubscribeWhileRedisIsDownReportsUnavailable) {
  WorkerThreads workers(2);
  uint16_t port = FreePort();  // nothing listens there
  auto bus =
      MakeRedisBus(OptionsFor("redis://127.0.0.1:" + std::to_string(port)), workers.executors());
  EXPECT_FALSE(bus->up());
  RecordingSubscriber s;
  absl::Status st = SubscribeAndWait(*bus, workers, 1, "c", &s);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_EQ(bus->Publish("c", "x", false).code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(bus->stats().up);

  // It keeps trying: a server appearing on that port is picked up.
  RedisServer late(port);
  ASSERT_TRUE(late.Start());
  ASSERT_TRUE(WaitFor([&] { return bus->up(); }, 15s));
  // The first successful connection is not a reconnect.
  EXPECT_EQ(bus->stats().reconnects, 0u);
  ASSERT_TRUE(SubscribeAndWait(*bus, workers, 1, "c", &s).ok());
  workers.StopAndJoin();
}

TEST(RedisBusAuthTest, PasswordFromTheUrlIsUsedAndAWrongOneNeverComesUp) {
  RedisServer redis(0, {"--requirepass", "s3cret"});
  ASSERT_TRUE(redis.Start());
  WorkerThreads workers(1);
  auto good =
      MakeRedisBus(OptionsFor("redis://:s3cret@127.0.0.1:" + std::to_string(redis.port()) + "/2"),
                   workers.executors());
  ASSERT_TRUE(WaitFor([&] { return good->up(); }));
  RecordingSubscriber s;
  ASSERT_TRUE(SubscribeAndWait(*good, workers, 0, "auth:c", &s).ok());
  ASSERT_TRUE(good->Publish("auth:c", "m", false).ok());
  ASSERT_TRUE(s.WaitForCount(1));
  // db 2 was selected on the publish connection: GETDEL looks there.
  ASSERT_EQ(redis.Cli({"--no-auth-warning", "-a", "s3cret", "-n", "2", "SET", "k", "v"}), "OK");
  Promise<absl::StatusOr<std::optional<std::string>>> r;
  good->GetAndDelete(0, "k", [&](auto v) { r.Set(std::move(v)); });
  ASSERT_NE(r.Wait(), nullptr);
  ASSERT_TRUE(r.Wait()->ok());
  EXPECT_EQ(r.Wait()->value().value_or("<none>"), "v");

  auto bad = MakeRedisBus(OptionsFor("redis://:wrong@127.0.0.1:" + std::to_string(redis.port())),
                          workers.executors());
  // Redis logs every refused AUTH (ACL LOG folds them into one entry with a count). Two
  // connections per attempt: once four are refused, the first attempt has been answered and
  // torn down and a second one made, and the bus is still down.
  auto refused = [&] {
    std::string log = redis.Cli({"--no-auth-warning", "-a", "s3cret", "ACL", "LOG"});
    size_t at = log.find("count\n");
    return at == std::string::npos ? 0 : std::atoi(log.c_str() + at + 6);
  };
  ASSERT_TRUE(WaitFor([&] { return refused() >= 4; })) << "refused AUTHs: " << refused();
  EXPECT_FALSE(bad->up());
  RecordingSubscriber t;
  EXPECT_EQ(SubscribeAndWait(*bad, workers, 0, "auth:c", &t).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(bad->Publish("auth:c", "m", false).code(), absl::StatusCode::kUnavailable);
  workers.StopAndJoin();
}

}  // namespace
}  // namespace wsgate::dataplane::bus::testing
