// Path templates and route matching.
//
// Decisions (documented here because the data plane and the validator both rely on them):
// - Matching is on the raw (still percent-encoded) request path, segment by segment. A literal
//   segment matches only the identical bytes: "/ech%6F" does not match "/echo". This is what
//   Envoy's exact path match does and it keeps one request path from having several spellings.
// - A parameter matches exactly one non-empty segment; its captured value is percent-decoded. A
//   segment with a malformed escape ("%zz", "%4") or an escaped NUL ("%00") does not match a
//   parameter, so later route kinds never see a value they cannot trust.
// - Trailing slashes are significant: "/echo/" has an empty last segment, so it does not match
//   "/echo" (and no template can end in '/', except the root "/"). Empty segments ("//") never
//   match anything.
// - The query string (and a fragment, should a client send one) is cut off before matching.
#include "dataplane/routing/path_template.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dataplane/routing/route_config.h"
#include "spdlog/spdlog.h"

namespace wsgate::dataplane {
namespace {

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

// Characters a template may not contain anywhere: query/fragment delimiters, wildcards (not
// supported), '%' (templates are matched against the raw path, so an escape in a template would
// be ambiguous), whitespace and control characters.
bool IsForbidden(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return c == '?' || c == '#' || c == '*' || c == '%' || u <= 0x20 || u == 0x7f;
}

std::string Printable(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) {
    static const char kHex[] = "0123456789abcdef";
    return absl::StrCat("\\x", std::string(1, kHex[u >> 4]), std::string(1, kHex[u & 0xf]));
  }
  return std::string(1, c);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `in`; false on a malformed escape or an escaped NUL.
bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = HexValue(in[i + 1]);
    int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') return false;
    out->push_back(c);
    i += 2;
  }
  return true;
}

// Splits the next segment off `rest` (which starts just after a '/'). Returns the segment and
// advances `rest` past it and its trailing '/', setting `more` when a '/' followed.
std::string_view NextSegment(std::string_view& rest, bool& more) {
  size_t slash = rest.find('/');
  std::string_view seg = rest.substr(0, slash);
  if (slash == std::string_view::npos) {
    rest = std::string_view();
    more = false;
  } else {
    rest.remove_prefix(slash + 1);
    more = true;
  }
  return seg;
}

// Whether `path` matches `segments`. Allocates nothing unless a parameter segment holds an
// escape.
bool MatchesSegments(const std::vector<PathTemplate::Segment>& segments, std::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  if (segments.empty()) return path == "/";
  std::string_view rest = path.substr(1);
  bool more = true;
  std::string scratch;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (!more) return false;  // the path has fewer segments
    std::string_view seg = NextSegment(rest, more);
    const PathTemplate::Segment& s = segments[i];
    if (s.is_param) {
      if (seg.empty()) return false;
      // Only segments with an escape need the decode check; the common case allocates nothing.
      if (seg.find('%') != std::string_view::npos && !PercentDecode(seg, &scratch)) return false;
    } else if (seg != s.text) {
      return false;
    }
  }
  return !more;  // a path with more segments (or a trailing '/') does not match
}

}  // namespace

absl::StatusOr<PathTemplate> PathTemplate::Parse(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("must not be empty");
  if (text[0] != '/') return absl::InvalidArgumentError("must start with '/'");
  for (char c : text) {
    if (IsForbidden(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("character '", Printable(c),
                       "' is not allowed (no query, fragment, wildcard, percent-escape or space)"));
    }
  }
  PathTemplate t;
  t.text_ = std::string(text);
  if (text == "/") return t;  // the root: no segments

  std::string_view rest = text.substr(1);
  bool more = true;
  while (more) {
    std::string_view seg = NextSegment(rest, more);
    if (seg.empty()) {
      return absl::InvalidArgumentError(
          "empty segment ('//' or a trailing '/'); only the root \"/\" may end in '/'");
    }
    bool has_brace = seg.find_first_of("{}") != std::string_view::npos;
    if (!has_brace) {
      t.segments_.push_back(Segment{false, std::string(seg)});
      continue;
    }
    if (seg.size() < 2 || seg.front() != '{' || seg.back() != '}' ||
        seg.substr(1, seg.size() - 2).find_first_of("{}") != std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "segment '", std::string(seg), "': a parameter must be a whole segment, like '/{name}'"));
    }
    std::string_view name = seg.substr(1, seg.size() - 2);
    bool valid =
        !name.empty() && IsNameStart(name[0]) && std::all_of(name.begin(), name.end(), IsNameChar);
    if (!valid) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter name '", std::string(name),
                       "' is not valid (expected [A-Za-z_][A-Za-z0-9_]*)"));
    }
    for (const Segment& s : t.segments_) {
      if (s.is_param && s.text == name) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter {", std::string(name), "} appears twice"));
      }
    }
    t.segments_.push_back(Segment{true, std::string(name)});
  }
  return t;
}

std::optional<std::vector<std::pair<std::string, std::string>>> PathTemplate::Match(
    std::string_view path) const {
  // Check first without allocating: most templates in a table do not match.
  if (!MatchesSegments(segments_, path)) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> params;
  std::string_view rest = segments_.empty() ? std::string_view() : path.substr(1);
  bool more = true;
  for (const Segment& s : segments_) {
    std::string_view seg = NextSegment(rest, more);
    if (!s.is_param) continue;
    std::string value;
    PercentDecode(seg, &value);  // cannot fail: Matches() checked it
    params.emplace_back(s.text, std::move(value));
  }
  return params;
}

std::string PathTemplate::Shape() const {
  if (segments_.empty()) return "/";
  std::string out;
  for (const Segment& s : segments_) {
    out += '/';
    if (s.is_param) {
      out += "{}";
    } else {
      out += s.text;
    }
  }
  return out;
}

RouteTable::RouteTable(std::vector<std::shared_ptr<const RouteConfig>> routes) {
  entries_.reserve(routes.size());
  for (auto& r : routes) {
    auto t = PathTemplate::Parse(r->path);
    if (!t.ok()) {
      // The validator refuses such a route before a snapshot is ever built.
      spdlog::critical("route '{}' has an invalid path template '{}': {}", r->name, r->path,
                       std::string(t.status().message()));
      std::abort();
    }
    entries_.push_back(Entry{*std::move(t), std::move(r)});
  }
  // Two templates can both match a path only when they have the same number of segments and
  // equal literals wherever both have a literal. Ordering by the segment kinds, literal before
  // parameter at the first position where they differ, therefore puts the most specific template
  // first. Ties (same shape; the validator refuses them) keep the order they were given in.
  std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    // Lexicographic over the kinds (literal < parameter), shorter first: a strict weak order.
    const auto& sa = a.tmpl.segments();
    const auto& sb = b.tmpl.segments();
    return std::lexicographical_compare(
        sa.begin(), sa.end(), sb.begin(), sb.end(),
        [](const PathTemplate::Segment& x, const PathTemplate::Segment& y) {
          return !x.is_param && y.is_param;
        });
  });
}

std::optional<RouteMatch> RouteTable::Match(std::string_view target) const {
  std::string_view path = target.substr(0, target.find_first_of("?#"));
  for (const Entry& e : entries_) {
    if (!MatchesSegments(e.tmpl.segments(), path)) continue;
    auto params = e.tmpl.Match(path);
    return RouteMatch{e.route, std::move(*params)};
  }
  return std::nullopt;
}

}  // namespace wsgate::dataplane
