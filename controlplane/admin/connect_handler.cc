#include "controlplane/admin/connect_handler.h"

#include "common/text/json_quote.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/client_callback.h>
#include <grpcpp/support/slice.h>

#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "controlplane/admin/connect_body.h"
#include "controlplane/grpc/access.h"
#include "prometheus/metric_family.h"

namespace wsgate::controlplane {
namespace {

namespace pb = google::protobuf;

constexpr int kOk = 0;
constexpr int kInvalidArgument = 3;
constexpr int kDeadlineExceeded = 4;
constexpr int kResourceExhausted = 8;
constexpr int kUnimplemented = 12;
constexpr int kUnavailable = 14;
constexpr int kUnauthenticated = 16;

// Protocol-level refusals, before any call is made (wsgate_connect_rejected_total{reason}).
enum Reject {
  kMethodNotAllowed,
  kUnknownMethod,
  kContentType,
  kEncoding,
  kBodyTooLarge,
  kBadBody,
  kBadHeader,
  kRejectCount
};
constexpr const char* kRejectNames[] = {"method_not_allowed", "unknown_method", "content_type",
                                        "encoding",           "body_too_large", "bad_body",
                                        "bad_header"};

using text::JsonQuote;

std::string ErrorJson(int code, absl::string_view message) {
  return absl::StrCat("{\"code\":", JsonQuote(ConnectCodeName(code)),
                      ",\"message\":", JsonQuote(message), "}");
}

std::string ToBytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

grpc::ByteBuffer FromBytes(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Envelope(uint8_t flags, const std::string& payload) {
  std::string out(5, '\0');
  out[0] = static_cast<char>(flags);
  const auto n = static_cast<uint32_t>(payload.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + payload;
}

std::optional<absl::string_view> Header(const AdminRequest& r, const char* name) {
  auto it = r.headers.find(name);
  if (it == r.headers.end()) return std::nullopt;
  return absl::string_view(it->second);
}

bool PrintableAscii(absl::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return false;
    }
  }
  return true;
}

// Protobuf binary or proto3 JSON (lowerCamelCase names, as every Connect client expects) of the
// answer; the prototypes come from the generated pool, so no type is named here.
absl::StatusOr<std::string> EncodeResponse(const pb::Descriptor* type, const std::string& bytes,
                                           bool json) {
  if (!json) return bytes;
  std::unique_ptr<pb::Message> m(
      pb::MessageFactory::generated_factory()->GetPrototype(type)->New());
  if (!m->ParseFromString(bytes)) {
    return absl::InternalError(absl::StrCat("the service's answer is not a ", type->full_name()));
  }
  std::string out;
  if (auto s = pb::util::MessageToJsonString(*m, &out); !s.ok()) {
    return absl::InternalError(absl::StrCat("answer to JSON: ", std::string(s.message())));
  }
  return out;
}

class ConnectCollector final : public prometheus::Collectable {
 public:
  ConnectCollector(const std::array<std::atomic<uint64_t>, 17>* by_code,
                   const std::array<std::atomic<uint64_t>, kRejectCount>* rejects)
      : by_code_(by_code), rejects_(rejects) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out(3);
    out[0].name = "wsgate_connect_requests_total";
    out[0].help = "Connect requests on the admin port, by outcome (ok or the Connect code).";
    out[0].type = prometheus::MetricType::Counter;
    for (int code = 0; code < 17; ++code) {
      out[0].metric.emplace_back();
      out[0].metric.back().label = {
          {"code", code == kOk ? "ok" : std::string(ConnectCodeName(code))}};
      out[0].metric.back().counter.value =
          static_cast<double>((*by_code_)[code].load(std::memory_order_relaxed));
    }
    out[1].name = "wsgate_connect_rejected_total";
    out[1].help = "Connect requests refused before any call: bad method, path, content type, "
                  "encoding, body or header.";
    out[1].type = prometheus::MetricType::Counter;
    for (int r = 0; r < kRejectCount; ++r) {
      out[1].metric.emplace_back();
      out[1].metric.back().label = {{"reason", kRejectNames[r]}};
      out[1].metric.back().counter.value =
          static_cast<double>((*rejects_)[r].load(std::memory_order_relaxed));
    }
    const AuthDenials& denials = GlobalAuthDenials();
    out[2].name = "wsgate_control_auth_denied_total";
    out[2].help = "Control-plane calls (gRPC and Connect) refused for their token.";
    out[2].type = prometheus::MetricType::Counter;
    out[2].metric.resize(2);
    out[2].metric[0].label = {{"code", "unauthenticated"}};
    out[2].metric[0].counter.value = static_cast<double>(denials.unauthenticated.load());
    out[2].metric[1].label = {{"code", "permission_denied"}};
    out[2].metric[1].counter.value = static_cast<double>(denials.permission_denied.load());
    return out;
  }

