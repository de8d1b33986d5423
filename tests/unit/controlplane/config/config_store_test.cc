#include "controlplane/config/config_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/config/config_loader.h"
#include "tests/unit/controlplane/config/test_util.h"

namespace wsgate::controlplane {
namespace {

using testing::EchoRoute;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ProxyRoute;
using testing::ReadAll;
using ::testing::StartsWith;
using testing::TempDir;
using testing::WriteAll;

std::vector<std::string> Names(const ConfigStore& store) {
  std::vector<std::string> names;
  for (const auto& r : store.ListRoutes()) names.push_back(r.name());
  return names;
}

std::unique_ptr<ConfigStore> MustOpen(const wsgate::v1::Config& initial, const std::string& dir,
                                      dataplane::StatsRegistry* stats) {
  auto store = ConfigStore::Open(initial, dir, stats);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

class ConfigStoreTest : public ::testing::Test {
 protected:
  dataplane::StatsRegistry stats_{1};
};

TEST_F(ConfigStoreTest, OpensOnTheInitialConfigAtVersionOne) {
  auto store = MustOpen(DemoConfig(), "", &stats_);
  EXPECT_EQ(store->version(), 1u);
  EXPECT_EQ(store->origin(), "configuration");
  EXPECT_THAT(Names(*store), ElementsAre("chat-room", "echo", "external-client", "http-bridge",
                                         "proxy-echo", "pubsub-session"));
  for (const auto& r : store->ListRoutes()) EXPECT_EQ(r.version(), 1u) << r.name();
  ASSERT_NE(store->snapshot(), nullptr);
  EXPECT_EQ(store->snapshot()->version, 1u);
  EXPECT_EQ(store->snapshot()->routes.size(), 6u);
  ASSERT_TRUE(store->snapshot()->table.Match("/proxy/echo"));
}

TEST_F(ConfigStoreTest, InvalidInitialConfigIsRefused) {
  wsgate::v1::Config c;
  *c.add_routes() = EchoRoute("Bad", "/x");
  auto store = ConfigStore::Open(c, "", &stats_);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), StartsWith("routes[0].name"));
}

TEST_F(ConfigStoreTest, PutGetListDelete) {
  auto store = MustOpen(DemoConfig(), "", &stats_);
  wsgate::v1::Route r = ProxyRoute("chat", "/chat/{id}", "ws://127.0.0.1:9/c");
  r.set_version(777);  // output-only: replaced
  auto put = store->PutRoute(r, std::nullopt);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_TRUE(put->created);
  EXPECT_EQ(put->config_version, 2u);
  EXPECT_EQ(put->route.version(), 2u);
  EXPECT_EQ(store->version(), 2u);
  EXPECT_THAT(Names(*store), ElementsAre("chat", "chat-room", "echo", "external-client",
                                         "http-bridge", "proxy-echo", "pubsub-session"));
  auto got = store->GetRoute("chat");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->path(), "/chat/{id}");
  EXPECT_EQ(got->version(), 2u);
  EXPECT_EQ(store->snapshot()->version, 2u);
  auto m = store->snapshot()->table.Match("/chat/42");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route->name, "chat");
  EXPECT_EQ(m->route->version, 2u);

  // Replace: same name, new path; other routes keep their versions.
  r.set_path("/chat2/{id}");
  put = store->PutRoute(r, std::nullopt);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_FALSE(put->created);
  EXPECT_EQ(put->config_version, 3u);
  EXPECT_EQ(store->GetRoute("chat")->version(), 3u);
  EXPECT_EQ(store->GetRoute("echo")->version(), 1u);
  EXPECT_FALSE(store->snapshot()->table.Match("/chat/42"));
  EXPECT_TRUE(store->snapshot()->table.Match("/chat2/42"));

  auto del = store->DeleteRoute("chat", std::nullopt);
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_EQ(*del, 4u);
  EXPECT_EQ(store->GetRoute("chat").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(store->GetRoute("chat").status().message()), HasSubstr("'chat'"));
  EXPECT_EQ(store->DeleteRoute("chat", std::nullopt).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(store->snapshot()->table.Match("/chat2/42"));
  EXPECT_EQ(store->version(), 4u);
}

TEST_F(ConfigStoreTest, ExpectedVersionOnPut) {
  auto store = MustOpen(DemoConfig(), "", &stats_);
  // 0: must not exist.
  auto put = store->PutRoute(EchoRoute("echo", "/echo"), 0);
  ASSERT_EQ(put.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(put.status().message()), HasSubstr("'echo' already exists"));
  ASSERT_TRUE(store->PutRoute(EchoRoute("new", "/new"), 0).ok());
  EXPECT_EQ(store->GetRoute("new")->version(), 2u);
  // Mismatch.
  put = store->PutRoute(EchoRoute("new", "/new2"), 5);
  ASSERT_EQ(put.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(put.status().message(), "route 'new' is at version 2, expected 5");
  EXPECT_EQ(store->GetRoute("new")->path(), "/new");
  EXPECT_EQ(store->version(), 2u);
  // A version for a route that does not exist.
  put = store->PutRoute(EchoRoute("ghost", "/ghost"), 3);
  ASSERT_EQ(put.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(put.status().message()), HasSubstr("'ghost' does not exist"));
  // Match.
  put = store->PutRoute(EchoRoute("new", "/new2"), 2);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->route.version(), 3u);
}

