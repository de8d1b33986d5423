#include "controlplane/config/redis_store.h"

#include <google/protobuf/util/json_util.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "controlplane/config/config_validator.h"
#include "dataplane/bus/redis_url.h"

namespace wsgate::controlplane {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kTimeout{1000};
constexpr std::chrono::milliseconds kProbeInterval{1000};
constexpr std::chrono::milliseconds kMaxBackoff{2000};

// A write must reach Redis within this (by Redis's clock) or it is not applied: a write that
// timed out on our side (a Redis paused for seconds) must not land later, after the caller was
// told UNAVAILABLE. Half the read timeout, so that the reply of a write that was applied still
// has time to arrive.
constexpr std::chrono::microseconds kWriteDeadline{500000};

// KEYS[1] the hash; ARGV: base version, new version, state JSON, channel, deadline (Redis TIME
// in microseconds). Returns {1, new} when written, {0, current} when the stored version is not
// `base`, {2, current} when the deadline had passed.
constexpr char kWriteScript[] = R"lua(
local cur = redis.call('HGET', KEYS[1], 'version')
if not cur then cur = '0' end
local t = redis.call('TIME')
if tonumber(t[1]) * 1000000 + tonumber(t[2]) > tonumber(ARGV[5]) then return {2, cur} end
if cur ~= ARGV[1] then return {0, cur} end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return {1, ARGV[2]}
)lua";

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

timeval ToTimeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

std::string Display(const dataplane::bus::RedisEndpoint& ep) {
  const bool v6 = ep.host.find(':') != std::string::npos;
  return absl::StrCat("redis://", v6 ? "[" : "", ep.host, v6 ? "]" : "", ":", ep.port, "/",
                      ep.db);  // never the credentials
}

std::string StripUrlPrefix(absl::string_view message) {
  absl::string_view m = message;
  absl::ConsumePrefix(&m, "REDIS_URL: ");
  return std::string(m);
}

// Replies Redis gives while it cannot serve for now (loading its data, a busy script, a
// replica): retried later like a lost connection, not a defect.
bool TransientReplyError(absl::string_view e) {
  return absl::StartsWith(e, "LOADING") || absl::StartsWith(e, "BUSY") ||
         absl::StartsWith(e, "MASTERDOWN") || absl::StartsWith(e, "READONLY") ||
         absl::StartsWith(e, "TRYAGAIN");
}

class RedisStoreBackend final : public StoreBackend {
 public:
  explicit RedisStoreBackend(dataplane::bus::RedisEndpoint ep)
      : ep_(std::move(ep)), display_(Display(ep_)) {}
  ~RedisStoreBackend() override { StopWatching(); }

  std::string origin() const override { return absl::StrCat("redis store ", display_); }
  std::string kind() const override { return "redis"; }
  bool shared() const override { return true; }
  bool up() const override { return up_.load(std::memory_order_relaxed); }

