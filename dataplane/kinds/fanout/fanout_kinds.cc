#include "dataplane/kinds/fanout/fanout_kinds.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "dataplane/kinds/fanout/fanout_session.h"
#include "dataplane/kinds/pubsub/pubsub_session.h"
#include "dataplane/kinds/room/room_http.h"
#include "dataplane/kinds/room/room_session.h"

namespace wsgate::dataplane::transport {

namespace {

void RandomBytes(unsigned char* out, int n) {
  if (RAND_bytes(out, n) != 1) {
    // Same reasoning as SecureRandom32: predictable ids would be a silent security bug.
    spdlog::critical("OpenSSL RAND_bytes failed");
    std::abort();
  }
}

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

}  // namespace

std::string ExpandTemplate(std::string_view tmpl,
                           const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl[i] == '{') {
      size_t close = tmpl.find('}', i);
      if (close != std::string_view::npos) {
        out.append(ParamValue(params, std::string(tmpl.substr(i + 1, close - i - 1))));
        i = close + 1;
        continue;
      }
    }
    out.push_back(tmpl[i++]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// FanoutEvents

void FanoutEvents::CountBackpressureClose(const std::string& route) {
  std::lock_guard<std::mutex> lock(mu_);
  ++backpressure_closes_[route];
}

void FanoutEvents::CountAuthFailure(const std::string& route, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++auth_failures_[{route, reason}];
}

std::map<std::string, uint64_t> FanoutEvents::BackpressureCloses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return backpressure_closes_;
}

std::map<std::pair<std::string, std::string>, uint64_t> FanoutEvents::AuthFailures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return auth_failures_;
}

// ---------------------------------------------------------------------------------------------
// FanoutKinds

FanoutKinds::FanoutKinds(int worker_index, bus::MessageBus* bus,
                         std::shared_ptr<RoomRegistry> rooms, std::shared_ptr<FanoutEvents> events,
                         std::chrono::milliseconds ping_interval,
                         std::chrono::milliseconds ping_timeout)
    : worker_index_(worker_index),
      bus_(bus),
      rooms_(rooms ? std::move(rooms) : std::make_shared<RoomRegistry>()),
      events_(events ? std::move(events) : std::make_shared<FanoutEvents>()),
      ping_interval_(ping_interval),
      ping_timeout_(ping_timeout) {
  unsigned char r[8];
  RandomBytes(r, sizeof(r));
  token_prefix_ = absl::StrCat(Hex(r, sizeof(r)), ".", worker_index_, ".");
}

FanoutKinds::~FanoutKinds() = default;

std::string FanoutKinds::NextMemberToken() { return absl::StrCat(token_prefix_, next_token_++); }

std::string FanoutKinds::NewUuid() {
  unsigned char b[16];
  RandomBytes(b, sizeof(b));
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string h = Hex(b, sizeof(b));
  return absl::StrCat(h.substr(0, 8), "-", h.substr(8, 4), "-", h.substr(12, 4), "-",
                      h.substr(16, 4), "-", h.substr(20));
}

bool FanoutKinds::bus_down() const { return bus_ != nullptr && !bus_->up(); }

void FanoutKinds::Prepare(std::shared_ptr<const RouteConfig> route,
                          const std::vector<std::pair<std::string, std::string>>& params,
                          const RequestHead& head, ServerConnectionPtr client,
                          RouteWorkerCounters* counters, std::function<void(PrepareResult)> done,
                          std::shared_ptr<sessions::SessionTraffic> traffic) {
  if (route->kind == RouteKind::kRoom) {
    PrepareRoom(*this, std::move(route), params, std::move(client), counters, std::move(done),
                std::move(traffic));
    return;
  }
  if (route->kind == RouteKind::kPubSub) {
    PreparePubSub(*this, std::move(route), params, head, std::move(client), counters,
                  std::move(done), std::move(traffic));
    return;
  }
  done({nullptr, 501, "not a fan-out route kind\n"});
}

bool FanoutKinds::HandleHttp(const ServerConnectionPtr& con, std::string_view path, bool root_free,
                             const SnapshotPtr& snapshot) {
  return HandleRoomHttp(*this, con, path, root_free, snapshot);
}

}  // namespace wsgate::dataplane::transport
