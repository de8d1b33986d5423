// Helpers shared by the config tests.
#pragma once

#include <string>

#include "wsgate/v1/config.pb.h"

namespace wsgate::controlplane::testing {

// A fresh empty directory under the test temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadAll(const std::string& path);
void WriteAll(const std::string& path, const std::string& data);

wsgate::v1::Route EchoRoute(const std::string& name, const std::string& path);
wsgate::v1::Route ProxyRoute(const std::string& name, const std::string& path,
                             const std::string& upstream);

}  // namespace wsgate::controlplane::testing
