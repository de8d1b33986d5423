#include "controlplane/sync/sync_client.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include <prometheus/metric_family.h>

namespace wsgate::controlplane {
namespace {

using wsgate::v1::SyncRequest;
using wsgate::v1::SyncResponse;

constexpr auto kSampleEvery = std::chrono::seconds(1);
// The control plane sends this initial metadata once it has accepted the hello, so that the data
// plane knows it is connected even when no snapshot follows (it already serves the current one).
constexpr char kAcceptedKey[] = "x-wsgate-sync";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

prometheus::MetricFamily Gauge(const char* name, const char* help, double value) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = prometheus::MetricType::Gauge;
  prometheus::ClientMetric m;
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
  return f;
}

class ClientCollector final : public prometheus::Collectable {
 public:
  explicit ClientCollector(const SyncClient* client) : client_(client) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    out.push_back(Gauge("wsgate_dataplane_control_plane_connected",
                        "1 while this data plane's Sync stream to its control plane is up",
                        client_->connected() ? 1 : 0));
    if (double age = client_->snapshot_age_seconds(); age >= 0) {
      out.push_back(Gauge("wsgate_dataplane_snapshot_age_seconds",
                          "Seconds since the config snapshot served was last known current (0 "
                          "while the control plane's stream is up)",
                          age));
    }
    return out;
  }

 private:
  const SyncClient* const client_;
};

}  // namespace

SyncClient::SyncClient(SyncClientOptions options, ConfigTarget* target)
    : options_(std::move(options)),
      target_(target),
      collector_(std::make_unique<ClientCollector>(this)) {
  if (options_.snapshot_confirmed_at) {
    confirmed_at_ms_.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                               options_.snapshot_confirmed_at->time_since_epoch())
                               .count());
  }
}

SyncClient::~SyncClient() { Stop(); }

void SyncClient::Start() { thread_ = std::thread([this] { Run(); }); }

void SyncClient::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

double SyncClient::snapshot_age_seconds() const {
  if (target_->serving_version() == 0) return -1;
  if (connected_.load()) return 0;
  const int64_t at = confirmed_at_ms_.load();
  if (at < 0) return -1;
  return static_cast<double>(std::max<int64_t>(0, NowMs() - at)) / 1000.0;
}

void SyncClient::Confirmed() { confirmed_at_ms_.store(NowMs()); }

bool SyncClient::Sleep(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stopping_; });
}

void SyncClient::Run() {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  auto backoff = options_.initial_backoff;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    if (RunStream()) backoff = options_.initial_backoff;
    const auto wait = std::chrono::milliseconds(
        static_cast<int64_t>(static_cast<double>(backoff.count()) * jitter(rng)));
    if (!Sleep(wait)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

bool SyncClient::RunStream() {
  // A fresh channel per attempt: the backoff above is the only one (a channel's own reconnect
  // backoff would stretch it).
  auto channel = grpc::CreateChannel(options_.control_plane,
                                     options_.credentials ? options_.credentials
                                                          : grpc::InsecureChannelCredentials());
  auto stub = wsgate::v1::DataPlaneService::NewStub(channel);
  grpc::ClientContext context;
  if (!options_.token.empty()) context.AddMetadata("authorization", "Bearer " + options_.token);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    context_ = &context;
  }
  auto stream = stub->Sync(&context);
  SyncRequest hello;
  *hello.mutable_hello() = options_.hello;
  hello.mutable_hello()->set_serving_version(target_->serving_version());
  bool accepted = false;
  std::mutex write_mu;
  std::thread sampler;
  std::mutex sample_mu;
  std::condition_variable sample_cv;
  bool stream_done = false;
  if (stream->Write(hello)) {
    stream->WaitForInitialMetadata();
    const auto& md = context.GetServerInitialMetadata();
    accepted = md.find(kAcceptedKey) != md.end();
  }
  if (accepted) {
    connected_.store(true);
    Confirmed();
    spdlog::info("sync: connected to control plane {}, serving version {}",
                 options_.control_plane, target_->serving_version());
    sampler = std::thread([&] {
      std::unique_lock<std::mutex> lock(sample_mu);
      while (!sample_cv.wait_for(lock, kSampleEvery, [&] { return stream_done; })) {
        SyncRequest sample;
        if (options_.inventory) {
          *sample.mutable_sample()->mutable_inventory() = options_.inventory();
        }
        sample.mutable_sample()->set_snapshot_age_seconds(0);
        std::lock_guard<std::mutex> w(write_mu);
        if (!stream->Write(sample)) break;
      }
    });
    SyncResponse response;
    while (stream->Read(&response)) {
      if (!response.has_snapshot()) continue;  // commands: not built yet
      const wsgate::v1::ConfigSnapshot& snapshot = response.snapshot();
      absl::Status applied = target_->Apply(snapshot);
      SyncRequest ack;
      wsgate::v1::ConfigAck* a = ack.mutable_ack();
      a->set_version(snapshot.version());
      a->set_applied(applied.ok());
      a->set_serving_version(target_->serving_version());
      if (applied.ok()) {
        Confirmed();
        spdlog::info("sync: applied config version {} ({} routes)", snapshot.version(),
                     snapshot.config().routes_size());
        if (options_.on_applied) options_.on_applied();
      } else {
        a->set_error(std::string(applied.message()));
        spdlog::error("sync: refused config version {} (still serving {}): {}",
                      snapshot.version(), target_->serving_version(),
                      std::string(applied.message()));
      }
      std::lock_guard<std::mutex> w(write_mu);
      if (!stream->Write(ack)) break;
    }
    Confirmed();
    connected_.store(false);
  }
  {
    std::lock_guard<std::mutex> lock(sample_mu);
    stream_done = true;
    sample_cv.notify_all();
  }
  if (sampler.joinable()) sampler.join();
  if (accepted) {
    // The server keeps its end open: cancel so that Finish returns now.
    std::lock_guard<std::mutex> lock(mu_);
    context.TryCancel();
  }
  grpc::Status status = stream->Finish();
  {
    std::lock_guard<std::mutex> lock(mu_);
    context_ = nullptr;
  }
  if (!accepted) {
    const bool refused = status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                         status.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
                         status.error_code() == grpc::StatusCode::INVALID_ARGUMENT;
    if (refused) {
      // The code first: the log's redaction cuts a line at "authorization:".
      spdlog::error("sync: control plane {} refused the stream (gRPC code {}): {}",
                    options_.control_plane, static_cast<int>(status.error_code()),
                    status.error_message());
    } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      spdlog::warn("sync: control plane {} has no room for another stream: {}",
                   options_.control_plane, status.error_message());
    } else {
      spdlog::debug("sync: control plane {} unreachable: {}", options_.control_plane,
                    status.error_message());
    }
  } else {
    spdlog::warn("sync: stream to control plane {} ended; serving version {} until it is back",
                 options_.control_plane, target_->serving_version());
  }
  return accepted;
}

}  // namespace wsgate::controlplane