 private:
  const std::array<std::atomic<uint64_t>, 17>* const by_code_;
  const std::array<std::atomic<uint64_t>, kRejectCount>* const rejects_;
};

std::array<std::atomic<uint64_t>, kRejectCount>& Rejects() {
  static auto* r = new std::array<std::atomic<uint64_t>, kRejectCount>{};
  return *r;
}

}  // namespace

absl::string_view ConnectCodeName(int code) {
  static constexpr absl::string_view kNames[] = {
      "ok",        "canceled",           "unknown",        "invalid_argument",
      "deadline_exceeded", "not_found",  "already_exists", "permission_denied",
      "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
      "unimplemented", "internal",       "unavailable",    "data_loss",
      "unauthenticated"};
  return code >= 0 && code <= 16 ? kNames[code] : "unknown";
}

int ConnectHttpStatus(int code) {
  static constexpr int kStatus[] = {200, 499, 500, 400, 504, 404, 409, 403, 429,
                                    400, 409, 400, 501, 500, 503, 500, 401};
  return code >= 0 && code <= 16 ? kStatus[code] : 500;
}

// One call in flight. Owned by shared_ptrs: the completion callbacks', the reply's; and, once
// finished, the handler's list of finished calls, emptied on the admin thread, so that the
// ClientContext is never destroyed inside one of its own callbacks.
class ConnectHandler::Call : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                             public std::enable_shared_from_this<ConnectHandler::Call> {
 public:
  Call(ConnectHandler* handler, std::shared_ptr<AdminReply> reply, const pb::MethodDescriptor* m,
       bool json, bool streaming)
      : handler_(handler), reply_(std::move(reply)), method_(m), json_(json),
        streaming_(streaming) {}

  grpc::ClientContext* context() { return &context_; }

  void StartUnary(grpc::GenericStub* stub, const std::string& path, const std::string& request) {
    request_ = FromBytes(request);
    stub->UnaryCall(&context_, path, grpc::StubOptions(), &request_, &response_,
                    [self = shared_from_this()](const grpc::Status& s) { self->OnUnaryDone(s); });
  }

  void StartStream(grpc::GenericStub* stub, const std::string& path, const std::string& request) {
    request_ = FromBytes(request);
    self_ = shared_from_this();  // released in OnDone
    reply_->OnClientGone([self = shared_from_this()] { self->context_.TryCancel(); });
    stub->PrepareBidiStreamingCall(&context_, path, grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&response_);
    StartCall();
  }

  // The service sends its initial metadata once the stream is set up (a watch is subscribed
  // before it), so the HTTP head goes out only then: a client that has the 200 has a stream
  // that sees every later event.
  void OnReadInitialMetadataDone(bool /*ok*/) override { SendHeadOnce(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    SendHeadOnce();
    absl::StatusOr<std::string> out =
        EncodeResponse(method_->output_type(), ToBytes(response_), json_);
    if (!out.ok()) {
      context_.TryCancel();
      return;
    }
    // The next message is read only once this one is on the socket: a client that reads slowly
    // holds back gRPC's flow control, and the service's bounded buffer drops for it.
    reply_->Write(Envelope(0, *out), [self = shared_from_this()](bool written) {
      if (!written) {
        self->context_.TryCancel();
        return;
      }
      std::lock_guard<std::mutex> lock(self->mu_);
      if (!self->done_) self->StartRead(&self->response_);
    });
  }

  void OnDone(const grpc::Status& status) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    SendHeadOnce();  // a call refused before any metadata still answers 200 + end-of-stream
    const int code = static_cast<int>(status.error_code());
    std::string end = status.ok() ? "{}"
                                  : absl::StrCat("{\"error\":",
                                                 ErrorJson(code, status.error_message()), "}");
    reply_->Write(Envelope(0x02, end), nullptr);
    reply_->End();
    std::shared_ptr<Call> keep = std::move(self_);
    handler_->Done(&context_, code, std::move(keep));
  }

