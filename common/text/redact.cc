#include "common/text/redact.h"

#include <cstddef>

namespace wsgate::text {
namespace {

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool IsB64Url(char c) { return IsAlnum(c) || c == '-' || c == '_'; }
// Characters of a bearer/basic credential (RFC 6750 b64token).
bool IsCredential(char c) {
  return IsAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' ||
         c == '=';
}
bool IsQueryNameChar(char c) { return IsAlnum(c) || c == '_' || c == '-' || c == '.'; }
bool EndsQueryValue(char c) {
  return c == '&' || c == '#' || c == '"' || c == '\'' || c == ' ' || c == '\t' || c == '\r' ||
         c == '\n' || c == '<' || c == '>' || c == '\\' || c == ',' || c == ')' || c == ']' ||
         c == '}';
}

bool SecretQueryName(std::string_view name) {
  const std::string n = ToLower(name);
  for (std::string_view w : {"token", "secret", "password", "passwd", "key", "auth", "sig",
                             "credential"}) {
    if (n.find(w) != std::string::npos) return true;
  }
  return false;
}

// The end (index of the closing quote) of the JSON string starting at in[start] == '"', and its
// content unescaped as far as names need (\uXXXX below 0x80, the one-letter escapes); npos if
// it does not close.
size_t JsonStringEnd(std::string_view in, size_t start, std::string* decoded) {
  decoded->clear();
  for (size_t i = start + 1; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '"') return i;
    if (c != '\\') {
      decoded->push_back(c);
      continue;
    }
    if (++i >= in.size()) return std::string::npos;
    if (in[i] == 'u' && i + 4 < in.size()) {
      unsigned v = 0;
      bool hex = true;
      for (size_t k = 1; k <= 4; ++k) {
        const char h = in[i + k];
        v <<= 4;
        if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
        else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
        else hex = false;
      }
      if (hex && v < 0x80) decoded->push_back(static_cast<char>(v));
      i += 4;
    } else {
      decoded->push_back(in[i]);
    }
  }
  return std::string::npos;
}

size_t SkipSpace(std::string_view in, size_t i) {
  while (i < in.size() && (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' || in[i] == '\n')) ++i;
  return i;
}

// Pass 1: JSON members with a secret name get their string (or array) value redacted.
std::string RedactJsonMembers(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  std::string name;
  std::string ignored;
  size_t i = 0;
  while (i < in.size()) {
    if (in[i] != '"') {
      out.push_back(in[i++]);
      continue;
    }
    const size_t end = JsonStringEnd(in, i, &name);
    if (end == std::string::npos) {
      out.append(in.substr(i));
      break;
    }
    out.append(in.substr(i, end + 1 - i));
    i = end + 1;
    size_t colon = SkipSpace(in, i);
    if (colon >= in.size() || in[colon] != ':' || !IsSecretName(name)) continue;
    size_t v = SkipSpace(in, colon + 1);
    if (v >= in.size()) continue;
    if (in[v] == '"') {
      const size_t vend = JsonStringEnd(in, v, &ignored);
      out.append(in.substr(i, v + 1 - i));
      out.append(kRedacted);
      if (vend == std::string::npos) return out + "\"";
      out.push_back('"');
      i = vend + 1;
    } else if (in[v] == '[') {
      // The whole array, strings (with brackets inside them) skipped as strings.
      size_t k = v + 1;
      int depth = 1;
      while (k < in.size() && depth > 0) {
        if (in[k] == '"') {
          const size_t e = JsonStringEnd(in, k, &ignored);
          if (e == std::string::npos) {
            k = in.size();
            break;
          }
          k = e + 1;
          continue;
        }
        if (in[k] == '[') ++depth;
        if (in[k] == ']') --depth;
        ++k;
      }
      out.append(in.substr(i, v - i));
      out.push_back('"');
      out.append(kRedacted);
      out.push_back('"');
      i = k;
    }
  }
  return out;
}

// Pass 2: patterns anywhere in the text.
std::string RedactPatterns(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  auto prev_is = [&](size_t at, bool (*pred)(char)) { return at > 0 && pred(in[at - 1]); };
  while (i < in.size()) {
    const char c = in[i];
    // A JWT: eyJ<b64url>.<b64url>.<b64url>*
    if (c == 'e' && in.substr(i, 3) == "eyJ" && !prev_is(i, IsB64Url)) {
      size_t k = i;
      int dots = 0;
      bool empty_segment = false;
      size_t seg = 0;
      while (k < in.size() && (IsB64Url(in[k]) || (in[k] == '.' && dots < 2))) {
        if (in[k] == '.') {
          if (seg == 0) empty_segment = true;
          ++dots;
          seg = 0;
        } else {
          ++seg;
        }
        ++k;
      }
      if (dots == 2 && !empty_segment) {
        out.append(kRedacted);
        i = k;
        continue;
      }
    }
    // Bearer/Basic credentials.
    // Capitalised as in a header ("Bearer x", "BEARER x"), or dotted as in the subprotocol;
    // prose ("3 bearer tokens") is left alone.
    if ((c == 'b' || c == 'B') && !prev_is(i, IsAlnum)) {
      const std::string word = ToLower(in.substr(i, 6));
      size_t len = word == "bearer" ? 6 : word.substr(0, 5) == "basic" ? 5 : 0;
      const char sep = i + len < in.size() ? in[i + len] : '\0';
      if (len != 0 && ((sep == ' ' && c == 'B') || sep == '.')) {
        size_t k = i + len + 1;
        while (k < in.size() && in[k] == ' ') ++k;
        size_t e = k;
        while (e < in.size() && IsCredential(in[e])) ++e;
        if (e > k) {
          out.append(in.substr(i, k - i));
          out.append(kRedacted);
          i = e;
          continue;
        }
      }
    }
    // A query parameter with a secret name.
    if (c == '?' || c == '&') {
      size_t k = i + 1;
      while (k < in.size() && IsQueryNameChar(in[k])) ++k;
      if (k < in.size() && in[k] == '=' && k > i + 1 && SecretQueryName(in.substr(i + 1, k - i - 1))) {
        size_t e = k + 1;
        while (e < in.size() && !EndsQueryValue(in[e])) ++e;
        out.append(in.substr(i, k + 1 - i));
        out.append(kRedacted);
        i = e;
        continue;
      }
    }
    // A "Name: value" header line with a secret name (not inside JSON: pass 1 did those).
    // (Also inside a JSON string: after an escaped "\n" or the opening quote.)
    const bool escaped_newline = i >= 2 && in[i - 1] == 'n' && in[i - 2] == '\\';
    if (IsQueryNameChar(c) && (i == 0 || in[i - 1] == '\n' || in[i - 1] == ' ' ||
                               in[i - 1] == '{' || in[i - 1] == ',' || in[i - 1] == '[' ||
                               in[i - 1] == '(' || in[i - 1] == '"' || escaped_newline)) {
      size_t k = i;
      while (k < in.size() && IsQueryNameChar(in[k])) ++k;
      if (k + 1 < in.size() && in[k] == ':' && in[k + 1] == ' ' && IsSecretName(in.substr(i, k - i))) {
        size_t e = k + 2;
        while (e < in.size() && in[e] != '\r' && in[e] != '\n' && in[e] != '"' && in[e] != '\\') {
          ++e;
        }
        out.append(in.substr(i, k + 2 - i));
        out.append(kRedacted);
        i = e;
        continue;
      }
    }
    out.push_back(c);
    ++i;
  }
  return out;
}

}  // namespace

bool IsSecretName(std::string_view name) {
  const std::string n = ToLower(name);
  if (n == "authorization" || n == "proxy-authorization" || n == "cookie" || n == "set-cookie") {
    return true;
  }
  for (std::string_view suffix : {"_id", "-id", "_param", "_env", "_file", "_subprotocol"}) {
    if (EndsWith(n, suffix)) return false;
  }
  for (std::string_view w : {"token", "secret", "password", "api-key", "api_key", "apikey"}) {
    if (n.find(w) != std::string::npos) return true;
  }
  return false;
}

std::string RedactSecrets(std::string_view in) { return RedactPatterns(RedactJsonMembers(in)); }

}  // namespace wsgate::text
