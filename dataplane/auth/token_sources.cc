#include "dataplane/auth/token_sources.h"

#include <cctype>

#include "common/text/token.h"

namespace wsgate::dataplane::auth {

namespace {

bool IsToken68(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    // token68 ends in '=' padding; accepting '=' anywhere is lenient and harmless here.
    if (!text::IsToken68Char(static_cast<unsigned char>(c)) && c != '=') return false;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool FormDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out->push_back(' ');
    } else if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(in[i]);
    }
  }
  return true;
}

}  // namespace

std::string BearerToken(std::string_view header) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return {};
  }
  std::string_view token = header.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (!IsToken68(token)) return {};
  return std::string(token);
}

QueryLookup QueryParam(std::string_view target, std::string_view name, std::string* value) {
  value->clear();
  size_t q = target.find('?');
  if (q == std::string_view::npos) return QueryLookup::kAbsent;
  std::string_view query = target.substr(q + 1);
  if (size_t hash = query.find('#'); hash != std::string_view::npos) query = query.substr(0, hash);
  std::string decoded_name;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string_view raw_name = pair.substr(0, eq);
    if (!FormDecode(raw_name, &decoded_name) || decoded_name != name) continue;
    std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (FormDecode(raw_value, value)) return QueryLookup::kFound;
    value->clear();
    return QueryLookup::kBroken;
  }
  return QueryLookup::kAbsent;
}

FoundToken FindToken(bool has_authorization, std::string_view authorization,
                     std::string_view target, const std::vector<std::string>& subprotocols,
                     const TokenSourceOptions& options) {
  FoundToken found;
  if (has_authorization) {
    found.source = FoundToken::Source::kHeader;
    found.token = BearerToken(authorization);
    if (found.token.empty()) found.error = "malformed Authorization: Bearer header";
    return found;
  }
  if (options.subprotocol) {
    bool offers_plain = false;
    const std::string* carrier = nullptr;
    for (const std::string& p : subprotocols) {
      if (p == kBearerSubprotocol) offers_plain = true;
      if (carrier == nullptr && p.size() >= kBearerSubprotocolPrefix.size() &&
          std::string_view(p).substr(0, kBearerSubprotocolPrefix.size()) ==
              kBearerSubprotocolPrefix) {
        carrier = &p;
      }
    }
    if (carrier != nullptr) {
      found.source = FoundToken::Source::kSubprotocol;
      std::string_view token = std::string_view(*carrier).substr(kBearerSubprotocolPrefix.size());
      if (!offers_plain) {
        found.error = "a subprotocol token needs the \"wsgate.bearer\" subprotocol offered too";
      } else if (!IsToken68(token)) {
        found.error = "malformed subprotocol token";
      } else {
        found.token = std::string(token);
      }
      return found;
    }
  }
  if (!options.query_param.empty()) {
    std::string value;
    if (QueryParam(target, options.query_param, &value) != QueryLookup::kAbsent) {
      found.source = FoundToken::Source::kQuery;
      if (!IsToken68(value)) {
        found.error = "malformed token query parameter";
      } else {
        found.token = std::move(value);
      }
      return found;
    }
  }
  return found;  // nothing anywhere
}

}  // namespace wsgate::dataplane::auth
