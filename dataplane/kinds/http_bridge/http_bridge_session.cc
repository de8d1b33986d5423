#include "dataplane/kinds/http_bridge/http_bridge_session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <variant>

#include "dataplane/outbound/http_client.h"
#include "dataplane/protocol/http_bridge_codec.h"

namespace wsgate::dataplane::transport {

namespace {

using protocol::BridgeErrorCode;

int OutcomeOf(BridgeErrorCode code) { return 1 + static_cast<int>(code); }
constexpr int kOutcomeOk = 0;

}  // namespace

HttpBridgeSession::HttpBridgeSession(OutboundKinds& kinds, std::shared_ptr<const RouteConfig> route,
                                     std::unique_ptr<ClientLink> link,
                                     RouteWorkerCounters* counters)
    : kinds_(kinds), route_(std::move(route)), link_(std::move(link)), counters_(counters) {}

HttpBridgeSession::~HttpBridgeSession() { OnTerminated(); }

void HttpBridgeSession::OnTerminated() {
  if (terminated_) return;
  terminated_ = true;
  // Nobody is left to read the answers: abort the requests (their callbacks are not called).
  for (const auto& [local_id, f] : in_flight_) kinds_.http().Cancel(f.client_request_id);
  in_flight_.clear();
}

void HttpBridgeSession::Answer(const std::string& text) {
  if (kinds_.debug_events()) spdlog::info("http_bridge {}: answer {}", route_->name, text);
  link_->SendText(text);
}

void HttpBridgeSession::CountRequest(int method, int outcome,
                                     std::chrono::steady_clock::time_point started) {
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
  counters_->ObserveBridgeRequest(method, outcome, took.count());
}

void HttpBridgeSession::OnMessage(const MessagePtr& msg) {
  if (terminated_) return;
  const auto started = std::chrono::steady_clock::now();
  if (kinds_.debug_events()) {
    spdlog::info("http_bridge {}: message of {} bytes", route_->name, msg->get_payload().size());
  }
  if (msg->get_opcode() != websocketpp::frame::opcode::text) {
    CountRequest(kBridgeMethodOther, OutcomeOf(BridgeErrorCode::kInvalidFormat), started);
    Answer(protocol::BuildBridgeError(BridgeErrorCode::kInvalidFormat,
                                      "Invalid message format: expected a JSON text message",
                                      std::nullopt));
    return;
  }
  auto parsed = protocol::ParseBridgeRequest(msg->get_payload());
  if (auto* error = std::get_if<protocol::BridgeError>(&parsed)) {
    CountRequest(kBridgeMethodOther, OutcomeOf(error->code), started);
    Answer(protocol::BuildBridgeError(*error));
    return;
  }
  protocol::BridgeRequest& request = std::get<protocol::BridgeRequest>(parsed);
  const int method = static_cast<int>(request.method);
  const HttpBridgeSettings& settings = route_->http_bridge;
  if (in_flight_.size() >= settings.max_in_flight) {
    CountRequest(method, OutcomeOf(BridgeErrorCode::kTooManyInFlight), started);
    Answer(protocol::BuildBridgeError(BridgeErrorCode::kTooManyInFlight,
                                      "Too many requests in flight on this connection (at most " +
                                          std::to_string(settings.max_in_flight) +
                                          "); wait for an answer",
                                      request.id_json));
    return;
  }

  outbound::OutboundRequest out;
  out.method = request.method;
  out.url = std::move(request.url);
  out.headers = std::move(request.headers);
  out.body = std::move(request.body);
  out.has_body = request.has_body;
  out.timeout = settings.request_timeout;
  if (request.timeout_ms) {
    out.timeout = std::min(out.timeout, std::chrono::milliseconds(*request.timeout_ms));
  }

  const uint64_t local_id = next_local_id_++;
  std::weak_ptr<HttpBridgeSession> weak = weak_from_this();
  const bool head_request = request.method == protocol::HttpMethod::kHead;
  auto done = [weak, local_id, method, head_request,
               id_json = std::move(request.id_json)](outbound::OutboundResult result) {
    auto self = weak.lock();
    if (!self || self->terminated_) return;
    auto it = self->in_flight_.find(local_id);
    if (it == self->in_flight_.end()) return;
    const auto req_started = it->second.started;
    self->in_flight_.erase(it);
    if (auto* response = std::get_if<outbound::OutboundResponse>(&result)) {
      self->CountRequest(method, kOutcomeOk, req_started);
      protocol::BridgeHttpResponse answer;
      answer.status_code = response->status_code;
      answer.headers = std::move(response->headers);
      answer.body = std::move(response->body);
      answer.head_request = head_request;
      self->Answer(protocol::BuildBridgeResponse(answer, id_json));
      return;
    }
    const auto& error = std::get<outbound::OutboundError>(result);
    const BridgeErrorCode code = outbound::ToBridgeErrorCode(error.code);
    self->CountRequest(method, OutcomeOf(code), req_started);
    if (error.refusal) {
      self->counters_->targets_refused[static_cast<int>(*error.refusal)].Add();
    }
    self->Answer(protocol::BuildBridgeError(code, error.message, id_json));
  };
  InFlight& f = in_flight_[local_id];
  f.method = method;
  f.started = started;
  f.client_request_id = kinds_.http().Send(route_->outbound, std::move(out), std::move(done));
}

}  // namespace wsgate::dataplane::transport