TEST_F(ConfigStoreTest, ExpectedVersionOnDelete) {
  auto store = MustOpen(DemoConfig(), "", &stats_);
  auto del = store->DeleteRoute("echo", 4);
  ASSERT_EQ(del.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(del.status().message(), "route 'echo' is at version 1, expected 4");
  EXPECT_TRUE(store->GetRoute("echo").ok());
  del = store->DeleteRoute("echo", 1);
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_EQ(*del, 2u);
}

TEST_F(ConfigStoreTest, DuplicatePathShapeIsRefused) {
  wsgate::v1::Config c;
  *c.add_routes() = EchoRoute("ws", "/ws/{client_id}");
  auto store = MustOpen(c, "", &stats_);
  auto put = store->PutRoute(EchoRoute("ws2", "/ws/{id}"), std::nullopt);
  ASSERT_EQ(put.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(put.status().message()), StartsWith("route.path: '/ws/{id}'"));
  EXPECT_THAT(std::string(put.status().message()), HasSubstr("route 'ws'"));
  EXPECT_EQ(store->version(), 1u);
  // The route itself may keep (or rename the parameter of) its own shape.
  EXPECT_TRUE(store->PutRoute(EchoRoute("ws", "/ws/{id}"), std::nullopt).ok());
}

TEST_F(ConfigStoreTest, InvalidRouteLeavesTheStoreUnchanged) {
  auto store = MustOpen(DemoConfig(), "", &stats_);
  int calls = 0;
  store->SetListener([&](dataplane::SnapshotPtr) { ++calls; });
  auto before = store->snapshot();
  auto put = store->PutRoute(ProxyRoute("echo", "/echo", "http://x"), std::nullopt);
  ASSERT_EQ(put.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(put.status().message()),
              StartsWith("route.websocket.upstreams[0]: scheme must be ws://"));
  put = store->PutRoute(EchoRoute("", "/x"), std::nullopt);
  EXPECT_EQ(put.status().message(), "route.name: required");
  EXPECT_EQ(store->version(), 1u);
  EXPECT_EQ(store->snapshot(), before);
  EXPECT_TRUE(store->GetRoute("echo")->has_echo());
  EXPECT_EQ(calls, 0);
}

TEST_F(ConfigStoreTest, PersistsAndReopens) {
  TempDir dir;
  {
    auto store = MustOpen(DemoConfig(), dir.path(), &stats_);
    EXPECT_EQ(store->origin(), "configuration");
    ASSERT_TRUE(store->PutRoute(EchoRoute("added", "/added"), std::nullopt).ok());
    ASSERT_TRUE(store->DeleteRoute("proxy-echo", std::nullopt).ok());
    EXPECT_EQ(store->version(), 3u);
  }
  // The initial config is ignored once a state file exists: a restart serves what was changed.
  wsgate::v1::Config other;
  *other.add_routes() = EchoRoute("unrelated", "/u");
  auto store = MustOpen(other, dir.path(), &stats_);
  EXPECT_EQ(store->origin(), "state file " + dir.path() + "/routes.json");
  EXPECT_EQ(store->version(), 3u);
  EXPECT_THAT(Names(*store), ElementsAre("added", "chat-room", "echo", "external-client",
                                         "http-bridge", "pubsub-session"));
  EXPECT_EQ(store->GetRoute("added")->version(), 2u);
  EXPECT_EQ(store->GetRoute("echo")->version(), 1u);
  EXPECT_EQ(store->snapshot()->version, 3u);
  auto put = store->PutRoute(EchoRoute("more", "/more"), std::nullopt);
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->config_version, 4u);  // continues from the stored version
}

TEST_F(ConfigStoreTest, DefaultLimitsFromTheConfigPersistAndReachTheSnapshot) {
  TempDir dir;
  wsgate::v1::Config config = DemoConfig();
  config.mutable_default_limits()->set_idle_timeout_ms(30000);
  {
    auto store = MustOpen(config, dir.path(), &stats_);
    EXPECT_EQ(store->default_limits().idle_timeout_ms(), 30000u);
    for (const auto& r : store->snapshot()->routes) {
      EXPECT_EQ(r->limits.idle_timeout_ms, 30000u) << r->name;
    }
    auto change = store->UpdateLimits("", [](const wsgate::v1::Limits& current) {
      wsgate::v1::Limits l = current;
      l.set_max_connections(7);
      return absl::StatusOr<wsgate::v1::Limits>(l);
    });
    ASSERT_TRUE(change.ok()) << change.status();
    EXPECT_EQ(change->before.max_connections(), 0u);
    EXPECT_EQ(change->after.max_connections(), 7u);
    EXPECT_EQ(change->config_version, 2u);
    EXPECT_EQ(store->snapshot()->version, 2u);
  }
  wsgate::v1::Config other;
  *other.add_routes() = EchoRoute("unrelated", "/u");
  auto store = MustOpen(other, dir.path(), &stats_);
  EXPECT_EQ(store->default_limits().max_connections(), 7u);
  EXPECT_EQ(store->default_limits().idle_timeout_ms(), 30000u);
  EXPECT_EQ(store->version(), 2u);
  const auto match = store->snapshot()->table.Match("/echo");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->route->limits.max_connections, 7u);
}

