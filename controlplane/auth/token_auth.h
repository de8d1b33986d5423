// Bearer tokens with roles for the control plane (gRPC and the admin port's Connect API).
//
// The token file has one `ROLE TOKEN` pair per line (roles: admin, viewer); blank lines and lines
// starting with '#' are ignored. A token is never logged: log lines name a token by its id, the
// first 8 hex digits of its SHA-256, which says which line of the file was used without letting
// anyone who reads the log present it.
//
// Thread-safety: a TokenTable is immutable after Parse, so any thread may call it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wsgate::controlplane {

enum class Role { kViewer, kAdmin };

absl::string_view RoleName(Role role);

// Who made a call: what the audit log records.
struct Principal {
  Role role = Role::kViewer;
  std::string token_id;  // 8 hex digits of SHA-256(token); "" when tokens are off
};

// What a call needs: viewers may read, only admins may change anything.
enum class Access { kRead, kWrite };

// The mutating RPCs by the naming rule of wsgate.v1: a method whose name starts with Put,
// Delete, Update, Close, Send or Publish changes state. The audit log and the tests use this rule;
// each service states the access its methods need, and a test checks the two agree.
bool IsMutation(absl::string_view method_name);

class TokenTable {
 public:
  // Shortest token accepted: a guessable token would make the roles decorative.
  static constexpr size_t kMinTokenLength = 16;

  // Errors name the line: "line 3: unknown role 'root' (want admin or viewer)".
  static absl::StatusOr<TokenTable> Parse(absl::string_view text);
  // Parse of the file's contents; errors start with the path.
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // `authorization` is the value of the Authorization header / metadata (nullopt: absent).
  // UNAUTHENTICATED when absent, not "Bearer <token>", or not a known token. Every known token is
  // compared, in constant time, whatever matches first.
  absl::StatusOr<Principal> Authenticate(std::optional<absl::string_view> authorization) const;

  // Authenticate, then PERMISSION_DENIED when a viewer asks for kWrite. `what` names the call
  // in the message ("wsgate.v1.RouteService/PutRoute").
  absl::StatusOr<Principal> Authorize(std::optional<absl::string_view> authorization,
                                      Access access, absl::string_view what) const;

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Role role;
    std::array<uint8_t, 32> digest;
    std::string id;
  };
  std::vector<Entry> entries_;
};

// The 8-hex-digit id of a token (see above).
std::string TokenId(absl::string_view token);

}  // namespace wsgate::controlplane
