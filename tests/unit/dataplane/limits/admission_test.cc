#include "dataplane/limits/admission.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "dataplane/limits/limit_kind.h"

namespace wsgate::dataplane::limits {
namespace {

using Verdict = Admission::Verdict;

TEST(AdmissionTest, NoLimitsAdmitsAndCounts) {
  auto a = std::make_shared<Admission>();
  std::vector<std::unique_ptr<Admission::Ticket>> held;
  for (int i = 0; i < 100; ++i) {
    auto r = a->Admit("r", {}, "c", "127.0.0.1");
    ASSERT_EQ(r.verdict, Verdict::kAdmitted);
    held.push_back(std::move(r.ticket));
  }
  EXPECT_EQ(a->Connections("r"), 100);
  held.clear();
  EXPECT_EQ(a->Connections("r"), 0);
}

TEST(AdmissionTest, RouteCapRefuses503AndFreesOnRelease) {
  auto a = std::make_shared<Admission>();
  AdmissionLimits l;
  l.max_connections = 2;
  auto r1 = a->Admit("r", l, "", "a");
  auto r2 = a->Admit("r", l, "", "b");
  auto r3 = a->Admit("r", l, "", "c");
  EXPECT_EQ(r3.verdict, Verdict::kRouteFull);
  EXPECT_EQ(r3.http_status, 503);
  EXPECT_EQ(r3.retry_after_seconds, Admission::kCapRetryAfterSeconds);
  EXPECT_STREQ(r3.limit, "max_connections");
  EXPECT_EQ(r3.ticket, nullptr);
  // Another route is not affected.
  EXPECT_EQ(a->Admit("other", l, "", "c").verdict, Verdict::kAdmitted);
  r1.ticket.reset();
  EXPECT_EQ(a->Admit("r", l, "", "c").verdict, Verdict::kAdmitted);
}

TEST(AdmissionTest, PerClientAndPerAddressRefuse429) {
  auto a = std::make_shared<Admission>();
  AdmissionLimits l;
  l.max_connections_per_client = 1;
  l.max_connections_per_address = 2;
  auto c1 = a->Admit("r", l, "alice", "127.0.0.2");
  ASSERT_EQ(c1.verdict, Verdict::kAdmitted);
  auto c2 = a->Admit("r", l, "alice", "127.0.0.3");
  EXPECT_EQ(c2.verdict, Verdict::kClientFull);
  EXPECT_EQ(c2.http_status, 429);
  EXPECT_STREQ(c2.limit, "max_connections_per_client");
  auto b1 = a->Admit("r", l, "bob", "127.0.0.2");
  ASSERT_EQ(b1.verdict, Verdict::kAdmitted);
  auto x = a->Admit("r", l, "carol", "127.0.0.2");
  EXPECT_EQ(x.verdict, Verdict::kAddressFull);
  EXPECT_EQ(x.http_status, 429);
  EXPECT_STREQ(x.limit, "max_connections_per_address");
  EXPECT_EQ(a->Admit("r", l, "carol", "127.0.0.3").verdict, Verdict::kAdmitted);
  // No client id: the per-client cap does not apply.
  auto anon1 = a->Admit("r", l, "", "127.0.0.4");
  EXPECT_EQ(a->Admit("r", l, "", "127.0.0.5").verdict, Verdict::kAdmitted);
}

TEST(AdmissionTest, CapSetLaterSeesConnectionsAlreadyOpen) {
  auto a = std::make_shared<Admission>();
  auto open = a->Admit("r", {}, "alice", "127.0.0.2");
  AdmissionLimits l;
  l.max_connections_per_client = 1;
  EXPECT_EQ(a->Admit("r", l, "alice", "127.0.0.2").verdict, Verdict::kClientFull);
}

TEST(AdmissionTest, HandshakeRateRefuses429WithRetryAfter) {
  auto a = std::make_shared<Admission>();
  AdmissionLimits l;
  l.handshakes_per_second = 0.5;  // burst 1, then one per 2 s
  const auto t0 = TokenBucket::Clock::time_point{} + std::chrono::hours(1);
  auto r1 = a->Admit("r", l, "", "x", t0);
  ASSERT_EQ(r1.verdict, Verdict::kAdmitted);
  auto r2 = a->Admit("r", l, "", "x", t0);
  EXPECT_EQ(r2.verdict, Verdict::kHandshakeRate);
  EXPECT_EQ(r2.http_status, 429);
  EXPECT_EQ(r2.retry_after_seconds, 2);
  EXPECT_STREQ(r2.limit, "handshakes_per_second");
  EXPECT_EQ(a->Admit("r", l, "", "x", t0 + std::chrono::seconds(2)).verdict, Verdict::kAdmitted);
  // A refused cap does not spend a handshake token.
  l.max_connections = 1;
  auto full = a->Admit("r2", l, "", "x", t0);
  ASSERT_EQ(full.verdict, Verdict::kAdmitted);
  EXPECT_EQ(a->Admit("r2", l, "", "x", t0).verdict, Verdict::kRouteFull);
}

TEST(AdmissionTest, ThreadsNeverExceedTheCap) {
  auto a = std::make_shared<Admission>();
  AdmissionLimits l;
  l.max_connections = 50;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  std::vector<std::vector<std::unique_ptr<Admission::Ticket>>> held(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        auto r = a->Admit("r", l, "", "addr");
        if (r.ticket) {
          ++admitted;
          held[t].push_back(std::move(r.ticket));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(admitted.load(), 50);
  EXPECT_EQ(a->Connections("r"), 50);
  held.clear();
  EXPECT_EQ(a->Connections("r"), 0);
}

TEST(LimitKindTest, NamesRoundTrip) {
  for (int i = 0; i < kLimitKindCount; ++i) {
    auto k = static_cast<LimitKind>(i);
    EXPECT_EQ(LimitKindFromName(LimitKindName(k)), k);
  }
  EXPECT_EQ(LimitKindFromName("nope"), LimitKind::kCount);
  EXPECT_STREQ(LimitKindName(LimitKind::kMaxConnectionsPerAddress), "max_connections_per_address");
}

}  // namespace
}  // namespace wsgate::dataplane::limits
