// What the in-memory and the Redis bus share: the bus thread (the "hub") with its channel table,
// and the per-worker subscriber maps. Internal to dataplane/bus; routes use MessageBus.
//
// Threads and ownership:
//  - The hub thread runs `hub_ioc_`. It alone owns `hub_channels_` (channel -> which workers want
//    it, upstream subscription state) and, in RedisBus, the hiredis contexts.
//  - Worker w alone owns `shards_[w]` (channel -> its local subscribers). Workers tell the hub
//    about interest changes by posting to it; the hub acknowledges and delivers by posting to the
//    worker's executor, one post per (worker, message).
//  - Counters are single-writer integers (hub thread or owning worker), read with relaxed loads.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dataplane/bus/message_bus.h"
#include "dataplane/stats/route_stats.h"

namespace wsgate::dataplane::bus {

class BusCore : public MessageBus {
 public:
  int workers() const override { return static_cast<int>(worker_executors_.size()); }
  void Subscribe(int worker, const std::string& channel, Subscriber* subscriber,
                 SubscribeOptions options, SubscribeCallback done) override;
  void Unsubscribe(int worker, const std::string& channel, Subscriber* subscriber) override;
  bool up() const override { return up_.load(std::memory_order_acquire); }
  BusStats stats() const override;

 protected:
  explicit BusCore(std::vector<boost::asio::any_io_executor> worker_executors);
  ~BusCore() override;

  // Starts the hub thread. Call once, from the constructor of the final class's factory.
  void StartHubThread();
  // Stops and joins the hub thread (idempotent). Subclasses call it before tearing down state
  // that hub handlers use.
  void StopHubThread();
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }

  // --- Hooks for the transport, called on the hub thread. ---
  // Subscribe `channel` upstream; answer later with HubOnSubscribed (or HubOnUpstreamLost).
  virtual void UpstreamSubscribe(const std::string& channel) = 0;
  // Unsubscribe upstream; answer later with HubOnUnsubscribed (or HubOnUpstreamLost).
  virtual void UpstreamUnsubscribe(const std::string& channel) = 0;

  // --- For the transport, on the hub thread. ---
  void HubOnSubscribed(const std::string& channel);
  void HubOnUnsubscribed(const std::string& channel);
  // A message arrived for `channel`: posted once to every worker that has it.
  void HubDeliver(BusMessagePtr message);
  // The upstream connection is gone: subscriptions waiting for an ack fail with UNAVAILABLE,
  // acknowledged ones are kept (to be resubscribed by HubResubscribeAll), nothing is subscribed
  // upstream any more.
  void HubOnUpstreamLost();
  // The upstream is back: subscribe every channel some worker still wants.
  void HubResubscribeAll();
  // Channels whose SUBSCRIBE is in flight (a transport waits for 0 before reporting up()).
  int hub_subscribing() const { return hub_subscribing_; }
  void set_up(bool up) { up_.store(up, std::memory_order_release); }

  // Runs `fn` on worker `w`'s thread.
  template <typename Fn>
  void PostToWorker(int w, Fn&& fn);

  boost::asio::io_context hub_ioc_{1};

  // Single-writer counters of the hub thread (published: the thread that really sends it).
  SingleWriterCounter published_;
  SingleWriterCounter received_;
  SingleWriterGauge channels_active_;
  SingleWriterCounter reconnects_;
  // Written by any publishing thread: a relaxed fetch_add, only on the failure path.
  std::atomic<uint64_t> publish_failures_{0};

 private:
  struct PendingSubscriber {
    uint64_t id;
    Subscriber* subscriber;
    SubscribeCallback done;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };
  struct LocalChannel {
    uint64_t token = 0;  // identifies this interest at the hub; a new entry gets a new token
    bool acked = false;
    std::vector<Subscriber*> active;  // nullptr: unsubscribed during a fan-out, compacted after
    std::deque<PendingSubscriber> pending;
    bool in_fanout = false;
    bool has_holes = false;
  };
  // One per worker, owned by that worker's thread.
  struct alignas(64) WorkerShard {
    std::unordered_map<std::string, LocalChannel> channels;
    uint64_t next_token = 1;
    uint64_t next_pending_id = 1;
    SingleWriterCounter delivered;
  };
  struct HubChannel {
    enum class State { kIdle, kSubscribing, kSubscribed, kUnsubscribing };
    State state = State::kIdle;
    std::vector<uint64_t> tokens;  // per worker; 0: that worker does not want the channel
    std::vector<bool> acked;       // per worker: told that the channel is subscribed
    int interested = 0;
  };

  // Worker side (on worker w).
  void WorkerOnAck(int w, const std::string& channel, uint64_t token, absl::Status status);
  // Removes and returns the pending subscription `pending_id` of `channel` on worker `w`;
  // nullopt when it is gone already (unsubscribed, timed out or acknowledged).
  std::optional<PendingSubscriber> WorkerTakePending(int w, const std::string& channel,
                                                     uint64_t pending_id);
  void WorkerActivateIfAcked(int w, const std::string& channel, uint64_t pending_id);
  void WorkerOnTimeout(int w, const std::string& channel, uint64_t pending_id);
  void WorkerDeliver(int w, const BusMessagePtr& message);
  // Erases the entry and withdraws the interest at the hub if nobody is left.
  void WorkerMaybeRelease(int w, const std::string& channel);

  // Hub side.
  void HubAddInterest(int w, const std::string& channel, uint64_t token);
  void HubRemoveInterest(int w, const std::string& channel, uint64_t token);
  void HubReconcile(const std::string& channel);

  const std::vector<boost::asio::any_io_executor> worker_executors_;
  std::unique_ptr<WorkerShard[]> shards_;
  std::unordered_map<std::string, HubChannel> hub_channels_;
  // Hub thread only. Whether SUBSCRIBE/UNSUBSCRIBE can be sent now; unlike up(), it turns true
  // before the resubscriptions after a reconnect are acknowledged.
  bool hub_connected_ = false;
  int hub_subscribing_ = 0;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> hub_work_;
  std::thread hub_thread_;
  std::atomic<bool> up_{false};
  std::atomic<bool> stopped_{false};
};

template <typename Fn>
void BusCore::PostToWorker(int w, Fn&& fn) {
  boost::asio::post(worker_executors_[w], std::forward<Fn>(fn));
}

}  // namespace wsgate::dataplane::bus
