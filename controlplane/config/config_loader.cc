// YAML -> JSON -> proto.
//
// yaml-cpp gives untyped scalars ("123" may be a string or a number), so the YAML tree is walked
// alongside the message descriptor and turned into JSON of the right types; protobuf's own JSON
// parser (ignore_unknown_fields = false) then builds the message, so the proto stays the one
// schema. The walk also produces the good error messages: every error names the field path
// ("routes[1].websocket.upstreams[0]") and the YAML line.
#include "controlplane/config/config_loader.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/text/utf8.h"
#include "controlplane/config/file_io.h"
#include "controlplane/config/yaml_to_proto.h"

namespace wsgate::controlplane {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using nlohmann::json;

std::string Where(const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  if (m.is_null()) return "";
  return absl::StrCat(" (line ", m.line + 1, ", column ", m.column + 1, ")");
}

const char* KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
      return "null";
    default:
      return "nothing";
  }
}

std::string Join(const std::string& path, const std::string& name) {
  return path.empty() ? std::string(name) : absl::StrCat(path, ".", name);
}

class YamlToJson {
 public:
  absl::Status Message(const YAML::Node& node, const Descriptor* desc, const std::string& path,
                       json* out);

 private:
  absl::Status Error(const std::string& path, const YAML::Node& node, absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.empty() ? "config" : path, ": ", what, Where(node)));
  }
  absl::Status Value(const YAML::Node& node, const FieldDescriptor* field, const std::string& path,
                     json* out);
  absl::Status Scalar(const YAML::Node& node, const FieldDescriptor* field, const std::string& path,
                      json* out);
};

// A field by its proto name or its lowerCamelCase JSON name, like protobuf's JSON parser.
const FieldDescriptor* FindField(const Descriptor* desc, const std::string& key) {
  if (const FieldDescriptor* f = desc->FindFieldByName(key)) return f;
  for (int i = 0; i < desc->field_count(); ++i) {
    if (desc->field(i)->json_name() == key) return desc->field(i);
  }
  return nullptr;
}

absl::Status YamlToJson::Message(const YAML::Node& node, const Descriptor* desc,
                                 const std::string& path, json* out) {
  *out = json::object();
  if (node.IsNull()) return absl::OkStatus();  // "echo:" means an empty message
  if (!node.IsMap()) {
    return Error(path, node, absl::StrCat("expected a map, got ", KindName(node)));
  }
  std::map<const FieldDescriptor*, std::string> seen;  // field -> key spelling
  std::map<const google::protobuf::OneofDescriptor*, const FieldDescriptor*> oneofs;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) {
      return Error(path, kv.first,
                   absl::StrCat("a key must be a scalar, got ", KindName(kv.first)));
    }
    const std::string key = kv.first.Scalar();
    const FieldDescriptor* field = FindField(desc, key);
    const std::string field_path = Join(path, key);
    if (field == nullptr) {
      std::vector<std::string> names;
      for (int i = 0; i < desc->field_count(); ++i) names.push_back(desc->field(i)->name());
      return Error(field_path, kv.first,
                   absl::StrCat("unknown field (valid fields of ", desc->name(), ": ",
                                absl::StrJoin(names, ", "), ")"));
    }
    if (auto it = seen.find(field); it != seen.end()) {
      return Error(field_path, kv.first, absl::StrCat("set twice (also as '", it->second, "')"));
    }
    seen.emplace(field, key);
    if (const auto* oneof = field->real_containing_oneof()) {
      auto [it, inserted] = oneofs.emplace(oneof, field);
      if (!inserted) {
        return Error(Join(path, field->name()), kv.first,
                     absl::StrCat("only one of the '", oneof->name(), "' fields may be set ('",
                                  it->second->name(), "' is set too)"));
      }
    }
    json value;
    absl::Status s = Value(kv.second, field, Join(path, field->name()), &value);
    if (!s.ok()) return s;
    if (!value.is_null()) (*out)[field->name()] = std::move(value);
  }
  return absl::OkStatus();
}

