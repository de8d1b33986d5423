// Admission control of WebSocket handshakes, shared by every worker of a data plane: the
// per-route caps on connections (in total, per client id, per remote address) and the per-route
// handshake rate. Called once per handshake (Admit) and once per admitted connection's end
// (Ticket destruction), never per message.
//
// Threading: thread-safe. One mutex guards all counters and buckets; it is held for a few map
// lookups per handshake and per disconnect. A worker never blocks on anything else while holding
// it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "dataplane/limits/token_bucket.h"

namespace wsgate::dataplane::limits {

// The caps of one route, as its effective limits say (0 = no cap / unlimited).
struct AdmissionLimits {
  uint32_t max_connections = 0;
  uint32_t max_connections_per_client = 0;
  uint32_t max_connections_per_address = 0;
  double handshakes_per_second = 0;
};

class Admission : public std::enable_shared_from_this<Admission> {
 public:
  // Holds one admitted connection's place in the counters; destroying it releases the place.
  // Owned by the connection's worker; may be destroyed on any thread.
  class Ticket {
   public:
    ~Ticket();
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;

   private:
    friend class Admission;
    Ticket(std::shared_ptr<Admission> owner, std::string route, std::string client,
           std::string address)
        : owner_(std::move(owner)),
          route_(std::move(route)),
          client_(std::move(client)),
          address_(std::move(address)) {}
    std::shared_ptr<Admission> owner_;
    std::string route_;
    std::string client_;   // empty: not counted per client
    std::string address_;  // empty: not counted per address
  };

  enum class Verdict {
    kAdmitted,
    kRouteFull,      // max_connections: 503
    kClientFull,     // max_connections_per_client: 429
    kAddressFull,    // max_connections_per_address: 429
    kHandshakeRate,  // handshakes_per_second: 429
  };

  struct Result {
    Verdict verdict = Verdict::kAdmitted;
    std::unique_ptr<Ticket> ticket;  // set when admitted
    int http_status = 0;             // 503 or 429 when refused
    int retry_after_seconds = 0;     // the Retry-After header when refused
    const char* limit = "";          // the Limits field that refused ("max_connections", ...)
  };

  // Seconds a client refused by a connection cap is told to wait: a place frees when some
  // connection closes, which nothing predicts.
  static constexpr int kCapRetryAfterSeconds = 5;

  // `client_id` empty: the per-client cap does not apply. `address` empty: nor the per-address
  // cap. The handshake-rate token is taken only when every cap admits the connection.
  Result Admit(const std::string& route, const AdmissionLimits& limits,
               const std::string& client_id, const std::string& address,
               TokenBucket::Clock::time_point now = TokenBucket::Clock::now());

  // Open admitted connections of a route (tests, inventory).
  int64_t Connections(const std::string& route) const;

 private:
  void Release(const Ticket& t);

  struct RouteState {
    int64_t total = 0;
    std::map<std::string, uint32_t> per_client;
    std::map<std::string, uint32_t> per_address;
    TokenBucket handshakes;
  };

  mutable std::mutex mu_;
  std::map<std::string, RouteState> routes_;
};

const char* VerdictLimitName(Admission::Verdict v);

}  // namespace wsgate::dataplane::limits
