#include "dataplane/bus/redis_bus.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <random>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dataplane/bus/asio_hiredis.h"
#include "dataplane/bus/bus_core.h"
#include "common/text/utf8.h"

namespace wsgate::dataplane::bus {
namespace {

std::string_view ReplyString(const redisReply* r) {
  return r->str == nullptr ? std::string_view() : std::string_view(r->str, r->len);
}
// Debian's Abseil has its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0).
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Threading: Publish / GetAndDelete / up / stats from any thread, Subscribe / Unsubscribe on
// the owning worker (BusCore); everything that touches hiredis runs on the bus (hub) thread.
class RedisBus final : public BusCore {
 public:
  RedisBus(RedisBusOptions options, std::vector<boost::asio::any_io_executor> workers)
      : BusCore(std::move(workers)),
        options_(std::move(options)),
        retry_timer_(hub_ioc_),
        connect_timer_(hub_ioc_),
        health_timer_(hub_ioc_),
        rng_(std::random_device{}()) {
    // A private channel that the subscriber connection stays subscribed to for its whole life.
    // It keeps hiredis in subscribed mode whatever our own channels do (hiredis 0.14 asserts if
    // the subscription count drops to 0 while a SUBSCRIBE is still in flight), and its ack tells
    // us the connection is ready.
    sentinel_ =
        absl::StrCat("__wsgate:bus:keepalive:", std::to_string(rng_()), std::to_string(rng_()));
    delay_ = options_.reconnect_initial;
    boost::asio::post(hub_ioc_, [this] { Connect(); });
    StartHubThread();
  }
  ~RedisBus() override { Stop(); }

  const char* kind() const override { return "redis"; }

