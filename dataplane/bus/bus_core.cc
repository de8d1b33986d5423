#include "dataplane/bus/bus_core.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <cstdlib>
#include <utility>

namespace wsgate::dataplane::bus {

BusCore::BusCore(std::vector<boost::asio::any_io_executor> worker_executors)
    : worker_executors_(std::move(worker_executors)),
      shards_(new WorkerShard[worker_executors_.size()]),
      hub_work_(hub_ioc_.get_executor()) {}

BusCore::~BusCore() { StopHubThread(); }

void BusCore::StartHubThread() {
  hub_thread_ = std::thread([this] {
    // Our handlers throw nothing; an exception here is a library bug: let it terminate loudly.
    hub_ioc_.run();
  });
}

void BusCore::StopHubThread() {
  stopped_.store(true, std::memory_order_release);
  set_up(false);
  hub_work_.reset();
  hub_ioc_.stop();
  if (hub_thread_.joinable()) hub_thread_.join();
}

BusStats BusCore::stats() const {
  BusStats s;
  s.published = published_.Get();
  s.publish_failures = publish_failures_.load(std::memory_order_relaxed);
  s.received = received_.Get();
  for (size_t w = 0; w < worker_executors_.size(); ++w) s.delivered += shards_[w].delivered.Get();
  s.channels_active = channels_active_.Get();
  s.reconnects = reconnects_.Get();
  s.up = up();
  return s;
}

// ------------------------------------------------------------------------------------------------
// Worker side. Everything below until the hub section runs on worker w's thread.

void BusCore::Subscribe(int w, const std::string& channel, Subscriber* subscriber,
                        SubscribeOptions options, SubscribeCallback done) {
  if (w < 0 || w >= workers()) {
    spdlog::critical("bus: Subscribe for worker {} of {}", w, workers());
    std::abort();
  }
  // Completions are always posted, never called from inside Subscribe, so a caller never sees
  // its own callback run before Subscribe returns.
  if (stopped() || !up()) {
    absl::Status status = stopped() ? absl::FailedPreconditionError("message bus stopped")
                                    : absl::UnavailableError("message bus is down");
    PostToWorker(w, [done = std::move(done), status]() { done(status); });
    return;
  }
  WorkerShard& shard = shards_[w];
  auto [it, inserted] = shard.channels.try_emplace(channel);
  LocalChannel& local = it->second;
  if (inserted) {
    local.token = shard.next_token++;
    boost::asio::post(
        hub_ioc_, [this, w, channel, token = local.token] { HubAddInterest(w, channel, token); });
  }
  uint64_t id = shard.next_pending_id++;
  PendingSubscriber pending{id, subscriber, std::move(done), nullptr};
  if (local.acked) {
    // Already subscribed upstream for another local subscriber: activate on the next turn.
    PostToWorker(w, [this, w, channel, id] { WorkerActivateIfAcked(w, channel, id); });
  } else if (options.timeout.count() > 0) {
    pending.timer = std::make_unique<boost::asio::steady_timer>(worker_executors_[w]);
    pending.timer->expires_after(options.timeout);
    pending.timer->async_wait([this, w, channel, id](const boost::system::error_code& ec) {
      if (!ec) WorkerOnTimeout(w, channel, id);
    });
  }
  local.pending.push_back(std::move(pending));
}

void BusCore::Unsubscribe(int w, const std::string& channel, Subscriber* subscriber) {
  if (w < 0 || w >= workers()) {
    spdlog::critical("bus: Unsubscribe for worker {} of {}", w, workers());
    std::abort();
  }
  WorkerShard& shard = shards_[w];
  auto it = shard.channels.find(channel);
  if (it == shard.channels.end()) return;
  LocalChannel& local = it->second;
  auto a = std::find(local.active.begin(), local.active.end(), subscriber);
  if (a != local.active.end()) {
    if (local.in_fanout) {
      // The fan-out loop indexes `active`: leave a hole, compacted when the loop ends.
      *a = nullptr;
      local.has_holes = true;
    } else {
      *a = local.active.back();
      local.active.pop_back();
    }
  } else {
    auto p = std::find_if(
        local.pending.begin(), local.pending.end(),
        [subscriber](const PendingSubscriber& ps) { return ps.subscriber == subscriber; });
    if (p == local.pending.end()) return;
    local.pending.erase(p);  // destroys the timer, which cancels it
  }
  WorkerMaybeRelease(w, channel);
}

void BusCore::WorkerMaybeRelease(int w, const std::string& channel) {
  WorkerShard& shard = shards_[w];
  auto it = shard.channels.find(channel);
  if (it == shard.channels.end()) return;
  LocalChannel& local = it->second;
  if (local.in_fanout || !local.pending.empty()) return;
  if (std::any_of(local.active.begin(), local.active.end(),
                  [](Subscriber* s) { return s != nullptr; })) {
    return;
  }
  uint64_t token = local.token;
  shard.channels.erase(it);
  if (!stopped()) {
    boost::asio::post(hub_ioc_,
                      [this, w, channel, token] { HubRemoveInterest(w, channel, token); });
  }
}

void BusCore::WorkerOnAck(int w, const std::string& channel, uint64_t token, absl::Status status) {
  WorkerShard& shard = shards_[w];
  // One pending subscriber at a time, looking the entry up again after each callback: a callback
  // may subscribe or unsubscribe anything, including this channel.
  for (;;) {
    auto it = shard.channels.find(channel);
    if (it == shard.channels.end() || it->second.token != token) return;
    LocalChannel& local = it->second;
    if (status.ok()) local.acked = true;
    if (local.pending.empty()) break;
    PendingSubscriber p = std::move(local.pending.front());
    local.pending.pop_front();
    p.timer.reset();
    if (status.ok()) local.active.push_back(p.subscriber);
    p.done(status);
  }
  if (!status.ok()) {
    // The hub has already forgotten this token: erase without telling it.
    auto it = shard.channels.find(channel);
    if (it != shard.channels.end() && it->second.token == token && it->second.pending.empty() &&
        it->second.active.empty()) {
      shard.channels.erase(it);
    }
  }
}

std::optional<BusCore::PendingSubscriber> BusCore::WorkerTakePending(int w,
                                                                     const std::string& channel,
                                                                     uint64_t pending_id) {
  WorkerShard& shard = shards_[w];
  auto it = shard.channels.find(channel);
  if (it == shard.channels.end()) return std::nullopt;
  LocalChannel& local = it->second;
  auto p = std::find_if(local.pending.begin(), local.pending.end(),
                        [pending_id](const PendingSubscriber& ps) { return ps.id == pending_id; });
  if (p == local.pending.end()) return std::nullopt;  // unsubscribed meanwhile
  PendingSubscriber ps = std::move(*p);
  local.pending.erase(p);
  return ps;
}

void BusCore::WorkerActivateIfAcked(int w, const std::string& channel, uint64_t pending_id) {
  std::optional<PendingSubscriber> taken = WorkerTakePending(w, channel, pending_id);
  if (!taken) return;
  PendingSubscriber& ps = *taken;
  if (!up()) {
    ps.done(absl::UnavailableError("message bus is down"));
    WorkerMaybeRelease(w, channel);
    return;
  }
  // The channel entry is still there: WorkerTakePending found it and only removed the pending
  // subscriber; entries are erased by WorkerMaybeRelease alone.
  shards_[w].channels.find(channel)->second.active.push_back(ps.subscriber);
  ps.done(absl::OkStatus());
}

void BusCore::WorkerOnTimeout(int w, const std::string& channel, uint64_t pending_id) {
  std::optional<PendingSubscriber> taken = WorkerTakePending(w, channel, pending_id);
  if (!taken) return;
  PendingSubscriber& ps = *taken;
  WorkerMaybeRelease(w, channel);
  ps.done(absl::DeadlineExceededError("subscription not acknowledged in time"));
}

void BusCore::WorkerDeliver(int w, const BusMessagePtr& message) {
  WorkerShard& shard = shards_[w];
  auto it = shard.channels.find(message->channel);
  if (it == shard.channels.end() || !it->second.acked) return;
  LocalChannel& local = it->second;
  local.in_fanout = true;
  // Indexing, not iterators: OnMessage may subscribe (which never touches `active` directly) or
  // unsubscribe (which leaves a hole while in_fanout is set). References into an unordered_map
  // survive inserts of other channels.
  uint64_t n = 0;
  for (size_t i = 0; i < local.active.size(); ++i) {
    Subscriber* s = local.active[i];
    if (s == nullptr) continue;
    s->OnMessage(message);
    ++n;
  }
  shard.delivered.Add(n);
  local.in_fanout = false;
  if (local.has_holes) {
    local.active.erase(std::remove(local.active.begin(), local.active.end(), nullptr),
                       local.active.end());
    local.has_holes = false;
    WorkerMaybeRelease(w, message->channel);
  }
}

// ------------------------------------------------------------------------------------------------
// Hub side: everything below runs on the hub thread.

void BusCore::HubAddInterest(int w, const std::string& channel, uint64_t token) {
  if (!up()) {
    PostToWorker(w, [this, w, channel, token] {
      WorkerOnAck(w, channel, token, absl::UnavailableError("message bus is down"));
    });
    return;
  }
  HubChannel& hc = hub_channels_[channel];
  if (hc.tokens.empty()) {
    hc.tokens.assign(workers(), 0);
    hc.acked.assign(workers(), false);
  }
  if (hc.tokens[w] == 0) ++hc.interested;
  hc.tokens[w] = token;
  hc.acked[w] = false;
  if (hc.state == HubChannel::State::kSubscribed) {
    hc.acked[w] = true;
    PostToWorker(w,
                 [this, w, channel, token] { WorkerOnAck(w, channel, token, absl::OkStatus()); });
    return;
  }
  HubReconcile(channel);
}

void BusCore::HubRemoveInterest(int w, const std::string& channel, uint64_t token) {
  auto it = hub_channels_.find(channel);
  if (it == hub_channels_.end()) return;
  HubChannel& hc = it->second;
  if (hc.tokens[w] != token) return;  // an older interest, already replaced or failed
  hc.tokens[w] = 0;
  hc.acked[w] = false;
  --hc.interested;
  HubReconcile(channel);
}

// At most one SUBSCRIBE or UNSUBSCRIBE per channel is in flight: this keeps hiredis's per-channel
// callback bookkeeping simple and makes the upstream state easy to reason about.
void BusCore::HubReconcile(const std::string& channel) {
  auto it = hub_channels_.find(channel);
  if (it == hub_channels_.end()) return;
  HubChannel& hc = it->second;
  using State = HubChannel::State;
  if (hc.state == State::kIdle) {
    if (hc.interested == 0) {
      hub_channels_.erase(it);
    } else if (hub_connected_) {
      hc.state = State::kSubscribing;
      ++hub_subscribing_;
      UpstreamSubscribe(channel);
    }
  } else if (hc.state == State::kSubscribed && hc.interested == 0) {
    hc.state = State::kUnsubscribing;
    UpstreamUnsubscribe(channel);
  }
}

void BusCore::HubOnSubscribed(const std::string& channel) {
  auto it = hub_channels_.find(channel);
  if (it == hub_channels_.end() || it->second.state != HubChannel::State::kSubscribing) return;
  HubChannel& hc = it->second;
  hc.state = HubChannel::State::kSubscribed;
  --hub_subscribing_;
  channels_active_.Add(1);
  for (int w = 0; w < workers(); ++w) {
    if (hc.tokens[w] != 0 && !hc.acked[w]) {
      hc.acked[w] = true;
      PostToWorker(w, [this, w, channel, token = hc.tokens[w]] {
        WorkerOnAck(w, channel, token, absl::OkStatus());
      });
    }
  }
  HubReconcile(channel);
}

void BusCore::HubOnUnsubscribed(const std::string& channel) {
  auto it = hub_channels_.find(channel);
  if (it == hub_channels_.end() || it->second.state != HubChannel::State::kUnsubscribing) return;
  it->second.state = HubChannel::State::kIdle;
  channels_active_.Add(-1);
  HubReconcile(channel);
}

void BusCore::HubDeliver(BusMessagePtr message) {
  auto it = hub_channels_.find(message->channel);
  if (it == hub_channels_.end()) return;
  received_.Add();
  const HubChannel& hc = it->second;
  for (int w = 0; w < workers(); ++w) {
    if (hc.tokens[w] != 0 && hc.acked[w]) {
      PostToWorker(w, [this, w, message] { WorkerDeliver(w, message); });
    }
  }
}

void BusCore::HubOnUpstreamLost() {
  hub_connected_ = false;
  for (auto it = hub_channels_.begin(); it != hub_channels_.end();) {
    HubChannel& hc = it->second;
    if (hc.state == HubChannel::State::kSubscribed ||
        hc.state == HubChannel::State::kUnsubscribing) {
      channels_active_.Add(-1);
    } else if (hc.state == HubChannel::State::kSubscribing) {
      --hub_subscribing_;
    }
    hc.state = HubChannel::State::kIdle;
    for (int w = 0; w < workers(); ++w) {
      if (hc.tokens[w] != 0 && !hc.acked[w]) {
        PostToWorker(w, [this, w, channel = it->first, token = hc.tokens[w]] {
          WorkerOnAck(w, channel, token, absl::UnavailableError("connection to Redis lost"));
        });
        hc.tokens[w] = 0;
        --hc.interested;
      }
    }
    if (hc.interested == 0) {
      it = hub_channels_.erase(it);
    } else {
      ++it;
    }
  }
}

void BusCore::HubResubscribeAll() {
  hub_connected_ = true;
  std::vector<std::string> names;
  names.reserve(hub_channels_.size());
  for (const auto& [name, hc] : hub_channels_) names.push_back(name);
  for (const auto& name : names) HubReconcile(name);
}

}  // namespace wsgate::dataplane::bus