absl::Status YamlToJson::Value(const YAML::Node& node, const FieldDescriptor* field,
                               const std::string& path, json* out) {
  if (field->is_map()) {
    *out = json::object();
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsMap()) {
      return Error(path, node, absl::StrCat("expected a map, got ", KindName(node)));
    }
    const FieldDescriptor* key_field = field->message_type()->map_key();
    const FieldDescriptor* value_field = field->message_type()->map_value();
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        return Error(path, kv.first,
                     absl::StrCat("a key must be a scalar, got ", KindName(kv.first)));
      }
      const std::string key = kv.first.Scalar();
      const std::string entry_path = absl::StrCat(path, "[\"", key, "\"]");
      // Keys are JSON strings whatever their type; check them by converting them as a value.
      json key_json;
      absl::Status s = Scalar(kv.first, key_field, entry_path, &key_json);
      if (!s.ok()) return s;
      if (out->contains(key)) return Error(entry_path, kv.first, "key set twice");
      json value;
      s = Value(kv.second, value_field, entry_path, &value);
      if (!s.ok()) return s;
      if (value.is_null()) return Error(entry_path, kv.second, "a map value must not be null");
      (*out)[key] = std::move(value);
    }
    return absl::OkStatus();
  }
  if (field->is_repeated()) {
    *out = json::array();
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsSequence()) {
      return Error(path, node, absl::StrCat("expected a list, got ", KindName(node)));
    }
    for (size_t i = 0; i < node.size(); ++i) {
      const std::string elem_path = absl::StrCat(path, "[", i, "]");
      json value;
      absl::Status s;
      if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
        s = Message(node[i], field->message_type(), elem_path, &value);
      } else if (node[i].IsNull()) {
        return Error(elem_path, node[i], "a list element must not be null");
      } else {
        s = Scalar(node[i], field, elem_path, &value);
      }
      if (!s.ok()) return s;
      out->push_back(std::move(value));
    }
    return absl::OkStatus();
  }
  if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
    return Message(node, field->message_type(), path, out);
  }
  if (node.IsNull()) {
    *out = json();  // unset: the field keeps its default
    return absl::OkStatus();
  }
  return Scalar(node, field, path, out);
}

bool ParseInt(const std::string& text, bool is_unsigned, int64_t* s, uint64_t* u) {
  if (text.empty()) return false;
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  if (is_unsigned) {
    if (text[0] == '-') return false;
    *u = std::strtoull(begin, &end, 10);
  } else {
    *s = std::strtoll(begin, &end, 10);
  }
  if (errno != 0 || end != begin + text.size()) return false;
  // strtoull accepts leading spaces and '+'; YAML scalars have no leading spaces.
  return absl::ascii_isdigit(text[0]) ||
         ((text[0] == '-' || text[0] == '+') && text.size() > 1 && absl::ascii_isdigit(text[1]));
}

