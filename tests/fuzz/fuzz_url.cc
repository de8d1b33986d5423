// The URL parser the outbound allow-list and HTTP client share (common/text/url.h).
// Invariants: a URL that parses has a known scheme, a host, a path starting with '/', and its
// normalised form (ToString) parses to the same scheme, host, port, path and query. Part of the
// input after a newline is resolved as a redirect Location against it; a resolved URL also
// round-trips.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/text/url.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using wsgate::text::ParseUrl;
using wsgate::text::Url;

void CheckUrl(const Url& u) {
  FUZZ_CHECK(u.scheme == "http" || u.scheme == "https" || u.scheme == "ws" || u.scheme == "wss");
  FUZZ_CHECK(!u.host.empty());
  FUZZ_CHECK(!u.path.empty() && u.path[0] == '/');
  FUZZ_CHECK(u.has_query || u.query.empty());
  FUZZ_CHECK(u.explicit_port || u.port == wsgate::text::DefaultPort(u.scheme));
  const std::string text = u.ToString();
  auto again = ParseUrl(text);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->scheme == u.scheme);
  FUZZ_CHECK(again->host == u.host);
  FUZZ_CHECK(again->host_is_ipv6 == u.host_is_ipv6);
  FUZZ_CHECK(again->port == u.port);
  FUZZ_CHECK(again->path == u.path);
  FUZZ_CHECK(again->query == u.query);
  FUZZ_CHECK(again->has_query == u.has_query);
  FUZZ_CHECK(again->ToString() == text);
  FUZZ_CHECK(again->Target() == u.Target());
  FUZZ_CHECK(again->HostHeader() == u.HostHeader());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string_view first = input.substr(0, nl);
  auto url = ParseUrl(first);
  if (url.ok()) CheckUrl(*url);
  if (nl != std::string_view::npos) {
    const std::string_view location = input.substr(nl + 1);
    auto whole = ParseUrl(input);  // a newline inside: must not crash either way
    (void)whole;
    if (url.ok()) {
      auto resolved = wsgate::text::ResolveReference(*url, location);
      if (resolved.ok()) CheckUrl(*resolved);
    }
  }
  return 0;
}
