#include "tests/unit/controlplane/config/test_util.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace wsgate::controlplane::testing {

TempDir::TempDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "wsgate-config-test-XXXXXX").string();
  char* made = ::mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  // Tests may chmod things; make sure cleanup can descend.
  std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::add, ec);
  std::filesystem::remove_all(path_, ec);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  ASSERT_TRUE(out.good()) << path;
}

wsgate::v1::Route EchoRoute(const std::string& name, const std::string& path) {
  wsgate::v1::Route r;
  r.set_name(name);
  r.set_path(path);
  r.mutable_echo();
  return r;
}

wsgate::v1::Route ProxyRoute(const std::string& name, const std::string& path,
                             const std::string& upstream) {
  wsgate::v1::Route r;
  r.set_name(name);
  r.set_path(path);
  r.mutable_websocket()->add_upstreams(upstream);
  return r;
}

}  // namespace wsgate::controlplane::testing
