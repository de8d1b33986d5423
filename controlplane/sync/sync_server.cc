#include "controlplane/sync/sync_server.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <thread>
#include <utility>
#include <vector>

#include "controlplane/grpc/access.h"

namespace wsgate::controlplane {
namespace {

using wsgate::v1::SyncRequest;
using wsgate::v1::SyncResponse;

// A data plane whose stream ended stays in the inventory this long, shown as disconnected.
constexpr auto kForgetAfter = std::chrono::minutes(10);
// Commit times kept for the push histogram: an ACK for an older version is not timed.
constexpr size_t kCommitTimesKept = 256;

google::protobuf::Timestamp Now() {
  return google::protobuf::util::TimeUtil::GetCurrentTime();
}

}  // namespace

wsgate::v1::ConfigSnapshot MakeConfigSnapshot(const std::vector<wsgate::v1::Route>& routes,
                                              const wsgate::v1::Limits& defaults,
                                              uint64_t version) {
  wsgate::v1::ConfigSnapshot s;
  s.set_version(version);
  for (const wsgate::v1::Route& r : routes) *s.mutable_config()->add_routes() = r;
  *s.mutable_config()->mutable_default_limits() = defaults;
  *s.mutable_committed_at() = Now();
  return s;
}

struct SyncServer::Stream {
  grpc::ServerContext* context = nullptr;
  Clock::time_point opened;
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<const SyncResponse> next;  // guarded by mu: the newest snapshot not yet sent
  bool done = false;                         // guarded by mu
};

SyncServer::SyncServer()
    : registry_(std::make_shared<prometheus::Registry>()) {
  dataplanes_ = &prometheus::BuildGauge()
                     .Name("wsgate_dataplanes")
                     .Help("Data planes known to this control plane, by the state of their stream")
                     .Register(*registry_);
  connected_ = &dataplanes_->Add({{"state", "connected"}});
  disconnected_ = &dataplanes_->Add({{"state", "disconnected"}});
  push_seconds_ = &prometheus::BuildHistogram()
                       .Name("wsgate_config_push_seconds")
                       .Help("From a config commit to a data plane's ACK of that version (data "
                             "planes connected at the commit)")
                       .Register(*registry_)
                       .Add({}, prometheus::Histogram::BucketBoundaries{
                                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                    2.5, 5, 10});
  nacks_ = &prometheus::BuildCounter()
                .Name("wsgate_dataplane_nacks_total")
                .Help("Config versions a data plane refused to apply (NACK)")
                .Register(*registry_)
                .Add({});
}

SyncServer::~SyncServer() { Shutdown(); }

void SyncServer::Publish(wsgate::v1::ConfigSnapshot snapshot) {
  auto response = std::make_shared<SyncResponse>();
  const uint64_t version = snapshot.version();
  *response->mutable_snapshot() = std::move(snapshot);
  std::lock_guard<std::mutex> lock(mu_);
  current_ = response;
  committed_[version] = Clock::now();
  while (committed_.size() > kCommitTimesKept) committed_.erase(committed_.begin());
  for (auto& [generation, stream] : streams_) {
    std::lock_guard<std::mutex> slock(stream->mu);
    stream->next = response;
    stream->cv.notify_one();
  }
}

void SyncServer::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  shut_down_ = true;
  for (auto& [generation, stream] : streams_) {
    {
      std::lock_guard<std::mutex> slock(stream->mu);
      stream->done = true;
      stream->cv.notify_one();
    }
    // Ends the handler's Read now instead of at the gRPC server's shutdown deadline.
    stream->context->TryCancel();
  }
}