  absl::Status Publish(std::string channel, std::string payload, bool is_binary) override {
    // Redis carries bytes only: the text/binary flag does not cross it (see BusMessage).
    (void)is_binary;
    if (stopped()) {
      publish_failures_.fetch_add(1, std::memory_order_relaxed);
      return absl::FailedPreconditionError("message bus stopped");
    }
    if (!up()) {
      publish_failures_.fetch_add(1, std::memory_order_relaxed);
      return absl::UnavailableError("Redis is unreachable");
    }
    boost::asio::post(hub_ioc_, [this, channel = std::move(channel), payload = std::move(payload)] {
      if (state_ != State::kReady || pub_ == nullptr) {
        publish_failures_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      const char* argv[3] = {"PUBLISH", channel.data(), payload.data()};
      size_t lens[3] = {7, channel.size(), payload.size()};
      if (redisAsyncCommandArgv(pub_, nullptr, nullptr, 3, argv, lens) != REDIS_OK) {
        publish_failures_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      published_.Add();
    });
    return absl::OkStatus();
  }

  void GetAndDelete(int worker, std::string key, GetAndDeleteCallback done) override {
    if (stopped() || !up()) {
      absl::Status status = stopped() ? absl::FailedPreconditionError("message bus stopped")
                                      : absl::UnavailableError("Redis is unreachable");
      PostToWorker(worker, [done = std::move(done), status] { done(status); });
      return;
    }
    boost::asio::post(
        hub_ioc_, [this, worker, key = std::move(key), done = std::move(done)]() mutable {
          auto* request = new GetDelRequest{this, worker, std::move(done)};
          const char* argv[2] = {"GETDEL", key.data()};
          size_t lens[2] = {6, key.size()};
          if (state_ != State::kReady || pub_ == nullptr ||
              redisAsyncCommandArgv(pub_, &RedisBus::OnGetDelReply, request, 2, argv, lens) !=
                  REDIS_OK) {
            // Not queued: hiredis will never call back, so answer here.
            std::unique_ptr<GetDelRequest> owned(request);
            PostToWorker(owned->worker, [done = std::move(owned->done)] {
              done(absl::UnavailableError("Redis is unreachable"));
            });
          }
        });
  }

  void Lease(int worker, std::string key, std::string value, std::chrono::milliseconds ttl,
             LeaseCallback done) override {
    if (stopped() || !up()) {
      absl::Status status = stopped() ? absl::FailedPreconditionError("message bus stopped")
                                      : absl::UnavailableError("Redis is unreachable");
      PostToWorker(worker, [done = std::move(done), status] { done(status); });
      return;
    }
    boost::asio::post(hub_ioc_, [this, worker, key = std::move(key), value = std::move(value),
                                 ttl, done = std::move(done)]() mutable {
      // Atomic on the server: ours -> extend; free -> take; anyone else's -> refuse.
      static constexpr std::string_view kScript =
          "local v = redis.call('GET', KEYS[1]) "
          "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
          "if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end "
          "return 0";
      std::string ms = std::to_string(ttl.count());
      auto* request = new LeaseRequest{this, worker, std::move(done)};
      const char* argv[6] = {"EVAL", kScript.data(), "1", key.data(), value.data(), ms.data()};
      size_t lens[6] = {4, kScript.size(), 1, key.size(), value.size(), ms.size()};
      if (state_ != State::kReady || pub_ == nullptr ||
          redisAsyncCommandArgv(pub_, &RedisBus::OnLeaseReply, request, 6, argv, lens) !=
              REDIS_OK) {
        std::unique_ptr<LeaseRequest> owned(request);
        PostToWorker(owned->worker, [done = std::move(owned->done)] {
          done(absl::UnavailableError("Redis is unreachable"));
        });
      }
    });
  }

  void ReleaseLease(std::string key, std::string value) override {
    if (stopped() || !up()) return;  // the lease expires on its own
    boost::asio::post(hub_ioc_, [this, key = std::move(key), value = std::move(value)] {
      static constexpr std::string_view kScript =
          "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
          "return 0";
      const char* argv[5] = {"EVAL", kScript.data(), "1", key.data(), value.data()};
      size_t lens[5] = {4, kScript.size(), 1, key.size(), value.size()};
      if (state_ == State::kReady && pub_ != nullptr) {
        redisAsyncCommandArgv(pub_, nullptr, nullptr, 5, argv, lens);
      }
    });
  }

  void Stop() override {
    if (stop_done_.exchange(true)) return;
    StopHubThread();
    // The hub thread is joined: this thread may touch hub state now. Freeing the contexts runs
    // their pending callbacks with a NULL reply (GetAndDelete requests answer UNAVAILABLE).
    state_ = State::kStopped;
    retry_timer_.cancel();
    connect_timer_.cancel();
    health_timer_.cancel();
    FreeContexts();
  }

 protected:
  void UpstreamSubscribe(const std::string& channel) override {
    // No connection (lost, HandleLost not run yet): HubOnUpstreamLost resets the channel and
    // the next connection resubscribes it.
    if (sub_ == nullptr) return;
    const char* argv[2] = {"SUBSCRIBE", channel.data()};
    size_t lens[2] = {9, channel.size()};
    redisAsyncCommandArgv(sub_, &RedisBus::OnSubscriberReply, this, 2, argv, lens);
  }
  void UpstreamUnsubscribe(const std::string& channel) override {
    if (sub_ == nullptr) return;
    const char* argv[2] = {"UNSUBSCRIBE", channel.data()};
    size_t lens[2] = {11, channel.size()};
    redisAsyncCommandArgv(sub_, &RedisBus::OnSubscriberReply, this, 2, argv, lens);
  }

 private:
  enum class State { kConnecting, kReady, kWaitingRetry, kStopped };
  struct GetDelRequest {
    RedisBus* bus;
    int worker;
    GetAndDeleteCallback done;
  };
  struct LeaseRequest {
    RedisBus* bus;
    int worker;
    LeaseCallback done;
  };

  // ---- Connection life (hub thread). ----

  void Connect() {
    if (state_ == State::kStopped) return;
    state_ = State::kConnecting;
    sub_ready_ = pub_ready_ = false;
    const RedisEndpoint& ep = options_.endpoint;
    std::string error;
    sub_ = OpenContext(&error);
    if (sub_ != nullptr) pub_ = OpenContext(&error);
    if (sub_ == nullptr || pub_ == nullptr) {
      FreeContexts();
      FailAttempt(error);
      return;
    }
    // Subscriber connection: AUTH (regular reply, answered before any Pub/Sub message), then
    // the sentinel SUBSCRIBE, whose ack says the connection is ready.
    if (!ep.password.empty()) SendAuth(sub_);
    UpstreamSubscribeRaw(sub_, sentinel_);
    // Publish connection: AUTH, SELECT (Pub/Sub ignores the db, GETDEL does not), then a PING
    // whose PONG says it is ready.
    if (!ep.password.empty()) SendAuth(pub_);
    if (ep.db != 0) {
      std::string db = std::to_string(ep.db);
      const char* argv[2] = {"SELECT", db.data()};
      size_t lens[2] = {6, db.size()};
      redisAsyncCommandArgv(pub_, &RedisBus::OnSetupReply, this, 2, argv, lens);
    }
    redisAsyncCommand(pub_, &RedisBus::OnPubPing, this, "PING");

    connect_timer_.expires_after(options_.connect_timeout);
    connect_timer_.async_wait([this, attempt = attempt_](const boost::system::error_code& ec) {
      if (ec || attempt != attempt_ || up()) return;
      HandleLost(attempt,
                 absl::StrCat("no answer within ", options_.connect_timeout.count(), " ms"));
    });
  }

  redisAsyncContext* OpenContext(std::string* error) {
    const RedisEndpoint& ep = options_.endpoint;
    // Note: resolves the host name synchronously (getaddrinfo). That blocks the bus thread
    // only, never a worker.
    redisAsyncContext* ac = redisAsyncConnect(ep.host.c_str(), ep.port);
    if (ac == nullptr) {
      *error = "out of memory";
      return nullptr;
    }
    if (ac->err != 0) {
      *error = ac->errstr;
      redisAsyncFree(ac);
      return nullptr;
    }
    if (absl::Status s = AttachAsio(ac, hub_ioc_); !s.ok()) {
      *error = std::string(s.message());
      redisAsyncFree(ac);
      return nullptr;
    }
    // TCP keepalive (hiredis: 15 s): a Redis host that vanished without a FIN (partition, power
    // loss) is noticed by the kernel instead of never.
    redisEnableKeepAlive(&ac->c);
    ac->data = this;
    redisAsyncSetConnectCallback(ac, &RedisBus::OnConnect);
    redisAsyncSetDisconnectCallback(ac, &RedisBus::OnDisconnect);
    return ac;
  }

  void SendAuth(redisAsyncContext* ac) {
    const RedisEndpoint& ep = options_.endpoint;
    if (ep.username.empty()) {
      const char* argv[2] = {"AUTH", ep.password.data()};
      size_t lens[2] = {4, ep.password.size()};
      redisAsyncCommandArgv(ac, &RedisBus::OnSetupReply, this, 2, argv, lens);
    } else {
      const char* argv[3] = {"AUTH", ep.username.data(), ep.password.data()};
      size_t lens[3] = {4, ep.username.size(), ep.password.size()};
      redisAsyncCommandArgv(ac, &RedisBus::OnSetupReply, this, 3, argv, lens);
    }
  }

  void UpstreamSubscribeRaw(redisAsyncContext* ac, const std::string& channel) {
    const char* argv[2] = {"SUBSCRIBE", channel.data()};
    size_t lens[2] = {9, channel.size()};
    redisAsyncCommandArgv(ac, &RedisBus::OnSubscriberReply, this, 2, argv, lens);
  }

  void MaybeReady() {
    if (state_ != State::kConnecting || !sub_ready_ || !pub_ready_) return;
    state_ = State::kReady;
    delay_ = options_.reconnect_initial;
    if (ever_up_) {
      reconnects_.Add();
      spdlog::info("bus: Redis {}:{} is back; resubscribing", options_.endpoint.host,
                   options_.endpoint.port);
    } else {
      spdlog::info("bus: connected to Redis {}:{}", options_.endpoint.host, options_.endpoint.port);
    }
    ever_up_ = true;
    failures_in_outage_ = 0;
    sub_heard_ = pub_heard_ = std::chrono::steady_clock::now();
    ScheduleHealthProbe(attempt_);
    HubResubscribeAll();
    MaybeUp();
  }

  // ---- Health probe (hub thread): see RedisBusOptions::health_interval. ----

  void ScheduleHealthProbe(uint64_t attempt) {
    if (options_.health_interval.count() <= 0) return;
    health_timer_.expires_after(options_.health_interval);
    health_timer_.async_wait([this, attempt](const boost::system::error_code& ec) {
      if (ec || attempt != attempt_ || state_ != State::kReady) return;
      auto now = std::chrono::steady_clock::now();
      auto silent = std::max(now - sub_heard_, now - pub_heard_);
      if (silent > options_.health_timeout) {
        HandleLost(attempt,
                   absl::StrCat("no answer to the health probe for ",
                                std::chrono::duration_cast<std::chrono::milliseconds>(silent)
                                    .count(),
                                " ms (Redis hung?)"));
        return;
      }
      const char* argv[3] = {"PUBLISH", sentinel_.data(), "probe"};
      size_t lens[3] = {7, sentinel_.size(), 5};
      if (pub_ != nullptr) {
        redisAsyncCommandArgv(pub_, &RedisBus::OnProbeReply, this, 3, argv, lens);
      }
      ScheduleHealthProbe(attempt);
    });
  }

  static void OnProbeReply(redisAsyncContext* ac, void* r, void* privdata) {
    auto* self = static_cast<RedisBus*>(privdata);
    if (r == nullptr || ac != self->pub_) return;
    self->pub_heard_ = std::chrono::steady_clock::now();
  }

  // up() turns true only once every channel kept through an outage is subscribed again, so that
  // an OK subscribe completion (and a 101 on a pubsub handshake) always means "Redis has it".
  // The connect timer keeps running until then: resubscriptions that never complete count as a
  // failed attempt.
  void MaybeUp() {
    if (state_ != State::kReady || up() || hub_subscribing() != 0) return;
    connect_timer_.cancel();
    set_up(true);
  }

  // Either connection failed, dropped or timed out (or answered AUTH/SELECT with an error).
  void HandleLost(uint64_t attempt, const std::string& why) {
    if (attempt != attempt_) return;
    if (state_ != State::kConnecting && state_ != State::kReady) return;
    bool was_up = state_ == State::kReady;
    set_up(false);
    FreeContexts();
    HubOnUpstreamLost();
    FailAttempt(why, was_up);
  }

  void FailAttempt(const std::string& why, bool was_up = false) {
    ++attempt_;
    state_ = State::kWaitingRetry;
    connect_timer_.cancel();
    // Equal jitter: half the delay fixed, half random.
    std::uniform_int_distribution<int64_t> jitter(delay_.count() / 2, delay_.count());
    std::chrono::milliseconds wait{jitter(rng_)};
    if (was_up) {
      spdlog::warn(
          "bus: lost Redis {}:{} ({}); messages published until it is back are lost; "
          "retrying in {} ms",
          options_.endpoint.host, options_.endpoint.port, why, wait.count());
    } else if (failures_in_outage_++ == 0) {
      spdlog::warn("bus: cannot reach Redis {}:{} ({}); retrying in {} ms, backing off to {} ms",
                   options_.endpoint.host, options_.endpoint.port, why, wait.count(),
                   options_.reconnect_max.count());
    } else if (spdlog::should_log(spdlog::level::debug)) {
      spdlog::debug("bus: Redis still unreachable ({}); retrying in {} ms", why, wait.count());
    }
    delay_ = std::min(delay_ * 2, options_.reconnect_max);
    retry_timer_.expires_after(wait);
    retry_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec && state_ == State::kWaitingRetry) Connect();
    });
  }

