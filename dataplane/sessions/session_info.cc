#include "dataplane/sessions/session_info.h"

#include <time.h>

#include <chrono>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/escaping.h"

namespace wsgate::dataplane::sessions {

UnixNanos NowUnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

UnixNanos CoarseNowUnixNanos() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<UnixNanos>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

bool SessionFilter::Matches(std::string_view id, std::string_view route_name,
                            std::string_view address, SessionState s) const {
  if (!route.empty() && route != route_name) return false;
  if (!id_prefix.empty() && id.substr(0, id_prefix.size()) != id_prefix) return false;
  if (!remote_address.empty() && remote_address != address) return false;
  if (state && *state != s) return false;
  return true;
}

bool After(const PageCursor& cursor, UnixNanos at, std::string_view id) {
  return Earlier(cursor.connected_at, cursor.id, at, id);
}

namespace {
constexpr std::string_view kTokenPrefix = "c1:";
}  // namespace

std::string EncodePageToken(const PageCursor& cursor) {
  return absl::WebSafeBase64Escape(std::string(kTokenPrefix) +
                                   std::to_string(cursor.connected_at) + ":" + cursor.id);
}

std::optional<PageCursor> DecodePageToken(std::string_view token) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(std::string(token), &raw)) return std::nullopt;
  std::string_view v = raw;
  if (v.substr(0, kTokenPrefix.size()) != kTokenPrefix) return std::nullopt;
  v.remove_prefix(kTokenPrefix.size());
  size_t colon = v.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 19) return std::nullopt;
  PageCursor c;
  for (char ch : v.substr(0, colon)) {
    if (ch < '0' || ch > '9') return std::nullopt;
  }
  errno = 0;
  c.connected_at = std::strtoll(std::string(v.substr(0, colon)).c_str(), nullptr, 10);
  if (errno != 0) return std::nullopt;
  c.id = std::string(v.substr(colon + 1));
  if (c.id.empty()) return std::nullopt;
  return c;
}

}  // namespace wsgate::dataplane::sessions
