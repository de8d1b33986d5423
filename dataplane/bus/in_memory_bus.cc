#include "dataplane/bus/in_memory_bus.h"

#include <utility>

#include "dataplane/bus/bus_core.h"

namespace wsgate::dataplane::bus {
namespace {

class InMemoryBus final : public BusCore {
 public:
  explicit InMemoryBus(std::vector<boost::asio::any_io_executor> workers)
      : BusCore(std::move(workers)) {
    set_up(true);
    boost::asio::post(hub_ioc_, [this] { HubResubscribeAll(); });  // marks the hub connected
    StartHubThread();
  }
  ~InMemoryBus() override { Stop(); }

  const char* kind() const override { return "memory"; }

  absl::Status Publish(std::string channel, std::string payload, bool is_binary) override {
    if (stopped()) {
      publish_failures_.fetch_add(1, std::memory_order_relaxed);
      return absl::FailedPreconditionError("message bus stopped");
    }
    auto message = std::make_shared<const BusMessage>(
        BusMessage{std::move(channel), std::move(payload), is_binary});
    boost::asio::post(hub_ioc_, [this, message = std::move(message)]() mutable {
      published_.Add();
      HubDeliver(std::move(message));
    });
    return absl::OkStatus();
  }

  void GetAndDelete(int worker, std::string key, GetAndDeleteCallback done) override {
    (void)key;
    PostToWorker(worker, [done = std::move(done)] {
      done(absl::UnimplementedError("GetAndDelete needs the Redis bus (set REDIS_URL)"));
    });
  }

  void Lease(int worker, std::string key, std::string value, std::chrono::milliseconds ttl,
             LeaseCallback done) override {
    (void)key;
    (void)value;
    (void)ttl;
    PostToWorker(worker, [done = std::move(done)] { done(true); });
  }
  void ReleaseLease(std::string key, std::string value) override {
    (void)key;
    (void)value;
  }

  void Stop() override { StopHubThread(); }

 protected:
  // In one process the "upstream" is the hub itself: acknowledge on the next hub turn.
  void UpstreamSubscribe(const std::string& channel) override {
    boost::asio::post(hub_ioc_, [this, channel] { HubOnSubscribed(channel); });
  }
  void UpstreamUnsubscribe(const std::string& channel) override {
    boost::asio::post(hub_ioc_, [this, channel] { HubOnUnsubscribed(channel); });
  }
};

}  // namespace

std::unique_ptr<MessageBus> MakeInMemoryBus(std::vector<boost::asio::any_io_executor> workers) {
  return std::make_unique<InMemoryBus>(std::move(workers));
}

}  // namespace wsgate::dataplane::bus
