#include "controlplane/grpc/access.h"

#include "common/text/json_quote.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/field_mask.pb.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controlplane/grpc/status.h"

namespace wsgate::controlplane {
namespace {

namespace pb = google::protobuf;

AuthDenials& Denials() {
  static AuthDenials* d = new AuthDenials();
  return *d;
}

std::optional<absl::string_view> FindMetadata(
    const std::multimap<grpc::string_ref, grpc::string_ref>& md, absl::string_view key) {
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

using text::JsonQuote;

// The request reduced to what names its target: sub-messages keep only their `name`, payload
// oneofs become a byte count. Generic over the descriptors, so a new mutation is audited with no
// change here.
std::string DescribeRequest(const pb::Message& request) {
  std::unique_ptr<pb::Message> copy(request.New());
  copy->CopyFrom(request);
  const pb::Descriptor* d = copy->GetDescriptor();
  const pb::Reflection* r = copy->GetReflection();
  int64_t payload_bytes = -1;
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (f->is_repeated() || !r->HasField(*copy, f)) continue;
    if (f->containing_oneof() != nullptr && f->containing_oneof()->name() == "payload") {
      payload_bytes = static_cast<int64_t>(r->GetString(*copy, f).size());
      r->ClearField(copy.get(), f);
      continue;
    }
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->message_type()->full_name() == pb::FieldMask::descriptor()->full_name()) continue;
    pb::Message* sub = r->MutableMessage(copy.get(), f);
    const pb::FieldDescriptor* name = sub->GetDescriptor()->FindFieldByName("name");
    std::string kept = name != nullptr && name->type() == pb::FieldDescriptor::TYPE_STRING
                           ? sub->GetReflection()->GetString(*sub, name)
                           : "";
    sub->Clear();
    if (!kept.empty()) sub->GetReflection()->SetString(sub, name, kept);
  }
  std::string json;
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!pb::util::MessageToJsonString(*copy, &json, options).ok()) json = "{}";
  if (payload_bytes >= 0) {
    json.pop_back();  // '}'
    absl::StrAppend(&json, json.size() > 1 ? "," : "", "\"payload_bytes\":", payload_bytes, "}");
  }
  return json;
}

class AuditInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuditInterceptor(grpc::experimental::ServerRpcInfo* info, const TokenTable* tokens)
      : info_(info), tokens_(tokens) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using Hook = grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(Hook::POST_RECV_INITIAL_METADATA)) {
      const auto* md = methods->GetRecvInitialMetadata();
      if (tokens_ == nullptr) {
        who_ = "\"role\":\"open\",\"token_id\":\"\"";
      } else {
        absl::StatusOr<Principal> p = tokens_->Authenticate(FindMetadata(*md, "authorization"));
        who_ = p.ok() ? absl::StrCat("\"role\":\"", RoleName(p->role), "\",\"token_id\":\"",
                                     p->token_id, "\"")
                      : "\"role\":\"none\",\"token_id\":\"\"";
      }
      const std::string peer = info_->server_context()->peer();
      std::optional<absl::string_view> via = FindMetadata(*md, kViaMetadata);
      // Only the in-process channel (the Connect handler) may say where a call came from: a
      // call from the network has an ipv4:, ipv6: or unix: peer.
      const bool network = absl::StartsWith(peer, "ipv4:") || absl::StartsWith(peer, "ipv6:") ||
                           absl::StartsWith(peer, "unix:");
      via_ = via && !network ? std::string(*via) : absl::StrCat("grpc ", peer);
    }
    if (methods->QueryInterceptionHookPoint(Hook::POST_RECV_MESSAGE)) {
      // The sync and callback handlers of our services receive generated message types, which
      // all derive from Message.
      if (void* m = methods->GetRecvMessage()) {
        request_ = DescribeRequest(*static_cast<const pb::Message*>(m));
      }
    }
    if (methods->QueryInterceptionHookPoint(Hook::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      absl::string_view method = info_->method();
      if (absl::StartsWith(method, "/")) method.remove_prefix(1);
      spdlog::info("audit {{{},\"method\":{},\"request\":{},\"result\":{},\"message\":{},"
                   "\"via\":{}}}",
                   who_, JsonQuote(method), request_.empty() ? "{}" : request_,
                   JsonQuote(GrpcCodeName(status.error_code())),
                   JsonQuote(status.error_message()), JsonQuote(via_));
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* const info_;
  const TokenTable* const tokens_;
  std::string who_ = "\"role\":\"none\",\"token_id\":\"\"";
  std::string via_;
  std::string request_;
};

class AuditInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit AuditInterceptorFactory(const TokenTable* tokens) : tokens_(tokens) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    absl::string_view method = info->method() == nullptr ? "" : info->method();
    const size_t slash = method.rfind('/');
    if (!absl::StartsWith(method, "/wsgate.") || slash == absl::string_view::npos ||
        !IsMutation(method.substr(slash + 1))) {
      return nullptr;
    }
    return new AuditInterceptor(info, tokens_);
  }

 private:
  const TokenTable* const tokens_;
};

}  // namespace

grpc::Status CheckAccess(const TokenTable* tokens, const grpc::ServerContextBase& context,
                         Access access, absl::string_view method) {
  if (tokens == nullptr) return grpc::Status::OK;
  absl::StatusOr<Principal> p =
      tokens->Authorize(FindMetadata(context.client_metadata(), "authorization"), access, method);
  if (p.ok()) return grpc::Status::OK;
  if (p.status().code() == absl::StatusCode::kPermissionDenied) {
    Denials().permission_denied.fetch_add(1, std::memory_order_relaxed);
  } else {
    Denials().unauthenticated.fetch_add(1, std::memory_order_relaxed);
  }
  return ToGrpcStatus(p.status());
}

const AuthDenials& GlobalAuthDenials() { return Denials(); }

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeAuditInterceptorFactory(
    const TokenTable* tokens) {
  return std::make_unique<AuditInterceptorFactory>(tokens);
}

}  // namespace wsgate::controlplane