grpc::Status SyncServer::Sync(grpc::ServerContext* context,
                              grpc::ServerReaderWriter<SyncResponse, SyncRequest>* rw) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kWrite, "wsgate.v1.DataPlaneService/Sync");
      !denied.ok()) {
    spdlog::warn("sync: stream from {} refused: {}", context->peer(), denied.error_message());
    return denied;
  }
  SyncRequest first;
  if (!rw->Read(&first)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the stream ended before its hello");
  }
  if (!first.has_hello()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "hello: the first message on a Sync stream must be a hello");
  }
  const wsgate::v1::DataPlaneHello& hello = first.hello();
  if (hello.id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "hello.id: required");
  }

  Stream stream;
  stream.context = context;
  stream.opened = Clock::now();
  uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
    generation = next_generation_++;
    Record& r = records_[hello.id()];
    r.generation = generation;
    wsgate::v1::DataPlaneInventory& info = r.info;
    info.set_id(hello.id());
    info.set_address(hello.address());
    info.set_build_version(hello.build_version());
    info.set_workers(hello.workers());
    info.set_bus(hello.bus());
    info.set_applied_version(hello.serving_version());
    info.set_state("connected");
    *info.mutable_connected_since() = Now();
    *info.mutable_last_seen() = info.connected_since();
    // Resynchronisation by version: nothing to send when it already serves the current one.
    if (current_ && current_->snapshot().version() != hello.serving_version()) {
      stream.next = current_;
    }
    streams_[generation] = &stream;
    UpdateStateGauges();
  }
  // Tells the data plane it is accepted even when no snapshot follows (it is up to date).
  context->AddInitialMetadata("x-wsgate-sync", "accepted");
  rw->SendInitialMetadata();
  spdlog::info("sync: data plane {} ({}) connected from {}, serving version {}", hello.id(),
               hello.address(), context->peer(), hello.serving_version());
  Serve(&stream, generation, hello.id(), rw);
  return grpc::Status::OK;
}

void SyncServer::Serve(Stream* stream, uint64_t generation, const std::string& id,
                       grpc::ServerReaderWriter<SyncResponse, SyncRequest>* rw) {
  std::thread writer([stream, rw] {
    std::unique_lock<std::mutex> slock(stream->mu);
    for (;;) {
      stream->cv.wait(slock, [stream] { return stream->done || stream->next != nullptr; });
      if (stream->done) return;
      std::shared_ptr<const SyncResponse> next = std::move(stream->next);
      stream->next = nullptr;
      slock.unlock();
      const bool ok = rw->Write(*next);
      slock.lock();
      if (!ok) return;
    }
  });

  SyncRequest request;
  bool replaced = false;
  while (!replaced && rw->Read(&request)) {
    std::lock_guard<std::mutex> lock(mu_);
    Record& r = records_[id];
    if (r.generation != generation) {
      replaced = true;  // a newer stream of the same data plane owns the record now
      break;
    }
    wsgate::v1::DataPlaneInventory& info = r.info;
    *info.mutable_last_seen() = Now();
    if (request.has_ack()) {
      const wsgate::v1::ConfigAck& ack = request.ack();
      info.set_applied_version(ack.serving_version());
      if (!ack.applied()) {
        nacks_->Increment();
        info.set_last_nack_error(ack.error());
        info.set_last_nack_version(ack.version());
        spdlog::warn("sync: data plane {} refused config version {}: {}", id, ack.version(),
                     ack.error());
      } else if (auto it = committed_.find(ack.version());
                 it != committed_.end() && it->second >= stream->opened) {
        push_seconds_->Observe(std::chrono::duration<double>(Clock::now() - it->second).count());
      }
    } else if (request.has_sample()) {
      info.set_active_connections(request.sample().inventory().active_connections());
      info.set_snapshot_age_seconds(request.sample().snapshot_age_seconds());
    }
    // Session events and command results belong to the session commands, not built yet.
  }

  {
    std::lock_guard<std::mutex> lock(mu_);
    streams_.erase(generation);
    {
      std::lock_guard<std::mutex> slock(stream->mu);
      stream->done = true;
      stream->cv.notify_one();
    }
    auto it = records_.find(id);
    if (it != records_.end() && it->second.generation == generation) {
      it->second.info.set_state("disconnected");
      *it->second.info.mutable_last_seen() = Now();
      it->second.gone_since = Clock::now();
    }
    UpdateStateGauges();
  }
  writer.join();
  spdlog::info("sync: data plane {} {}", id, replaced ? "reconnected (old stream ended)"
                                                      : "disconnected");
}

void SyncServer::UpdateStateGauges() {
  Prune();
  double up = 0, down = 0;
  for (const auto& [id, r] : records_) (r.info.state() == "connected" ? up : down) += 1;
  connected_->Set(up);
  disconnected_->Set(down);
}

void SyncServer::Prune() {
  const auto now = Clock::now();
  for (auto it = records_.begin(); it != records_.end();) {
    const bool forget = it->second.info.state() == "disconnected" &&
                        now - it->second.gone_since > kForgetAfter;
    it = forget ? records_.erase(it) : std::next(it);
  }
}

void SyncServer::FillInventory(wsgate::v1::Inventory* inventory) {
  std::lock_guard<std::mutex> lock(mu_);
  UpdateStateGauges();
  for (const auto& [id, r] : records_) *inventory->add_data_planes() = r.info;
}

}  // namespace wsgate::controlplane
