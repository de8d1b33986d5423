// The token file's format and every refusal of Authenticate / Authorize.
#include "controlplane/auth/token_auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace wsgate::controlplane {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAdmin[] = "admin-token-0123456789";
constexpr char kViewer[] = "viewer-token-0123456789";

TokenTable Table() {
  absl::StatusOr<TokenTable> t = TokenTable::Parse(
      "# operators\nadmin admin-token-0123456789\n\n  viewer\tviewer-token-0123456789  \n");
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

TEST(TokenTableTest, ParsesRolesSkippingCommentsAndBlankLines) {
  TokenTable t = Table();
  EXPECT_EQ(t.size(), 2u);
  absl::StatusOr<Principal> a = t.Authenticate(std::string("Bearer ") + kAdmin);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->role, Role::kAdmin);
  EXPECT_EQ(a->token_id, TokenId(kAdmin));
  EXPECT_EQ(a->token_id.size(), 8u);
  absl::StatusOr<Principal> v = t.Authenticate(std::string("bearer  ") + kViewer);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->role, Role::kViewer);
}

TEST(TokenTableTest, BadFilesNameTheLineAndNeverTheToken) {
  auto err = [](const char* text) {
    return std::string(TokenTable::Parse(text).status().message());
  };
  EXPECT_THAT(err("admin admin-token-0123456789\nroot root-token-0123456789\n"),
              HasSubstr("line 2: unknown role 'root'"));
  EXPECT_THAT(err("admin short\n"), HasSubstr("line 1: token shorter than 16"));
  EXPECT_THAT(err("admin short\n"), Not(HasSubstr("short\n")));
  EXPECT_THAT(err("admin a b\n"), HasSubstr("line 1: want 'ROLE TOKEN'"));
  EXPECT_THAT(err("admin admin-token-0123456789\nviewer admin-token-0123456789\n"),
              HasSubstr("line 2: the same token is listed twice"));
  EXPECT_THAT(err("# nothing\n"), HasSubstr("no tokens"));
  EXPECT_THAT(std::string(TokenTable::Load("/nonexistent/tokens").status().message()),
              HasSubstr("/nonexistent/tokens"));
}

TEST(TokenTableTest, RefusesMissingMalformedAndUnknownTokens) {
  TokenTable t = Table();
  EXPECT_EQ(t.Authenticate(std::nullopt).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(t.Authenticate(kAdmin).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(t.Authenticate(std::string("Basic ") + kAdmin).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(t.Authenticate("Bearer admin-token-012345678").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(t.Authenticate("Bearer admin-token-01234567890").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(t.Authenticate("Bearer ").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(TokenTableTest, ViewersReadAdminsWrite) {
  TokenTable t = Table();
  const std::string admin = std::string("Bearer ") + kAdmin;
  const std::string viewer = std::string("Bearer ") + kViewer;
  EXPECT_TRUE(t.Authorize(viewer, Access::kRead, "m").ok());
  absl::Status denied =
      t.Authorize(viewer, Access::kWrite, "wsgate.v1.RouteService/PutRoute").status();
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.message()), HasSubstr("wsgate.v1.RouteService/PutRoute"));
  EXPECT_THAT(std::string(denied.message()), Not(HasSubstr(kViewer)));
  EXPECT_TRUE(t.Authorize(admin, Access::kWrite, "m").ok());
  EXPECT_TRUE(t.Authorize(admin, Access::kRead, "m").ok());
}

TEST(TokenTableTest, MutationRuleMatchesTheApi) {
  for (const char* m : {"PutRoute", "DeleteRoute", "UpdateLimits", "CloseSession",
                        "SendToSession", "Publish"}) {
    EXPECT_TRUE(IsMutation(m)) << m;
  }
  for (const char* m : {"ListRoutes", "GetRoute", "GetLimits", "ListSessions", "GetSession",
                        "WatchSessions", "GetInventory"}) {
    EXPECT_FALSE(IsMutation(m)) << m;
  }
}

}  // namespace
}  // namespace wsgate::controlplane
