#include "controlplane/config/jwt_secret.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace wsgate::controlplane {
namespace {

using ::testing::HasSubstr;

std::string TempFileWith(const std::string& bytes) {
  char path[] = "/tmp/wsgate-jwt-secret-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  std::ofstream(path, std::ios::binary) << bytes;
  close(fd);
  return path;
}

TEST(LoadJwtSecret, FileBytesWithoutTrailingNewlines) {
  const std::string path = TempFileWith("s3cr3t value\r\n\n");
  absl::StatusOr<std::string> s = LoadJwtSecret(path, "");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, "s3cr3t value");
  std::remove(path.c_str());
}

TEST(LoadJwtSecret, EnvironmentVariableAsIs) {
  setenv("WSGATE_TEST_JWT_SECRET", " spaced\n", 1);
  absl::StatusOr<std::string> s = LoadJwtSecret("", "WSGATE_TEST_JWT_SECRET");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, " spaced\n");
  setenv("WSGATE_TEST_JWT_SECRET", "", 1);
  EXPECT_THAT(std::string(LoadJwtSecret("", "WSGATE_TEST_JWT_SECRET").status().message()),
              HasSubstr("WSGATE_TEST_JWT_SECRET is unset or empty"));
  unsetenv("WSGATE_TEST_JWT_SECRET");
}

TEST(LoadJwtSecret, RefusalsSayWhyAndNeverTheSecret) {
  EXPECT_EQ(LoadJwtSecret("", "").status().message(),
            "name the secret with jwt_secret_file or jwt_secret_env");
  EXPECT_EQ(LoadJwtSecret("/f", "V").status().message(),
            "set only one of jwt_secret_file and jwt_secret_env");
  EXPECT_THAT(std::string(LoadJwtSecret("/nonexistent/jwt", "").status().message()),
              HasSubstr("cannot read '/nonexistent/jwt'"));
  const std::string empty = TempFileWith("\n");
  EXPECT_EQ(LoadJwtSecret(empty, "").status().message(), "'" + empty + "' is empty");
  std::remove(empty.c_str());
}

}  // namespace
}  // namespace wsgate::controlplane