  void FreeContexts() {
    // Clear our pointers first: the callbacks that hiredis runs while freeing then see a context
    // that is no longer ours and do nothing (GetAndDelete requests still get their answer).
    redisAsyncContext* sub = std::exchange(sub_, nullptr);
    redisAsyncContext* pub = std::exchange(pub_, nullptr);
    if (sub != nullptr) redisAsyncFree(sub);
    if (pub != nullptr) redisAsyncFree(pub);
  }

  // ---- hiredis callbacks (hub thread, from inside redisAsyncHandleRead/Write or a free). ----

  static void OnConnect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<RedisBus*>(ac->data);
    if (status == REDIS_OK) return;  // ready once the setup replies are in
    self->OnContextGone(ac, ac->errstr != nullptr ? ac->errstr : "connect failed");
  }

  static void OnDisconnect(const redisAsyncContext* ac, int status) {
    (void)status;
    auto* self = static_cast<RedisBus*>(ac->data);
    self->OnContextGone(ac,
                        ac->errstr != nullptr && ac->err != 0 ? ac->errstr : "connection closed");
  }

  // hiredis frees `ac` itself after this callback: forget it now, act on the next hub turn.
  void OnContextGone(const redisAsyncContext* ac, std::string why) {
    if (ac != sub_ && ac != pub_) return;  // one we are freeing ourselves
    if (ac == sub_) sub_ = nullptr;
    if (ac == pub_) pub_ = nullptr;
    set_up(false);
    boost::asio::post(
        hub_ioc_, [this, attempt = attempt_, why = std::move(why)] { HandleLost(attempt, why); });
  }

