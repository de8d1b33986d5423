// The worker's life: construction, its thread, and the calls other threads post to it.
#include "dataplane/transport/worker_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <exception>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "dataplane/codec/ws_handshake.h"
#include "dataplane/kinds/fanout/fanout_kinds.h"
#include "dataplane/codec/frame_in_place.h"
#include "dataplane/transport/http_response.h"

namespace wsgate::dataplane::transport {

using boost::asio::ip::tcp;
namespace wsclose = websocketpp::close::status;

Worker::Worker(int index, SnapshotPtr initial, common::HealthState* health, WorkerOptions options,
               std::function<void()> on_drained)
    : index_(index),
      options_(WithSessionRegistry(std::move(options))),
      health_(health),
      on_drained_(std::move(on_drained)),
      work_(boost::asio::make_work_guard(ioc_)),
      acceptor_(ioc_),
      accept_retry_timer_(ioc_),
      snapshot_(std::move(initial)) {
  applied_version_.store(snapshot_ ? snapshot_->version : 0, std::memory_order_relaxed);
  server_.clear_access_channels(websocketpp::log::alevel::all);
  server_.clear_error_channels(websocketpp::log::elevel::all);
  client_.clear_access_channels(websocketpp::log::alevel::all);
  client_.clear_error_channels(websocketpp::log::elevel::all);
  websocketpp::lib::error_code ec;
  server_.init_asio(&ioc_, ec);
  if (!ec) client_.init_asio(&ioc_, ec);
  if (ec) {
    // Only fails when called twice on one endpoint: a programming error.
    spdlog::critical("worker {}: websocketpp init_asio failed: {}", index_, ec.message());
    std::terminate();
  }
  outbound_kinds_ = std::make_unique<OutboundKinds>(
      ioc_, client_, index_, options_.external_clients, options_.debug_events);
  relay_ctx_ = std::make_unique<RelayContext>(ioc_, mask_rng_);
  relay_ctx_->backpressure_bytes = options_.send_queue_bytes;
  if (options_.refusals != nullptr) {
    refusals_ = options_.refusals;
  } else {
    own_refusals_ = std::make_unique<HandshakeRefusals>(index_ + 1);
    refusals_ = own_refusals_.get();
  }
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  server_.set_user_agent("wsgate");
  client_.set_user_agent("wsgate");
}

Worker::~Worker() {
  if (thread_.joinable()) StopAndJoin();
  // The thread is gone: tear down on this thread, connections before the endpoints and the
  // io_context (member order does the rest).
  boost::system::error_code ec;
  acceptor_.close(ec);
  sessions_.clear();
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

absl::Status Worker::Listen(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) {
    int one = 1;
    if (::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      ec.assign(errno, boost::system::system_category());
    }
  }
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (!ec) local_port_ = acceptor_.local_endpoint(ec).port();
  if (ec) {
    boost::system::error_code cec;
    acceptor_.close(cec);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", endpoint.address().to_string(),
                                               ":", endpoint.port(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

void Worker::AttachBus(bus::MessageBus* bus, std::shared_ptr<RoomRegistry> rooms,
                       std::shared_ptr<FanoutEvents> events) {
  fanout_kinds_ = std::make_unique<FanoutKinds>(index_, bus, std::move(rooms), std::move(events),
                                                options_.pubsub_ping_interval,
                                                options_.pubsub_ping_timeout);
}

void Worker::StartThread() {
  boost::asio::post(ioc_, [this] { Accept(); });
  thread_ = std::thread([this] {
    thread_id_.store(std::this_thread::get_id());
    Run();
  });
}

void Worker::Run() {
  for (;;) {
    try {
      ioc_.run();
      return;
    } catch (const std::exception& e) {
      // Our handlers throw nothing; this is a library throwing from a callback. Keep serving the
      // other connections.
      spdlog::error("worker {}: exception escaped a handler: {}", index_, e.what());
    }
  }
}

void Worker::StopAndJoin() {
  ioc_.stop();
  if (thread_.joinable()) thread_.join();
  // A StopAccepting posted just before may not have run before the loop stopped; the thread is
  // gone now, so closing here is safe and a stopped data plane never keeps a listener open
  // (the kernel would otherwise still complete handshakes into its backlog).
  boost::system::error_code ec;
  acceptor_.close(ec);
}

void Worker::PostSnapshot(SnapshotPtr snapshot) {
  boost::asio::post(ioc_, [this, snapshot = std::move(snapshot)]() mutable {
    uint64_t version = snapshot->version;
    snapshot_ = std::move(snapshot);
    ApplyLimitsToOpenSessions();
    applied_version_.store(version, std::memory_order_relaxed);
  });
}

void Worker::PostStopAccepting() {
  boost::asio::post(ioc_, [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
    accept_retry_timer_.cancel();
  });
}

void Worker::PostCloseAll(uint16_t code, std::string reason) {
  boost::asio::post(ioc_, [this, code, reason = std::move(reason)] {
    closing_all_ = true;
    close_all_code_ = code;
    close_all_reason_ = reason;
    // Closing can finish sessions synchronously: iterate over a copy.
    std::vector<SessionPtr> all;
    all.reserve(sessions_.size());
    for (const auto& [id, s] : sessions_) all.push_back(s);
    for (const SessionPtr& s : all) {
      if (s->relay) {
        if (!s->relay->Refuse(503, "server shutting down\n")) {
          s->relay->CloseClient(code, reason);
          s->relay->CloseUpstream(1001, "server shutting down");
        }
        continue;
      }
      if (!s->client_started) {
        // Still reading the head: drop it.
        AbortBeforeStart(s);
        continue;
      }
      if (s->client_open) CloseClient(*s, code, reason);
    }
  });
}

void Worker::PostCloseSome(size_t n, uint16_t code, std::string reason) {
  boost::asio::post(ioc_, [this, n, code, reason = std::move(reason)] {
    std::vector<SessionPtr> some;
    for (const auto& [id, s] : sessions_) {
      if (some.size() >= n) break;
      if (s->shutdown_closed) continue;
      const bool open = s->relay ? s->relay->client_state() == ProxyRelay::State::kOpen
                                 : s->client_started && s->client_open;
      if (open) some.push_back(s);
    }
    for (const SessionPtr& s : some) {
      s->shutdown_closed = true;
      if (s->relay) {
        s->relay->CloseClient(code, reason);
        s->relay->CloseUpstream(1001, "server shutting down");
      } else {
        CloseClient(*s, code, reason);
      }
    }
  });
}

}  // namespace wsgate::dataplane::transport