absl::Status YamlToJson::Scalar(const YAML::Node& node, const FieldDescriptor* field,
                                const std::string& path, json* out) {
  if (!node.IsScalar()) {
    return Error(path, node, absl::StrCat("expected a scalar, got ", KindName(node)));
  }
  const std::string& text = node.Scalar();
  auto show = [&] { return absl::StrCat("'", text, "'"); };
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      // A plain YAML 123 for a string field is the string "123". (Bytes fields take base64, as
      // in protobuf's JSON mapping.)
      *out = text;
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_BOOL: {
      std::string lower = absl::AsciiStrToLower(text);
      if (lower == "true") {
        *out = true;
      } else if (lower == "false") {
        *out = false;
      } else {
        return Error(path, node, absl::StrCat("expected true or false, got ", show()));
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v = 0;
      uint64_t unused = 0;
      if (!ParseInt(text, false, &v, &unused)) {
        return Error(path, node, absl::StrCat("expected an integer, got ", show()));
      }
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_INT32 &&
          (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())) {
        return Error(path, node, absl::StrCat(text, " is out of range for a 32-bit integer"));
      }
      // 64-bit integers go as strings, as in canonical proto3 JSON, so no precision is lost.
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_INT64) {
        *out = std::to_string(v);
      } else {
        *out = v;
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      int64_t unused = 0;
      uint64_t v = 0;
      if (!ParseInt(text, true, &unused, &v)) {
        return Error(path, node, absl::StrCat("expected an unsigned integer, got ", show()));
      }
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_UINT32 &&
          v > std::numeric_limits<uint32_t>::max()) {
        return Error(path, node,
                     absl::StrCat(text, " is out of range for a 32-bit unsigned integer"));
      }
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_UINT64) {
        *out = std::to_string(v);
      } else {
        *out = v;
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      std::string lower = absl::AsciiStrToLower(text);
      if (lower == ".inf" || lower == "+.inf") {
        *out = "Infinity";
        return absl::OkStatus();
      }
      if (lower == "-.inf") {
        *out = "-Infinity";
        return absl::OkStatus();
      }
      if (lower == ".nan") {
        *out = "NaN";
        return absl::OkStatus();
      }
      const char* begin = text.c_str();
      char* end = nullptr;
      errno = 0;
      double v = std::strtod(begin, &end);
      bool starts_ok = !text.empty() && (absl::ascii_isdigit(text[0]) || text[0] == '-' ||
                                         text[0] == '+' || text[0] == '.');
      if (!starts_ok || end != begin + text.size() || errno == ERANGE || !std::isfinite(v)) {
        return Error(path, node, absl::StrCat("expected a number, got ", show()));
      }
      *out = v;
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const EnumDescriptor* e = field->enum_type();
      if (e->FindValueByName(text) != nullptr) {
        *out = text;
        return absl::OkStatus();
      }
      int64_t n = 0;
      uint64_t unused = 0;
      if (ParseInt(text, false, &n, &unused) && n >= std::numeric_limits<int32_t>::min() &&
          n <= std::numeric_limits<int32_t>::max() &&
          e->FindValueByNumber(static_cast<int>(n)) != nullptr) {
        *out = e->FindValueByNumber(static_cast<int>(n))->name();
        return absl::OkStatus();
      }
      std::vector<std::string> names;
      for (int i = 0; i < e->value_count(); ++i) names.push_back(e->value(i)->name());
      return Error(
          path, node,
          absl::StrCat("unknown value ", show(), " (valid: ", absl::StrJoin(names, ", "), ")"));
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return Error(path, node, "internal error: unexpected field type");
}

}  // namespace