TEST_F(ConfigStoreTest, UpdateRouteLimits) {
  auto store = MustOpen(DemoConfig(), "", &stats_);
  auto set_rate = [](double rate) {
    return [rate](const wsgate::v1::Limits& current) {
      wsgate::v1::Limits l = current;
      l.set_messages_per_second(rate);
      return absl::StatusOr<wsgate::v1::Limits>(l);
    };
  };
  auto change = store->UpdateLimits("echo", set_rate(5));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->config_version, 2u);
  EXPECT_EQ(store->GetRoute("echo")->version(), 2u);
  EXPECT_DOUBLE_EQ(store->GetRoute("echo")->limits().messages_per_second(), 5);
  EXPECT_DOUBLE_EQ(store->snapshot()->table.Match("/echo")->route->limits.messages_per_second, 5);
  // The same value again: no change, no new version.
  change = store->UpdateLimits("echo", set_rate(5));
  ASSERT_TRUE(change.ok());
  EXPECT_EQ(change->config_version, 2u);
  EXPECT_EQ(store->version(), 2u);

  auto bad = store->UpdateLimits("echo", set_rate(-1));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              StartsWith("limits.messages_per_second: must be >= 0"));
  EXPECT_EQ(store->version(), 2u);
  bad = store->UpdateLimits("", set_rate(-1));
  EXPECT_THAT(std::string(bad.status().message()),
              StartsWith("limits.messages_per_second: must be >= 0"));
  EXPECT_EQ(store->UpdateLimits("nope", set_rate(1)).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ConfigStoreTest, CorruptStateFileRefusesToOpenAndIsNotOverwritten) {
  TempDir dir;
  const std::string path = dir.path() + "/routes.json";
  WriteAll(path, "not json");
  auto store = ConfigStore::Open(DemoConfig(), dir.path(), &stats_);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(path));
  EXPECT_EQ(ReadAll(path), "not json");
}

TEST_F(ConfigStoreTest, FailedWriteChangesNothing) {
  TempDir dir;
  auto store = MustOpen(DemoConfig(), dir.path(), &stats_);
  int calls = 0;
  store->SetListener([&](dataplane::SnapshotPtr) { ++calls; });
  // A non-empty directory where the state file goes: the rename fails.
  std::filesystem::create_directories(dir.path() + "/routes.json/x");
  auto before = store->snapshot();
  auto put = store->PutRoute(EchoRoute("added", "/added"), std::nullopt);
  ASSERT_FALSE(put.ok());
  EXPECT_TRUE(put.status().code() == absl::StatusCode::kUnavailable ||
              put.status().code() == absl::StatusCode::kInternal)
      << put.status();
  EXPECT_EQ(store->version(), 1u);
  EXPECT_EQ(store->GetRoute("added").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->snapshot(), before);
  auto del = store->DeleteRoute("echo", std::nullopt);
  ASSERT_FALSE(del.ok());
  EXPECT_TRUE(store->GetRoute("echo").ok());
  EXPECT_EQ(calls, 0);
  // Once the disk is back, changes go through with the next version.
  std::filesystem::remove_all(dir.path() + "/routes.json");
  put = store->PutRoute(EchoRoute("added", "/added"), std::nullopt);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->config_version, 2u);
  EXPECT_EQ(calls, 1);
}

TEST_F(ConfigStoreTest, ListenerSeesEveryVersionInOrder) {
  auto store = MustOpen(DemoConfig(), "", &stats_);
  std::mutex mu;
  std::vector<uint64_t> seen;
  store->SetListener([&](dataplane::SnapshotPtr s) {
    // Reading the store from the listener must not deadlock: it runs outside mu_.
    EXPECT_GE(store->version(), s->version);
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(s->version);
  });
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string name = "r" + std::to_string(t) + "-" + std::to_string(i % 3);
        EXPECT_TRUE(store->PutRoute(EchoRoute(name, "/" + name), std::nullopt).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kThreads * kPerThread));
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i + 2) << i;
  EXPECT_EQ(store->version(), 1u + kThreads * kPerThread);
}

}  // namespace
}  // namespace wsgate::controlplane