  absl::StatusOr<std::optional<wsgate::v1::StoredState>> Load() override {
    std::lock_guard<std::mutex> lock(cmd_mu_);
    auto reply = CommandLocked({"HMGET", kRedisStoreKey, "version", "state"});
    if (!reply.ok()) return reply.status();
    redisReply* r = reply->get();
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
      return absl::InternalError(absl::StrCat(origin(), ": HMGET answered an unexpected reply"));
    }
    redisReply* version = r->element[0];
    redisReply* state = r->element[1];
    if (version->type == REDIS_REPLY_NIL && state->type == REDIS_REPLY_NIL) {
      last_seen_ = "0";
      return std::nullopt;
    }
    uint64_t v = 0;
    if (version->type != REDIS_REPLY_STRING || state->type != REDIS_REPLY_STRING ||
        !absl::SimpleAtoi(absl::string_view(version->str, version->len), &v) || v == 0) {
      return absl::DataLossError(absl::StrCat(origin(), ": hash ", kRedisStoreKey,
                                              " needs a positive 'version' and a 'state'"));
    }
    wsgate::v1::StoredState parsed;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto ok = google::protobuf::util::JsonStringToMessage(std::string(state->str, state->len),
                                                          &parsed, options);
    if (!ok.ok()) {
      const std::string why(ok.message().data(), ok.message().size());
      return absl::DataLossError(absl::StrCat(origin(), ": ", kRedisStoreKey, " state: ", why));
    }
    // The same checks as a state file: nothing the API would refuse comes in through the store.
    wsgate::v1::Config as_config;
    *as_config.mutable_routes() = parsed.routes();
    if (auto s = ValidateConfig(as_config); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(origin(), ": ", s.message()));
    }
    parsed.set_config_version(v);  // the field the write script compares is the authority
    last_seen_ = std::to_string(v);
    return parsed;
  }

  absl::StatusOr<bool> Save(const wsgate::v1::StoredState& state, uint64_t base) override {
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;  // the spelling of the YAML config
    auto printed = google::protobuf::util::MessageToJsonString(state, &json, options);
    if (!printed.ok()) {
      return absl::InternalError(absl::StrCat(origin(), ": cannot serialize the state"));
    }
    std::lock_guard<std::mutex> lock(cmd_mu_);
    if (auto s = EnsureConnectedLocked(); !s.ok()) return s;
    const int64_t deadline = SteadyMicros() + redis_clock_offset_us_ + kWriteDeadline.count();
    auto reply = CommandLocked({"EVAL", kWriteScript, "1", kRedisStoreKey, std::to_string(base),
                                std::to_string(state.config_version()), json,
                                kRedisStoreChannel, std::to_string(deadline)});
    if (!reply.ok()) return reply.status();
    redisReply* r = reply->get();
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING) {
      return absl::InternalError(absl::StrCat(origin(), ": the write script answered an "
                                                        "unexpected reply"));
    }
    last_seen_ = std::string(r->element[1]->str, r->element[1]->len);
    if (r->element[0]->integer == 2) {
      return Unavailable("the write reached Redis after its deadline and was not applied");
    }
    return r->element[0]->integer == 1;
  }

  void Watch(std::function<void()> changed) override {
    if (thread_.joinable()) return;
    changed_ = std::move(changed);
    thread_ = std::thread([this] { WatchLoop(); });
  }

  void StopWatching() override {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

 private:
  absl::Status Unavailable(absl::string_view what) const {
    return absl::UnavailableError(
        absl::StrCat("config store ", display_, " unavailable: ", what));
  }

  absl::StatusOr<ContextPtr> Connect() const {
    ContextPtr c(redisConnectWithTimeout(ep_.host.c_str(), ep_.port, ToTimeval(kTimeout)));
    if (c == nullptr) return Unavailable("cannot allocate a connection");
    if (c->err != 0) return Unavailable(c->errstr);
    redisSetTimeout(c.get(), ToTimeval(kTimeout));
    redisEnableKeepAlive(c.get());
    std::vector<std::vector<std::string>> setup;
    if (!ep_.password.empty()) {
      if (ep_.username.empty()) {
        setup.push_back({"AUTH", ep_.password});
      } else {
        setup.push_back({"AUTH", ep_.username, ep_.password});
      }
    }
    if (ep_.db != 0) setup.push_back({"SELECT", std::to_string(ep_.db)});
    for (const auto& cmd : setup) {
      auto r = Run(c.get(), cmd);
      if (r == nullptr) return Unavailable(c->errstr);
      if (r->type == REDIS_REPLY_ERROR) {
        return Unavailable(absl::StrCat(cmd[0], " refused: ", std::string(r->str, r->len)));
      }
    }
    return c;
  }

  static int64_t SteadyMicros() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               Clock::now().time_since_epoch())
        .count();
  }

  // Holds cmd_mu_. Connects the command connection if needed and learns Redis's clock (TIME)
  // relative to ours, for the write deadline: no clock has to agree with Redis's.
  absl::Status EnsureConnectedLocked() {
    if (cmd_ != nullptr) return absl::OkStatus();
    auto c = Connect();
    if (!c.ok()) {
      MarkUp(false);
      return c.status();
    }
    const int64_t before = SteadyMicros();
    ReplyPtr t = Run(c->get(), {"TIME"});
    const int64_t after = SteadyMicros();
    int64_t sec = 0, usec = 0;
    if (t == nullptr || t->type != REDIS_REPLY_ARRAY || t->elements != 2 ||
        t->element[0]->type != REDIS_REPLY_STRING || t->element[1]->type != REDIS_REPLY_STRING ||
        !absl::SimpleAtoi(absl::string_view(t->element[0]->str, t->element[0]->len), &sec) ||
        !absl::SimpleAtoi(absl::string_view(t->element[1]->str, t->element[1]->len), &usec)) {
      MarkUp(false);
      return Unavailable(t == nullptr ? std::string((*c)->errstr) : "TIME: unexpected reply");
    }
    redis_clock_offset_us_ = sec * 1000000 + usec - (before + after) / 2;
    cmd_ = *std::move(c);
    return absl::OkStatus();
  }

  static ReplyPtr Run(redisContext* c, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    return ReplyPtr(static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
  }

  // Holds cmd_mu_. A connection that Redis closed since its last use (a restart) is replaced
  // and the command sent once more; a timeout is not retried (the caller would wait twice).
  absl::StatusOr<ReplyPtr> CommandLocked(const std::vector<std::string>& args) {
    for (int attempt = 0;; ++attempt) {
      const bool fresh = cmd_ == nullptr;
      if (auto s = EnsureConnectedLocked(); !s.ok()) return s;
      ReplyPtr r = Run(cmd_.get(), args);
      if (r != nullptr) {
        if (r->type == REDIS_REPLY_ERROR) {
          std::string e(r->str, r->len);
          if (TransientReplyError(e)) {
            MarkUp(false);
            return Unavailable(e);
          }
          MarkUp(true);
          return absl::InternalError(absl::StrCat(origin(), ": ", args[0], ": ", e));
        }
        MarkUp(true);
        return r;
      }
      const int err = cmd_->err;
      const int saved_errno = errno;
      std::string what = cmd_->errstr;
      cmd_.reset();
      const bool closed =
          err == REDIS_ERR_EOF ||
          (err == REDIS_ERR_IO && (saved_errno == ECONNRESET || saved_errno == EPIPE));
      if (fresh || attempt > 0 || !closed) {
        MarkUp(false);
        return Unavailable(what);
      }
    }
  }

  void MarkUp(bool up) {
    if (up_.exchange(up) != up) {
      if (up) {
        spdlog::info("config store {}: reachable again", display_);
      } else {
        spdlog::warn("config store {}: unreachable; serving the last config, changes refused",
                     display_);
      }
    }
  }

  std::string LastSeen() {
    std::lock_guard<std::mutex> lock(cmd_mu_);
    return last_seen_;
  }

  // The stored version, or an error; counts as an exchange for up().
  absl::StatusOr<std::string> ProbeVersion() {
    std::lock_guard<std::mutex> lock(cmd_mu_);
    auto r = CommandLocked({"HGET", kRedisStoreKey, "version"});
    if (!r.ok()) return r.status();
    if ((*r)->type == REDIS_REPLY_NIL) return std::string("0");
    if ((*r)->type != REDIS_REPLY_STRING) return std::string("?");
    return std::string((*r)->str, (*r)->len);
  }

  ContextPtr Subscribe() {
    auto c = Connect();
    if (!c.ok()) return nullptr;
    ReplyPtr r = Run(c->get(), {"SUBSCRIBE", kRedisStoreChannel});
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return nullptr;
    return *std::move(c);
  }

  void SleepInterruptibly(std::chrono::milliseconds d) {
    const auto until = Clock::now() + d;
    while (!stop_.load() && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // The watcher thread: keeps the subscription, reads the announcements, probes the version.
  void WatchLoop() {
    std::minstd_rand rng(std::random_device{}());
    ContextPtr sub;
    std::chrono::milliseconds backoff{100};
    auto next_probe = Clock::now();
    while (!stop_.load()) {
      if (sub == nullptr) {
        sub = Subscribe();
        if (sub == nullptr) {
          std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2, backoff.count());
          SleepInterruptibly(std::chrono::milliseconds(jitter(rng)));
          backoff = std::min(backoff * 2, kMaxBackoff);
          continue;
        }
        backoff = std::chrono::milliseconds(100);
        changed_();  // (re)subscribed: whatever was announced meanwhile was lost, read it
      }
      pollfd p{sub->fd, POLLIN, 0};
      bool announced = false;
      if (poll(&p, 1, 100) > 0) {
        if (redisBufferRead(sub.get()) != REDIS_OK) {
          sub.reset();  // closed: reconnect, resubscribe, resync
          continue;
        }
        void* reply = nullptr;
        while (redisGetReplyFromReader(sub.get(), &reply) == REDIS_OK && reply != nullptr) {
          freeReplyObject(reply);
          reply = nullptr;
          announced = true;
        }
      }
      if (Clock::now() >= next_probe) {
        next_probe = Clock::now() + kProbeInterval;
        const bool was_up = up();
        auto v = ProbeVersion();
        // Back after an outage, or a version this process has not seen (an announcement lost,
        // a store wiped): resync.
        if (v.ok() && (!was_up || *v != LastSeen())) announced = true;
      }
      if (announced) changed_();
    }
  }

  const dataplane::bus::RedisEndpoint ep_;
  const std::string display_;
  std::atomic<bool> up_{true};
  std::mutex cmd_mu_;
  ContextPtr cmd_;          // guarded by cmd_mu_
  std::string last_seen_;   // guarded by cmd_mu_: the version last read or written
  int64_t redis_clock_offset_us_ = 0;  // guarded by cmd_mu_: Redis TIME minus our steady clock
  std::function<void()> changed_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace

absl::Status CheckStoreUrl(const std::string& url, const std::string& source) {
  auto ep = dataplane::bus::ParseRedisUrl(url);
  if (!ep.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", StripUrlPrefix(ep.status().message())));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<StoreBackend>> MakeRedisStoreBackend(const std::string& url) {
  auto ep = dataplane::bus::ParseRedisUrl(url);
  if (!ep.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--store-url: ", StripUrlPrefix(ep.status().message())));
  }
  return std::make_unique<RedisStoreBackend>(*std::move(ep));
}

}  // namespace wsgate::controlplane
