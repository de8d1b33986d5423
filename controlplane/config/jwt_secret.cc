#include "controlplane/config/jwt_secret.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace wsgate::controlplane {

absl::StatusOr<std::string> LoadJwtSecret(const std::string& file, const std::string& env_name) {
  if (file.empty() == env_name.empty()) {
    return absl::InvalidArgumentError(file.empty()
                                          ? "name the secret with jwt_secret_file or jwt_secret_env"
                                          : "set only one of jwt_secret_file and jwt_secret_env");
  }
  if (file.empty()) {
    const char* value = std::getenv(env_name.c_str());
    if (value == nullptr || *value == '\0') {
      return absl::InvalidArgumentError("environment variable " + env_name +
                                        " is unset or empty");
    }
    return std::string(value);
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError("cannot read '" + file + "': " + std::strerror(errno));
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError("cannot read '" + file + "'");
  std::string secret = buf.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) return absl::InvalidArgumentError("'" + file + "' is empty");
  return secret;
}

}  // namespace wsgate::controlplane
