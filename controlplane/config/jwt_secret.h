// The HMAC secret of a pubsub route with auth jwt_hs256, read while the route is translated.
// Here, in the control plane, because it reads a file or the process environment: the data
// plane is handed the secret's bytes in the route (PubSubSettings::jwt_secret) and reads neither.
// Unlike the server settings (controlplane/main/settings.cc), the variable's name comes from the
// route itself, and it is read on every translation so that a rotated secret takes effect with
// the next config change.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace wsgate::controlplane {

// From exactly one of a file (its bytes, trailing CR/LF removed: `echo secret > file` works) or
// an environment variable (its value as-is). InvalidArgument saying why (never the secret) when
// both or neither are named, the file cannot be read, or the secret is empty.
absl::StatusOr<std::string> LoadJwtSecret(const std::string& file, const std::string& env_name);

}  // namespace wsgate::controlplane
