#include "dataplane/limits/admission.h"

#include <cmath>

namespace wsgate::dataplane::limits {

const char* VerdictLimitName(Admission::Verdict v) {
  switch (v) {
    case Admission::Verdict::kAdmitted:
      return "";
    case Admission::Verdict::kRouteFull:
      return "max_connections";
    case Admission::Verdict::kClientFull:
      return "max_connections_per_client";
    case Admission::Verdict::kAddressFull:
      return "max_connections_per_address";
    case Admission::Verdict::kHandshakeRate:
      return "handshakes_per_second";
  }
  return "";
}

Admission::Ticket::~Ticket() {
  if (owner_) owner_->Release(*this);
}

Admission::Result Admission::Admit(const std::string& route, const AdmissionLimits& limits,
                                   const std::string& client_id, const std::string& address,
                                   TokenBucket::Clock::time_point now) {
  Result r;
  auto refuse = [&](Verdict v, int status, int retry_after) {
    r.verdict = v;
    r.http_status = status;
    r.retry_after_seconds = retry_after;
    r.limit = VerdictLimitName(v);
    return std::move(r);
  };
  std::lock_guard<std::mutex> lock(mu_);
  RouteState& st = routes_[route];
  if (limits.max_connections > 0 && st.total >= limits.max_connections) {
    return refuse(Verdict::kRouteFull, 503, kCapRetryAfterSeconds);
  }
  if (limits.max_connections_per_client > 0 && !client_id.empty()) {
    auto it = st.per_client.find(client_id);
    if (it != st.per_client.end() && it->second >= limits.max_connections_per_client) {
      return refuse(Verdict::kClientFull, 429, kCapRetryAfterSeconds);
    }
  }
  if (limits.max_connections_per_address > 0 && !address.empty()) {
    auto it = st.per_address.find(address);
    if (it != st.per_address.end() && it->second >= limits.max_connections_per_address) {
      return refuse(Verdict::kAddressFull, 429, kCapRetryAfterSeconds);
    }
  }
  // The route's rate may have changed since the last handshake: reconfiguring keeps the tokens.
  if (st.handshakes.rate() != limits.handshakes_per_second) {
    st.handshakes.Configure(limits.handshakes_per_second, 0, now);
  }
  if (!st.handshakes.TryTake(now)) {
    const double wait = st.handshakes.SecondsUntilToken(now);
    return refuse(Verdict::kHandshakeRate, 429, std::max(1, static_cast<int>(std::ceil(wait))));
  }
  ++st.total;
  // Places are counted per client and per address even on routes without those caps, so a cap
  // set later over UpdateLimits sees the connections already open.
  if (!client_id.empty()) ++st.per_client[client_id];
  if (!address.empty()) ++st.per_address[address];
  r.ticket.reset(new Ticket(shared_from_this(), route, client_id, address));
  return r;
}

void Admission::Release(const Ticket& t) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = routes_.find(t.route_);
  if (it == routes_.end()) return;
  RouteState& st = it->second;
  --st.total;
  auto drop = [](std::map<std::string, uint32_t>& m, const std::string& key) {
    if (key.empty()) return;
    auto e = m.find(key);
    if (e != m.end() && --e->second == 0) m.erase(e);
  };
  drop(st.per_client, t.client_);
  drop(st.per_address, t.address_);
}

int64_t Admission::Connections(const std::string& route) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = routes_.find(route);
  return it == routes_.end() ? 0 : it->second.total;
}

}  // namespace wsgate::dataplane::limits