absl::Status ParseYamlInto(std::string_view yaml, google::protobuf::Message* out) {
  out->Clear();
  // YAML text is UTF-8, and so is the JSON it becomes: a stray byte is the operator's error,
  // named by its line (a '\n' is never inside a UTF-8 sequence), not an exception from the JSON
  // writer that would end the process.
  for (size_t start = 0, line = 1; start <= yaml.size(); ++line) {
    size_t end = yaml.find('\n', start);
    if (end == std::string_view::npos) end = yaml.size();
    const std::string_view text = yaml.substr(start, end - start);
    if (!text::IsValidUtf8(text)) {
      return absl::InvalidArgumentError(
          absl::StrCat("config: line ", line, " is not valid UTF-8 (YAML text must be UTF-8)"));
    }
    // YAML allows no control characters but tab, CR and LF; and yaml-cpp, given a NUL, loads
    // empty documents without end until memory runs out.
    for (size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config: line ", line, ", column ", i + 1, ": control character 0x",
            absl::Hex(c, absl::kZeroPad2), " (YAML text allows tab, CR and LF only)"));
      }
    }
    start = end + 1;
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(yaml));
  } catch (const YAML::Exception& e) {
    // e.msg is the bare message; e.mark is where the parser stopped (0-based).
    if (e.mark.is_null()) {
      return absl::InvalidArgumentError(absl::StrCat("YAML syntax error: ", e.msg));
    }
    return absl::InvalidArgumentError(absl::StrCat("YAML syntax error at line ", e.mark.line + 1,
                                                   ", column ", e.mark.column + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("YAML error: ", e.what()));
  }
  if (docs.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected one YAML document, got ", docs.size(), " (remove the extra '---')"));
  }
  if (docs.empty() || docs[0].IsNull()) return absl::OkStatus();  // an empty file: all defaults

  json j;
  try {
    YamlToJson walker;
    absl::Status s = walker.Message(docs[0], out->GetDescriptor(), "", &j);
    if (!s.ok()) return s;
  } catch (const std::exception& e) {
    // yaml-cpp and nlohmann throw on misuse; neither should happen, but nothing escapes here.
    return absl::InternalError(absl::StrCat("converting YAML: ", e.what()));
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  std::string json_text;
  try {
    json_text = j.dump();
  } catch (const json::type_error& e) {
    // Valid UTF-8 text can still spell an invalid string: a YAML escape of a lone surrogate.
    return absl::InvalidArgumentError(
        absl::StrCat("config: a string is not valid UTF-8 (", e.what(), ")"));
  }
  auto status = google::protobuf::util::JsonStringToMessage(json_text, out, options);
  if (!status.ok()) {
    out->Clear();
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", std::string(status.message().data(), status.message().size())));
  }
  return absl::OkStatus();
}

absl::StatusOr<wsgate::v1::Config> ParseConfigYaml(std::string_view yaml) {
  wsgate::v1::Config config;
  if (absl::Status s = ParseYamlInto(yaml, &config); !s.ok()) return s;
  return config;
}

absl::StatusOr<wsgate::v1::Config> LoadConfigFile(const std::string& path) {
  auto text = ReadFileToString(path);  // its errors already name the path
  if (!text.ok()) return text.status();
  auto config = ParseConfigYaml(*text);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

namespace {
// The demo: one echo route, a proxy route whose upstream is that echo route through wsgate
// itself, and the seeds' two outbound routes (http_bridge at /ws, external_client at
// /api/websocket/connect/{client_id}), so a new user sees every kind with no other service
// running. The outbound routes allow loopback targets only, so the demo works on one machine and
// cannot be used to reach anything else; a real deployment lists its own targets. The fan-out
// kinds follow: the seed 002 chat room at /ws/{client_id} and the seed 004 pubsub
// session at /{agent_id}/ws/{session_id}, with no auth (pick one in production).
constexpr char kDemoYaml[] = R"yaml(
routes:
  - name: echo
    path: /echo
    echo: {}
  - name: proxy-echo
    path: /proxy/echo
    websocket:
      upstreams:
        - ws://127.0.0.1:8080/echo  # replaced by DemoConfig with the data plane's address
  - name: http-bridge
    path: /ws
    http_bridge:
      allowed_targets: ["http://127.0.0.1:*", "http://localhost:*"]
      allowed_address_ranges: [loopback]
  - name: external-client
    path: /api/websocket/connect/{client_id}
    external_client:
      allowed_targets: ["ws://127.0.0.1:*", "ws://localhost:*"]
      allowed_address_ranges: [loopback]
  - name: chat-room
    path: /ws/{client_id}
    room: {}
  - name: pubsub-session
    path: /{agent_id}/ws/{session_id}
    pubsub: {}
)yaml";
}  // namespace

std::string DemoProxyUpstream(std::string_view data_host, uint16_t data_port) {
  std::string host(data_host);
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]") host = "127.0.0.1";
  // An IPv6 literal needs brackets in a URL; a name or an IPv4 address has no ':'.
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  return absl::StrCat("ws://", host, ":", data_port, "/echo");
}

wsgate::v1::Config DemoConfig(std::string_view data_host, uint16_t data_port) {
  auto config = ParseConfigYaml(kDemoYaml);
  if (!config.ok()) {
    spdlog::critical("the built-in demo config does not parse: {}",
                     std::string(config.status().message()));
    std::abort();
  }
  auto* routes = config->mutable_routes();
  for (int i = 0; i < routes->size(); ++i) {
    if (routes->Get(i).name() != "proxy-echo") continue;
    if (data_port == 0) {
      // No upstream can name the port before the data plane has bound it.
      routes->DeleteSubrange(i, 1);
      break;
    }
    routes->Mutable(i)->mutable_websocket()->set_upstreams(
        0, DemoProxyUpstream(data_host, data_port));
  }
  return *std::move(config);
}

}  // namespace wsgate::controlplane
