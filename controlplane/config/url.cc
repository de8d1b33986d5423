#include "controlplane/config/url.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/text/url.h"

namespace wsgate::controlplane {

absl::StatusOr<dataplane::UpstreamUrl> ParseWsUrl(std::string_view url) {
  // What the shared parser would quietly repair (percent-encoding a space, dropping a fragment)
  // is a mistake in a config file: refused here, with the field's own wording.
  if (url.empty()) return absl::InvalidArgumentError("must not be empty");
  for (char c : url) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return absl::InvalidArgumentError(
          "must not contain whitespace, control or non-ASCII characters");
    }
  }
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", std::string(url), "' is not a ws:// URL"));
  }
  std::string scheme = absl::AsciiStrToLower(std::string(url.substr(0, sep)));
  if (scheme != "ws" && scheme != "wss") {
    return absl::InvalidArgumentError(absl::StrCat("scheme must be ws:// or wss:// (got ",
                                                   std::string(url.substr(0, sep + 3)), ")"));
  }
  if (url.find('#') != std::string_view::npos) {
    return absl::InvalidArgumentError("must not have a fragment ('#')");
  }
  absl::StatusOr<text::Url> parsed = text::ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  dataplane::UpstreamUrl out;
  out.url = std::string(url);
  out.secure = scheme == "wss";
  out.host = parsed->host;
  out.port = parsed->port;
  out.path_and_query = parsed->Target();
  return out;
}

}  // namespace wsgate::controlplane