  static void OnSetupReply(redisAsyncContext* ac, void* r, void* privdata) {
    auto* self = static_cast<RedisBus*>(privdata);
    auto* reply = static_cast<redisReply*>(r);
    if (reply == nullptr || (ac != self->sub_ && ac != self->pub_)) return;
    if (reply->type == REDIS_REPLY_ERROR) {
      // Logged by FailAttempt, once per outage (a wrong password would otherwise log every retry).
      std::string why =
          absl::StrCat("Redis refused the connection setup: ", AV(ReplyString(reply)));
      // Not from inside the callback: free both contexts on the next turn.
      boost::asio::post(self->hub_ioc_, [self, attempt = self->attempt_, why = std::move(why)] {
        self->HandleLost(attempt, why);
      });
    }
  }

  static void OnPubPing(redisAsyncContext* ac, void* r, void* privdata) {
    auto* self = static_cast<RedisBus*>(privdata);
    auto* reply = static_cast<redisReply*>(r);
    if (reply == nullptr || ac != self->pub_) return;
    if (reply->type == REDIS_REPLY_ERROR) return;  // OnSetupReply or the PING error path
    self->pub_ready_ = true;
    self->MaybeReady();
  }

  static void OnSubscriberReply(redisAsyncContext* ac, void* r, void* privdata) {
    auto* self = static_cast<RedisBus*>(privdata);
    auto* reply = static_cast<redisReply*>(r);
    if (reply == nullptr || ac != self->sub_) return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
      return;
    }
    std::string_view kind = ReplyString(reply->element[0]);
    self->sub_heard_ = std::chrono::steady_clock::now();  // any reply: the connection lives
    if (kind == "message" && ReplyString(reply->element[1]) == self->sentinel_) return;  // probe
    std::string channel(ReplyString(reply->element[1]));
    if (kind == "message") {
      if (reply->element[2]->type != REDIS_REPLY_STRING) return;
      std::string payload(ReplyString(reply->element[2]));
      bool binary = !text::IsValidUtf8(payload);
      self->HubDeliver(std::make_shared<const BusMessage>(
          BusMessage{std::move(channel), std::move(payload), binary}));
    } else if (kind == "subscribe") {
      if (channel == self->sentinel_) {
        self->sub_ready_ = true;
        self->MaybeReady();
      } else {
        self->HubOnSubscribed(channel);
        self->MaybeUp();
      }
    } else if (kind == "unsubscribe") {
      self->HubOnUnsubscribed(channel);
    }
  }

  static void OnGetDelReply(redisAsyncContext* ac, void* r, void* privdata) {
    (void)ac;
    std::unique_ptr<GetDelRequest> request(static_cast<GetDelRequest*>(privdata));
    auto* reply = static_cast<redisReply*>(r);
    absl::StatusOr<std::optional<std::string>> result;
    if (reply == nullptr) {
      result = absl::UnavailableError("connection to Redis lost");
    } else if (reply->type == REDIS_REPLY_NIL) {
      result = std::optional<std::string>();
    } else if (reply->type == REDIS_REPLY_STRING) {
      result = std::optional<std::string>(std::string(ReplyString(reply)));
    } else if (reply->type == REDIS_REPLY_ERROR) {
      result = absl::InternalError(absl::StrCat("Redis GETDEL: ", AV(ReplyString(reply))));
    } else {
      result = absl::InternalError("Redis GETDEL: unexpected reply type");
    }
    request->bus->PostToWorker(request->worker, [done = std::move(request->done),
                                                 result = std::move(result)] { done(result); });
  }

  static void OnLeaseReply(redisAsyncContext* ac, void* r, void* privdata) {
    (void)ac;
    std::unique_ptr<LeaseRequest> request(static_cast<LeaseRequest*>(privdata));
    auto* reply = static_cast<redisReply*>(r);
    absl::StatusOr<bool> result;
    if (reply == nullptr) {
      result = absl::UnavailableError("connection to Redis lost");
    } else if (reply->type == REDIS_REPLY_INTEGER) {
      result = reply->integer == 1;
    } else if (reply->type == REDIS_REPLY_ERROR) {
      result = absl::InternalError(absl::StrCat("Redis lease: ", AV(ReplyString(reply))));
    } else {
      result = absl::InternalError("Redis lease: unexpected reply type");
    }
    request->bus->PostToWorker(request->worker, [done = std::move(request->done),
                                                 result = std::move(result)] { done(result); });
  }

  const RedisBusOptions options_;
  std::atomic<bool> stop_done_{false};
  boost::asio::steady_timer retry_timer_;
  boost::asio::steady_timer connect_timer_;
  boost::asio::steady_timer health_timer_;
  std::mt19937_64 rng_;
  std::string sentinel_;

  // Hub thread only (and the stopping thread once the hub thread is joined).
  State state_ = State::kConnecting;
  uint64_t attempt_ = 1;  // identifies a connection attempt; stale events carry an older one
  redisAsyncContext* sub_ = nullptr;
  redisAsyncContext* pub_ = nullptr;
  bool sub_ready_ = false;
  bool pub_ready_ = false;
  bool ever_up_ = false;
  int failures_in_outage_ = 0;
  std::chrono::milliseconds delay_{0};
  // Last sign of life of each connection while ready (health probe).
  std::chrono::steady_clock::time_point sub_heard_;
  std::chrono::steady_clock::time_point pub_heard_;
};

}  // namespace

std::unique_ptr<MessageBus> MakeRedisBus(RedisBusOptions options,
                                         std::vector<boost::asio::any_io_executor> workers) {
  return std::make_unique<RedisBus>(std::move(options), std::move(workers));
}

}  // namespace wsgate::dataplane::bus