 private:
  friend class ConnectHandler;

  // Posts the stream's HTTP head before anything else of this call is posted (the reply keeps
  // the order of posts made under one lock).
  void SendHeadOnce() {
    std::lock_guard<std::mutex> lock(head_mu_);
    if (head_sent_) return;
    head_sent_ = true;
    reply_->StartStream(200, json_ ? "application/connect+json" : "application/connect+proto");
  }

  void OnUnaryDone(const grpc::Status& status) {
    const int code = static_cast<int>(status.error_code());
    if (!status.ok()) {
      reply_->Send(AdminResponse{ConnectHttpStatus(code), "application/json",
                                 ErrorJson(code, status.error_message()), {}});
    } else {
      absl::StatusOr<std::string> out =
          EncodeResponse(method_->output_type(), ToBytes(response_), json_);
      if (out.ok()) {
        reply_->Send(AdminResponse{
            200, json_ ? "application/json" : "application/proto", *std::move(out), {}});
      } else {
        reply_->Send(AdminResponse{500, "application/json",
                                   ErrorJson(13, out.status().message()), {}});
      }
    }
    handler_->Done(&context_, code, shared_from_this());
  }

  ConnectHandler* const handler_;
  const std::shared_ptr<AdminReply> reply_;
  const pb::MethodDescriptor* const method_;
  const bool json_;
  const bool streaming_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  std::mutex mu_;
  bool done_ = false;  // guarded by mu_
  std::mutex head_mu_;
  bool head_sent_ = false;  // guarded by head_mu_
  std::shared_ptr<Call> self_;
};

ConnectHandler::ConnectHandler(const TokenTable* tokens)
    : tokens_(tokens),
      collector_(std::make_unique<ConnectCollector>(&by_code_, &Rejects())) {}

ConnectHandler::~ConnectHandler() { Shutdown(std::chrono::milliseconds(2000)); }

void ConnectHandler::Attach(std::shared_ptr<grpc::Channel> channel) {
  std::lock_guard<std::mutex> lock(mu_);
  channel_ = std::move(channel);
}

void ConnectHandler::Register(AdminRoutes& routes) {
  // Who the caller's token says it is, so the UI can disable what a viewer may not do.
  routes.AddRequestHandler("/api/whoami", [this](const AdminRequest& r) {
    if (tokens_ == nullptr) {
      return AdminResponse{200, "application/json",
                           "{\"role\":\"admin\",\"tokenId\":\"\",\"auth\":false}", {}};
    }
    absl::StatusOr<Principal> p = tokens_->Authenticate(Header(r, "authorization"));
    if (!p.ok()) {
      return AdminResponse{401, "application/json",
                           ErrorJson(kUnauthenticated, p.status().message()),
                           {{"WWW-Authenticate", "Bearer"}}};
    }
    return AdminResponse{200, "application/json",
                         absl::StrCat("{\"role\":\"", RoleName(p->role), "\",\"tokenId\":\"",
                                      p->token_id, "\",\"auth\":true}"),
                         {}};
  });
  routes.SetRpcHandler(
      [this](AdminRequest r, std::shared_ptr<AdminReply> reply) {
        Handle(std::move(r), std::move(reply));
      },
      kMaxBody);
}

bool ConnectHandler::Begin(grpc::ClientContext* context) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_ || channel_ == nullptr) return false;
  in_flight_.insert(context);
  return true;
}

