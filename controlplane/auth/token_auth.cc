#include "controlplane/auth/token_auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>
#include <set>

#include "absl/strings/string_view.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "controlplane/config/file_io.h"

namespace wsgate::controlplane {
namespace {

std::array<uint8_t, 32> Sha256(absl::string_view data) {
  std::array<uint8_t, 32> out{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return out;
}

std::string Hex(const uint8_t* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 0xf]);
  }
  return out;
}

bool PrintableToken(absl::string_view token) {
  for (char c : token) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return true;
}

}  // namespace

absl::string_view RoleName(Role role) { return role == Role::kAdmin ? "admin" : "viewer"; }

bool IsMutation(absl::string_view method_name) {
  for (absl::string_view prefix : {"Put", "Delete", "Update", "Close", "Send", "Publish"}) {
    if (absl::StartsWith(method_name, prefix)) return true;
  }
  return false;
}

std::string TokenId(absl::string_view token) {
  const std::array<uint8_t, 32> d = Sha256(token);
  return Hex(d.data(), 4);
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text) {
  TokenTable table;
  std::set<std::array<uint8_t, 32>> seen;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (parts.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": want 'ROLE TOKEN' (two words), got ", parts.size()));
    }
    Entry e;
    if (parts[0] == "admin") {
      e.role = Role::kAdmin;
    } else if (parts[0] == "viewer") {
      e.role = Role::kViewer;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": unknown role '",
                                                     parts[0], "' (want admin or viewer)"));
    }
    // The token itself never appears in an error: the file may be shown to someone.
    if (parts[1].size() < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_no, ": token shorter than ", kMinTokenLength, " characters"));
    }
    if (!PrintableToken(parts[1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": token has characters other than printable ASCII"));
    }
    e.digest = Sha256(parts[1]);
    if (!seen.insert(e.digest).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": the same token is listed twice"));
    }
    e.id = Hex(e.digest.data(), 4);
    table.entries_.push_back(std::move(e));
  }
  if (table.entries_.empty()) {
    return absl::InvalidArgumentError("no tokens (want one 'ROLE TOKEN' line at least)");
  }
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<TokenTable> table = Parse(*text);
  if (!table.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", table.status().message()));
  }
  return table;
}

absl::StatusOr<Principal> TokenTable::Authenticate(
    std::optional<absl::string_view> authorization) const {
  if (!authorization) {
    return absl::UnauthenticatedError("authorization: missing (want 'Bearer TOKEN')");
  }
  absl::string_view value = absl::StripAsciiWhitespace(*authorization);
  // The scheme is case-insensitive (RFC 9110).
  if (value.size() < 7 || !absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) {
    return absl::UnauthenticatedError("authorization: not a Bearer token");
  }
  const std::array<uint8_t, 32> presented =
      Sha256(absl::StripLeadingAsciiWhitespace(value.substr(7)));
  // Comparing digests of equal length with CRYPTO_memcmp, over every entry, makes the time
  // independent of how much of any token matched and of which entry did.
  const Entry* match = nullptr;
  for (const Entry& e : entries_) {
    if (CRYPTO_memcmp(e.digest.data(), presented.data(), presented.size()) == 0) match = &e;
  }
  if (match == nullptr) return absl::UnauthenticatedError("authorization: unknown token");
  return Principal{match->role, match->id};
}

absl::StatusOr<Principal> TokenTable::Authorize(std::optional<absl::string_view> authorization,
                                                Access access, absl::string_view what) const {
  absl::StatusOr<Principal> p = Authenticate(authorization);
  if (!p.ok()) return p;
  if (access == Access::kWrite && p->role != Role::kAdmin) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, ": the viewer role may only read (token ", p->token_id, ")"));
  }
  return p;
}

}  // namespace wsgate::controlplane
