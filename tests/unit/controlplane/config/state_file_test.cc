#include "controlplane/config/state_file.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

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

std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

wsgate::v1::StoredState SomeState() {
  wsgate::v1::StoredState s;
  s.set_config_version(12);
  *s.add_routes() = EchoRoute("echo", "/echo");
  wsgate::v1::Route p = ProxyRoute("proxy", "/ws/{id}", "ws://127.0.0.1:9000/x");
  (*p.mutable_websocket()->mutable_set_headers())["X-A"] = "b";
  p.mutable_limits()->set_max_message_bytes(4096);
  p.set_version(12);
  *s.add_routes() = p;
  return s;
}

TEST(StateFileTest, AbsentIsNullopt) {
  TempDir dir;
  StateFile f(dir.path());
  EXPECT_EQ(f.path(), dir.path() + "/routes.json");
  auto loaded = f.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE(loaded->has_value());
}

TEST(StateFileTest, RoundTrip) {
  TempDir dir;
  StateFile f(dir.path() + "/nested/state");  // Save creates the directory
  ASSERT_TRUE(f.Save(SomeState()).ok());
  auto loaded = f.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->has_value());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(**loaded, SomeState()))
      << (*loaded)->DebugString();
  // Human-readable, same field spelling as the YAML config.
  EXPECT_THAT(ReadAll(f.path()), HasSubstr("\"config_version\""));
}

TEST(StateFileTest, AtomicWriteLeavesNoTempFileAndPrivateMode) {
  TempDir dir;
  StateFile f(dir.path());
  ASSERT_TRUE(f.Save(SomeState()).ok());
  wsgate::v1::StoredState next = SomeState();
  next.set_config_version(13);
  ASSERT_TRUE(f.Save(next).ok());
  EXPECT_THAT(Listing(dir.path()), ElementsAre("routes.json"));
  EXPECT_EQ((*f.Load())->config_version(), 13u);
  struct stat st;
  ASSERT_EQ(::stat(f.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(StateFileTest, FailedSaveIsAnErrorAndLeavesNoTempFile) {
  TempDir dir;
  StateFile f(dir.path());
  ASSERT_TRUE(f.Save(SomeState()).ok());
  // Make the rename fail: the target becomes a non-empty directory.
  std::filesystem::remove(f.path());
  std::filesystem::create_directories(f.path() + "/x");
  absl::Status s = f.Save(SomeState());
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(f.path()));
  EXPECT_THAT(Listing(dir.path()), ElementsAre("routes.json"));  // the directory, no temp file
}

TEST(StateFileTest, CorruptJsonIsAnErrorAndTheFileIsUntouched) {
  TempDir dir;
  StateFile f(dir.path());
  const std::string garbage = "{\"config_version\": 3, \"routes\": [ {\"name\": ";
  WriteAll(f.path(), garbage);
  auto loaded = f.Load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()),
              StartsWith("state file " + f.path() + ": not a valid routes file"));
  EXPECT_EQ(ReadAll(f.path()), garbage);
  EXPECT_THAT(Listing(dir.path()), ElementsAre("routes.json"));
}

TEST(StateFileTest, EmptyFileIsAnError) {
  TempDir dir;
  StateFile f(dir.path());
  WriteAll(f.path(), "");
  EXPECT_FALSE(f.Load().ok());
  EXPECT_EQ(ReadAll(f.path()), "");
}

TEST(StateFileTest, UnknownFieldIsAnError) {
  TempDir dir;
  StateFile f(dir.path());
  const std::string text = R"({"config_version": 3, "routez": []})";
  WriteAll(f.path(), text);
  auto loaded = f.Load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr(f.path()));
  EXPECT_EQ(ReadAll(f.path()), text);
}

TEST(StateFileTest, InvalidRouteIsAnErrorNamingIt) {
  TempDir dir;
  StateFile f(dir.path());
  const std::string text =
      R"({"config_version": 3, "routes": [{"name": "a", "path": "/a", "echo": {}},
          {"name": "b", "path": "no-slash", "echo": {}}]})";
  WriteAll(f.path(), text);
  auto loaded = f.Load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()),
              StartsWith("state file " + f.path() + ": routes[1].path: 'no-slash'"));
  EXPECT_EQ(ReadAll(f.path()), text);
}

TEST(StateFileTest, DuplicateRoutesAreAnError) {
  TempDir dir;
  StateFile f(dir.path());
  WriteAll(f.path(), R"({"routes": [{"name": "a", "path": "/ws/{x}", "echo": {}},
                                    {"name": "b", "path": "/ws/{y}", "echo": {}}]})");
  auto loaded = f.Load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("routes[1].path"));
}

TEST(StateFileTest, UnreadableIsAnError) {
  TempDir dir;
  StateFile f(dir.path());
  // A directory where the file should be: unreadable as a file even for root (chmod 000 is not).
  std::filesystem::create_directories(f.path());
  auto loaded = f.Load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr(f.path()));
  EXPECT_TRUE(std::filesystem::is_directory(f.path()));
}

TEST(StateFileTest, FifoIsAnErrorNotAHang) {
  TempDir dir;
  StateFile f(dir.path());
  ASSERT_EQ(::mkfifo(f.path().c_str(), 0600), 0);
  auto loaded = f.Load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("not a regular file"));
}

TEST(StateFileTest, UnreadableByPermissionsIsAnError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads a mode-000 file anyway";
  TempDir dir;
  StateFile f(dir.path());
  ASSERT_TRUE(f.Save(SomeState()).ok());
  ASSERT_EQ(::chmod(f.path().c_str(), 0), 0);
  auto loaded = f.Load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr(f.path()));
}

}  // namespace
}  // namespace wsgate::controlplane