void ConnectHandler::Done(grpc::ClientContext* context, int code, std::shared_ptr<Call> call) {
  Count(code);
  // One step under one lock: leaving in_flight_ and entering finished_ must not be seen apart.
  // Shutdown waits for in_flight_ to empty and then takes finished_; were the call retired after
  // that, it would live on in finished_ until ~ConnectHandler, after the admin loop (whose
  // strand its socket uses) is gone: a use after free, seen under ASan at SIGTERM.
  std::lock_guard<std::mutex> lock(mu_);
  finished_.push_back(std::move(call));
  in_flight_.erase(context);
  if (in_flight_.empty()) idle_.notify_all();
}

void ConnectHandler::Count(int code) {
  if (code >= 0 && code < 17) by_code_[code].fetch_add(1, std::memory_order_relaxed);
}

void ConnectHandler::Shutdown(std::chrono::milliseconds timeout) {
  std::vector<std::shared_ptr<Call>> finished;
  {
    std::unique_lock<std::mutex> lock(mu_);
    shut_down_ = true;
    for (grpc::ClientContext* c : in_flight_) c->TryCancel();
    idle_.wait_for(lock, timeout, [this] { return in_flight_.empty(); });
    finished.swap(finished_);
    channel_.reset();
  }
}

void ConnectHandler::Handle(AdminRequest request, std::shared_ptr<AdminReply> reply) {
  {
    // Calls that finished since the last request are destroyed here, on the admin thread.
    std::vector<std::shared_ptr<Call>> finished;
    std::lock_guard<std::mutex> lock(mu_);
    finished.swap(finished_);
  }
  // Set once the content type says this is a streaming call: from then on every error is an
  // end-of-stream message in a 200 answer, as the protocol wants.
  std::optional<bool> stream_json;
  auto refuse = [&](Reject why, int code, const std::string& message, int http_status = 0,
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
    if (why != kRejectCount) Rejects()[why].fetch_add(1, std::memory_order_relaxed);
    Count(code);
    if (stream_json) {
      reply->StartStream(200, *stream_json ? "application/connect+json"
                                           : "application/connect+proto");
      reply->Write(Envelope(0x02, absl::StrCat("{\"error\":", ErrorJson(code, message), "}")),
                   nullptr);
      reply->End();
      return;
    }
    reply->Send(AdminResponse{http_status != 0 ? http_status : ConnectHttpStatus(code),
                              "application/json", ErrorJson(code, message), std::move(headers)});
  };

  if (request.method != "POST") {
    refuse(kMethodNotAllowed, kUnimplemented,
           absl::StrCat(request.method, " ", request.path, ": Connect calls are POST"), 405,
           {{"Allow", "POST"}});
    return;
  }
  // "/wsgate.v1.RouteService/ListRoutes" -> service and method names.
  const size_t slash = request.path.find('/', 1);
  const std::string service = request.path.substr(1, slash - 1);
  const std::string method_name = request.path.substr(slash + 1);
  const pb::MethodDescriptor* method =
      absl::StartsWith(service, "wsgate.")
          ? pb::DescriptorPool::generated_pool()->FindMethodByName(service + "." + method_name)
          : nullptr;
  if (method == nullptr || method->client_streaming()) {
    refuse(kUnknownMethod, kUnimplemented,
           absl::StrCat("no method ", service, "/", method_name,
                        " (the services are wsgate.v1.RouteService, LimitService, "
                        "SessionService, InventoryService)"),
           404);
    return;
  }

  std::string content_type = absl::AsciiStrToLower(Header(request, "content-type").value_or(""));
  content_type =
      std::string(absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';'))));
  const bool streaming = absl::StartsWith(content_type, "application/connect+");
  const bool json =
      content_type == "application/json" || content_type == "application/connect+json";
  const bool known = json || content_type == "application/proto" ||
                     content_type == "application/connect+proto";
  if (!known) {
    refuse(kContentType, kInvalidArgument,
           absl::StrCat("content-type '", content_type,
                        "': want application/json or application/proto (unary), "
                        "application/connect+json or application/connect+proto (streaming)"),
           415);
    return;
  }
  if (streaming != method->server_streaming()) {
    refuse(kContentType, kInvalidArgument,
           absl::StrCat(service, "/", method_name, " is ",
                        method->server_streaming() ? "server-streaming: use application/connect+"
                                                   : "unary: use application/",
                        json ? "json" : "proto"),
           415);
    return;
  }
  if (streaming) stream_json = json;
  if (request.body_too_large) {
    refuse(kBodyTooLarge, kResourceExhausted,
           absl::StrCat("request body: over the ", kMaxBody, "-byte limit"));
    return;
  }
  const absl::string_view encoding =
      Header(request, streaming ? "connect-content-encoding" : "content-encoding")
          .value_or("identity");
  if (encoding != "identity") {
    refuse(kEncoding, kUnimplemented,
           absl::StrCat("content encoding '", encoding, "': only identity is supported"));
    return;
  }
  if (auto v = Header(request, "connect-protocol-version"); v && *v != "1") {
    refuse(kBadHeader, kInvalidArgument,
           absl::StrCat("connect-protocol-version '", *v, "': want 1"));
    return;
  }
  std::optional<std::chrono::milliseconds> timeout;
  if (auto t = Header(request, "connect-timeout-ms")) {
    int64_t ms = 0;
    if (t->empty() || t->size() > 10 || !absl::SimpleAtoi(*t, &ms) || ms < 0) {
      refuse(kBadHeader, kInvalidArgument,
             absl::StrCat("connect-timeout-ms '", *t, "': want up to 10 digits"));
      return;
    }
    if (ms == 0) {
      // A deadline of 0 ms has already passed: nothing is started.
      refuse(kRejectCount, kDeadlineExceeded, "connect-timeout-ms 0: the deadline has passed");
      return;
    }
    timeout = std::chrono::milliseconds(ms);
  }
  const std::optional<absl::string_view> authorization = Header(request, "authorization");
  if (authorization && !PrintableAscii(*authorization)) {
    refuse(kBadHeader, kUnauthenticated, "authorization: not printable ASCII");
    return;
  }
  if (tokens_ != nullptr) {
    // Refused before the body is even decoded; the role is the service's to check.
    if (absl::StatusOr<Principal> p = tokens_->Authenticate(authorization); !p.ok()) {
      refuse(kRejectCount, kUnauthenticated, std::string(p.status().message()), 0,
             {{"WWW-Authenticate", "Bearer"}});
      return;
    }
  }

  // The request body: one enveloped message when streaming, the bare message when unary.
  absl::StatusOr<std::unique_ptr<pb::Message>> decoded =
      DecodeConnectBody(*method, json, streaming, std::move(request.body));
  if (!decoded.ok()) {
    refuse(kBadBody, kInvalidArgument, std::string(decoded.status().message()));
    return;
  }
  std::unique_ptr<pb::Message> message = *std::move(decoded);

  auto call = std::make_shared<Call>(this, reply, method, json, streaming);
  grpc::ClientContext* ctx = call->context();
  if (authorization) ctx->AddMetadata("authorization", std::string(*authorization));
  ctx->AddMetadata(kViaMetadata, absl::StrCat("connect ", request.remote_address));
  if (timeout) ctx->set_deadline(std::chrono::system_clock::now() + *timeout);
  std::shared_ptr<grpc::Channel> channel;
  {
    std::lock_guard<std::mutex> lock(mu_);
    channel = channel_;
  }
  if (channel == nullptr || !Begin(ctx)) {
    refuse(kRejectCount, kUnavailable, "the control plane is not serving");
    return;
  }
  grpc::GenericStub stub(channel);
  const std::string path = absl::StrCat("/", service, "/", method_name);
  if (streaming) {
    call->StartStream(&stub, path, message->SerializeAsString());
  } else {
    call->StartUnary(&stub, path, message->SerializeAsString());
  }
}

}  // namespace wsgate::controlplane
