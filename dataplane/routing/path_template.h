// Path templates ("/ws/{client_id}") and the table that matches request paths against them.
// Pure functions and immutable objects: built by the control plane, read by every worker.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace wsgate::dataplane {

struct RouteConfig;

// One parsed template. Segments are literals or "{name}" parameters; a parameter matches exactly
// one non-empty path segment. No wildcards.
class PathTemplate {
 public:
  struct Segment {
    bool is_param = false;
    std::string text;  // literal text, or the parameter name
  };

  // Errors name what is wrong ("must start with '/'", "parameter name ... is not valid",
  // "parameter {x} appears twice", ...). The caller adds the field name.
  static absl::StatusOr<PathTemplate> Parse(std::string_view text);

  // Matches a request path (no query string). On success returns the captured parameters in
  // template order.
  std::optional<std::vector<std::pair<std::string, std::string>>> Match(
      std::string_view path) const;

  // The template with parameter names erased ("/ws/{}"): two routes with the same shape would be
  // ambiguous, so the validator refuses that.
  std::string Shape() const;

  const std::vector<Segment>& segments() const { return segments_; }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<Segment> segments_;
};

struct RouteMatch {
  std::shared_ptr<const RouteConfig> route;
  std::vector<std::pair<std::string, std::string>> params;
};

// Routes ordered so that the most specific template wins: at the first segment where two
// templates differ, a literal beats a parameter.
class RouteTable {
 public:
  // Templates must already be valid (the validator ran); an invalid one is a programming error.
  explicit RouteTable(std::vector<std::shared_ptr<const RouteConfig>> routes);

  // `target` may carry a query string, which is ignored for matching.
  std::optional<RouteMatch> Match(std::string_view target) const;

 private:
  struct Entry {
    PathTemplate tmpl;
    std::shared_ptr<const RouteConfig> route;
  };
  std::vector<Entry> entries_;
};

}  // namespace wsgate::dataplane
