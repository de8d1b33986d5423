// The session registry's pure parts: the event hub (bounded per-watcher buffers, drop counting,
// route filter, no watchers = inactive), page tokens, filters and unique ids.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/sessions/session_events.h"
#include "dataplane/sessions/session_ids.h"
#include "dataplane/sessions/session_info.h"

namespace wsgate::dataplane::sessions {
namespace {

SessionEvent Ev(const std::string& id, const std::string& route = "r") {
  SessionEvent e;
  e.type = SessionEvent::Type::kOpened;
  e.session_id = id;
  e.route = route;
  return e;
}

TEST(SessionEventHubTest, InactiveWithoutWatchers) {
  SessionEventHub hub;
  EXPECT_FALSE(hub.active());
  auto w = hub.Subscribe("", 4, nullptr);
  EXPECT_TRUE(hub.active());
  hub.Unsubscribe(w);
  EXPECT_FALSE(hub.active());
  hub.Emit(Ev("a"));  // nobody: nothing happens
  EXPECT_FALSE(w->Pop().has_value());
}

TEST(SessionEventHubTest, OverflowDropsAndTheNextDeliveredEventCarriesTheCount) {
  SessionEventHub hub;
  int notified = 0;
  auto w = hub.Subscribe("", 3, [&] { ++notified; });
  for (int i = 0; i < 10; ++i) hub.Emit(Ev("e" + std::to_string(i)));
  EXPECT_EQ(notified, 1);  // only on empty -> non-empty
  EXPECT_EQ(w->dropped_total(), 7u);
  for (int i = 0; i < 3; ++i) {
    auto e = w->Pop();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->session_id, "e" + std::to_string(i));
    EXPECT_EQ(e->dropped_before, 0u);
  }
  EXPECT_FALSE(w->Pop());
  // e3..e9 were lost between e2 and the next event that fits.
  hub.Emit(Ev("e10"));
  EXPECT_EQ(notified, 2);
  auto e = w->Pop();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->session_id, "e10");
  EXPECT_EQ(e->dropped_before, 7u);
  hub.Emit(Ev("e11"));
  EXPECT_EQ(w->Pop()->dropped_before, 0u);
}

TEST(SessionEventHubTest, SlowWatcherDoesNotAffectAnother) {
  SessionEventHub hub;
  auto slow = hub.Subscribe("", 1, nullptr);
  auto fast = hub.Subscribe("", 100, nullptr);
  for (int i = 0; i < 50; ++i) hub.Emit(Ev(std::to_string(i)));
  EXPECT_EQ(slow->dropped_total(), 49u);
  EXPECT_EQ(fast->dropped_total(), 0u);
  int n = 0;
  while (fast->Pop()) ++n;
  EXPECT_EQ(n, 50);
}

TEST(SessionEventHubTest, RouteFilter) {
  SessionEventHub hub;
  auto only_a = hub.Subscribe("a", 10, nullptr);
  auto all = hub.Subscribe("", 10, nullptr);
  hub.Emit(Ev("1", "a"));
  hub.Emit(Ev("2", "b"));
  EXPECT_EQ(only_a->Pop()->session_id, "1");
  EXPECT_FALSE(only_a->Pop());
  EXPECT_EQ(all->Pop()->session_id, "1");
  EXPECT_EQ(all->Pop()->session_id, "2");
}

TEST(SessionEventHubTest, ConcurrentEmittersCountEveryEvent) {
  SessionEventHub hub;
  auto w = hub.Subscribe("", 64, nullptr);
  std::atomic<uint64_t> popped{0};
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      if (w->Pop()) ++popped;
    }
    while (w->Pop()) ++popped;
  });
  std::vector<std::thread> emitters;
  for (int t = 0; t < 4; ++t) {
    emitters.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) hub.Emit(Ev("x"));
    });
  }
  for (auto& t : emitters) t.join();
  done = true;
  reader.join();
  EXPECT_EQ(popped.load() + w->dropped_total(), 20000u);
}

TEST(PageTokenTest, RoundTrip) {
  PageCursor c{1763790000123456789, "bob~2"};
  std::string t = EncodePageToken(c);
  auto d = DecodePageToken(t);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->connected_at, c.connected_at);
  EXPECT_EQ(d->id, "bob~2");
  // Ids may contain ':'.
  auto d2 = DecodePageToken(EncodePageToken({5, "a:b"}));
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->id, "a:b");
}

TEST(PageTokenTest, RejectsAnythingElse) {
  EXPECT_FALSE(DecodePageToken(""));
  EXPECT_FALSE(DecodePageToken("garbage"));
  EXPECT_FALSE(DecodePageToken("!!!"));
  std::string t = EncodePageToken({5, "x"});
  EXPECT_FALSE(DecodePageToken(t.substr(0, t.size() - 2)));
}

TEST(PageTokenTest, CursorOrderIsConnectTimeThenId) {
  PageCursor c{100, "m"};
  EXPECT_FALSE(After(c, 100, "m"));  // the cursor itself is on the previous page
  EXPECT_TRUE(After(c, 100, "n"));
  EXPECT_FALSE(After(c, 100, "a"));
  EXPECT_TRUE(After(c, 101, "a"));
  EXPECT_FALSE(After(c, 99, "z"));
}

TEST(SessionFilterTest, Matches) {
  SessionFilter f;
  EXPECT_TRUE(f.Matches("x", "r", "127.0.0.1", SessionState::kOpen));
  f.route = "r";
  f.id_prefix = "ab";
  f.remote_address = "127.0.0.2";
  f.state = SessionState::kOpen;
  EXPECT_TRUE(f.Matches("abc", "r", "127.0.0.2", SessionState::kOpen));
  EXPECT_FALSE(f.Matches("xabc", "r", "127.0.0.2", SessionState::kOpen));
  EXPECT_FALSE(f.Matches("abc", "r2", "127.0.0.2", SessionState::kOpen));
  EXPECT_FALSE(f.Matches("abc", "r", "127.0.0.20", SessionState::kOpen));
  EXPECT_FALSE(f.Matches("abc", "r", "127.0.0.2", SessionState::kClosing));
}

TEST(SessionIdRegistryTest, DuplicatesGetTheFirstFreeSuffix) {
  SessionIdRegistry ids;
  EXPECT_EQ(ids.Claim("bob"), "bob");
  EXPECT_EQ(ids.Claim("bob"), "bob~2");
  EXPECT_EQ(ids.Claim("bob"), "bob~3");
  ids.Release("bob~2");
  EXPECT_EQ(ids.Claim("bob"), "bob~2");
  ids.Release("bob");
  EXPECT_EQ(ids.Claim("bob"), "bob");
  EXPECT_EQ(ids.size(), 3u);
}

}  // namespace
}  // namespace wsgate::dataplane::sessions
