// One data-plane worker: a thread that owns an io_context, a websocketpp server endpoint (client
// legs of every kind but `websocket`), a websocketpp client endpoint (external_client's outbound
// connections), the ProxyRelays of its `websocket` connections, its own SO_REUSEPORT listener and
// every connection accepted on that listener, for the connection's whole life.
//
// Threading: everything in this class runs on the worker thread, except the members marked
// "thread-safe", which only post work into the io_context or read atomics.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/health_state.h"
#include "dataplane/bus/message_bus.h"
#include "dataplane/limits/admission.h"
#include "dataplane/limits/connection_cap.h"
#include "dataplane/stats/handshake_refusals.h"
#include "dataplane/routing/snapshot.h"
#include "dataplane/sessions/session_events.h"
#include "dataplane/sessions/session_ids.h"
#include "dataplane/sessions/session_info.h"
#include "dataplane/stats/route_stats.h"
#include "dataplane/transport/request_head.h"
#include "dataplane/transport/ws_config.h"

namespace wsgate::dataplane::transport {

class ExternalClientRegistry;  // outbound_kinds.h
class OutboundKinds;           // outbound_kinds.h
class FanoutKinds;             // fanout_kinds.h
class RoomRegistry;            // room/room_registry.h
class FanoutEvents;            // fanout_kinds.h
class ProxyRelay;              // proxy_relay.h
struct RelayContext;           // proxy_relay.h

struct WorkerOptions {
  // A client that has not sent a complete request head by then is disconnected.
  std::chrono::milliseconds head_timeout{10000};
  // Shared by all workers of a data plane (external_client per-client caps and the REST
  // listing); the data plane fills it in when null.
  std::shared_ptr<ExternalClientRegistry> external_clients;
  // Backpressure: once a leg has more than this many bytes queued for sending, the worker stops
  // reading the leg that feeds it, and reads again once the queue is below half of it. What a
  // proxied connection holds is then bounded by about twice this (websocketpp's queue plus the
  // batch being written) plus one message. Used on routes whose limits set no send_queue_bytes.
  size_t send_queue_bytes = size_t{1} << 20;
  // The connection caps and handshake rate, shared by all workers of a data plane; the
  // data plane fills it in when null.
  std::shared_ptr<limits::Admission> admission;
  // Session registry: shared by all workers of a data plane (unique ids, events); the
  // data plane fills them in when null.
  std::shared_ptr<sessions::SessionIdRegistry> session_ids;
  std::shared_ptr<sessions::SessionEventHub> session_events;
  // The process-wide cap on open client connections (connection_cap.h), shared by all workers;
  // the data plane fills it in when null (from the descriptor limit).
  std::shared_ptr<limits::ConnectionCap> connection_cap;
  // Where refused connections are counted (the data plane's StatsRegistry); a worker made
  // without one (tests) counts into its own.
  HandshakeRefusals* refusals = nullptr;
  // The data plane's options for the kinds (DataPlaneOptions, which StartDataPlane copies here):
  // pubsub liveness and the outbound kinds' event log.
  std::chrono::milliseconds pubsub_ping_interval{30000};
  std::chrono::milliseconds pubsub_ping_timeout{10000};
  bool debug_events = false;
};

class Worker {
 public:
  // `on_drained` is called on the worker thread whenever the worker's last connection goes away.
  Worker(int index, SnapshotPtr initial, common::HealthState* health, WorkerOptions options,
         std::function<void()> on_drained);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Called once, before StartThread, from the thread that creates the data plane.
  absl::Status Listen(const boost::asio::ip::tcp::endpoint& endpoint);
  uint16_t local_port() const { return local_port_; }
  // The room and pubsub kinds' message bus (created with every worker's executor, so after the
  // workers) and the data plane's room registry. Called once, before StartThread; without it
  // those kinds answer 503. `bus` must outlive the worker thread.
  void AttachBus(bus::MessageBus* bus, std::shared_ptr<RoomRegistry> rooms,
                 std::shared_ptr<FanoutEvents> events);
  boost::asio::io_context& io_context() { return ioc_; }
  void StartThread();

  // Thread-safe.
  void PostSnapshot(SnapshotPtr snapshot);
  void PostStopAccepting();
  void PostCloseAll(uint16_t code, std::string reason);
  // Up to `n` open client connections not closed by an earlier call (the paced drain); sessions
  // still in their handshake are left to PostCloseAll.
  void PostCloseSome(size_t n, uint16_t code, std::string reason);
  // Stops the io_context and joins the thread. Must not be called from the worker thread.
  void StopAndJoin();
  uint64_t applied_version() const { return applied_version_.load(std::memory_order_relaxed); }
  int64_t live_connections() const { return live_connections_.load(std::memory_order_relaxed); }
  bool is_current_thread() const { return std::this_thread::get_id() == thread_id_.load(); }

  // Thread-safe: runs `fn` on the worker thread (between two events). The one way other
  // threads reach the session registry below: see run_on_workers.h.
  void Post(std::function<void()> fn);

  // Session registry. Worker thread only (through Post / RunOnEveryWorker).
  // The worker's sessions matching `query`, at most query.limit after query.after, in order.
  sessions::SessionPage QuerySessions(const sessions::SessionQuery& query) const;
  std::map<std::string, sessions::RouteSessionCounts> CountSessions() const;
  // The session when this worker holds it.
  std::optional<sessions::SessionInfo> FindSessionInfo(const std::string& id) const;
  enum class SessionOpResult { kDone, kNotFound, kNotOpen };
  SessionOpResult CloseSession(const std::string& id, uint16_t code, const std::string& reason);
  SessionOpResult SendToSession(const std::string& id, const std::string& payload, bool binary);

 private:
  struct Session;
  using SessionPtr = std::shared_ptr<Session>;
  using WeakSession = std::weak_ptr<Session>;

  void Run();
  void Accept();
  void OnAccept(ServerConnectionPtr con, const boost::system::error_code& ec);
  void TryReadHead(const SessionPtr& s);
  // Reads the head again once the socket is readable (more bytes, or EOF).
  void WaitForMoreHead(const SessionPtr& s);
  void OnHead(const SessionPtr& s, const RequestHead& head);
  // Refuses a handshake before anything is opened for it: malformed (400), shutting down (503),
  // or `missing_backend` (503 with that body) when it is not null. True when it refused.
  bool RefuseHandshake(const SessionPtr& s, const char* missing_backend);
  // Answers an upgrade whose RFC 6455 fields are wrong (version, key) ourselves: websocketpp
  // would accept old drafts (hybi-07/08, Hixie-76) past every admission check, or answer 500.
  void RefuseBadHandshake(const SessionPtr& s, RequestHead::HandshakeProblem problem);
  // Counts a connection refused before a route kind took it, and logs it at most once per
  // reason every kRefusalLogInterval (a slowloris flood must not flood the log either).
  void CountRefusal(RefusalReason reason, const std::string& client_ip);
  // Accept failed for lack of descriptors: sheds what waits in the backlog with a 503 (using
  // the spare descriptor) and retries with a growing backoff instead of spinning.
  void OnAcceptExhausted(const boost::system::error_code& ec);
  void InstallClientHandlers(const SessionPtr& s);
  void StartClient(const SessionPtr& s);
  // Kind `websocket`: hands the connection to a ProxyRelay (proxy_relay.h).
  void StartRelay(const SessionPtr& s, const RequestHead& head);
  void AbortBeforeStart(const SessionPtr& s);
  // `extra_headers`: complete header lines ("Name: value\r\n") added to the response.
  void RejectBeforeStart(const SessionPtr& s, int status, std::string_view phrase,
                         std::string_view body, std::string_view extra_headers = {});
  void DrainBeforeClose(const SessionPtr& s);
  void Finish(const SessionPtr& s);

  // websocketpp callbacks, client leg.
  bool OnValidate(const SessionPtr& s);
  void OnHttp(const SessionPtr& s);
  void OnClientOpen(const SessionPtr& s);
  void OnClientMessage(const SessionPtr& s, MessagePtr msg);
  void OnClientClose(const SessionPtr& s);
  void OnClientFail(const SessionPtr& s);
  void OnClientTerminated(const SessionPtr& s);

  // The relay's reports about a `websocket` session (RelayHost in proxy_relay.h).
  class RelayHostImpl;
  void OnRelayOpen(const SessionPtr& s, const std::string& subprotocol, double connect_seconds);
  void OnRelayClientClosed(const SessionPtr& s, uint16_t code, const std::string& reason);

  // Backpressure (see WorkerOptions::send_queue_bytes).
  void PauseClientReading(const SessionPtr& s);
  // Starts (or keeps) the poll that resumes a paused leg once the other leg has drained.
  void PollUntilDrained(const SessionPtr& s);
  void ArmDrainPoll(const SessionPtr& s);
  void OnDrainPoll(const SessionPtr& s);

  void CloseClient(Session& s, uint16_t code, const std::string& reason);
  void CloseUpstream(Session& s, uint16_t code, const std::string& reason);
  RouteWorkerCounters& CountersFor(const RouteConfig* route);

  // Limits (docs/limits.md; dataplane/limits/README.md). Every refusal, drop and
  // limit-driven close goes through CountLimitHit (`limit` is the Limits field name).
  void CountLimitHit(Session& s, std::string_view limit);
  // Admission caps and handshake rate: true when it refused the handshake (503/429).
  // `websocketpp_can_answer`: a handshake websocketpp would parse (version 13, valid key); any
  // other is answered by the worker itself.
  bool RefuseByAdmission(const SessionPtr& s, const RouteMatch& match, bool websocketpp_can_answer);
  // Message rate on a client message: false when the message must not go further.
  bool AdmitClientMessage(Session& s);
  // Sends towards the client under the route's send-queue bound. True when the caller should
  // pause the feeding leg (the built-in backpressure, used when the route sets no bound).
  bool SendToClientBounded(const SessionPtr& s, const MessagePtr& msg);
  void OnLimitsOpen(const SessionPtr& s);
  // Applies the limits of a new snapshot to open sessions whose route still exists.
  void ApplyLimitsToOpenSessions();
  void CloseForLimit(Session& s, std::string_view limit, uint16_t code, const std::string& reason);
  void ArmLimitsSweep();
  void LimitsSweep();

  const int index_;
  const WorkerOptions options_;
  common::HealthState* const health_;
  const std::function<void()> on_drained_;

  // Declared first so that it is destroyed last: sockets and timers of connections that pending
  // handlers still hold must go before the io_context does.
  boost::asio::io_context ioc_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  ServerEndpoint server_;
  ClientEndpoint client_;
  // Masking keys for frames the relay writes upstream itself and upstream handshake keys: the
  // same kind of generator as the client endpoint's own.
  SecureRandom32 mask_rng_;
  // What every ProxyRelay of this worker shares: the read buffer, the masking-key generator.
  std::unique_ptr<RelayContext> relay_ctx_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer accept_retry_timer_;
  boost::asio::ip::tcp::endpoint accept_peer_;  // filled in by the pending accept
  uint16_t local_port_ = 0;
  // Opened at start and given up only while accept() lacks a descriptor, so that the
  // connections waiting in the backlog can still be answered (503) and closed.
  int spare_fd_ = -1;
  std::chrono::milliseconds accept_backoff_{0};
  uint64_t accept_failures_ = 0;   // since the last warning
  int64_t accept_warned_ms_ = 0;
  // Refused connections: a worker made without a data plane counts into its own.
  std::unique_ptr<HandshakeRefusals> own_refusals_;
  HandshakeRefusals* refusals_ = nullptr;
  struct RefusalLogState {
    int64_t logged_ms = 0;
    uint64_t suppressed = 0;
  };
  std::array<RefusalLogState, static_cast<int>(RefusalReason::kCount)> refusal_log_{};

  // The http_bridge and external_client route kinds (outbound_kinds.h).
  std::unique_ptr<OutboundKinds> outbound_kinds_;
  // The room and pubsub route kinds (fanout_kinds.h).
  std::unique_ptr<FanoutKinds> fanout_kinds_;
  SnapshotPtr snapshot_;
  bool closing_all_ = false;
  uint16_t close_all_code_ = 1001;
  std::string close_all_reason_;
  uint64_t next_session_id_ = 1;
  std::unordered_map<uint64_t, SessionPtr> sessions_;
  // Round-robin position per route name.
  std::unordered_map<std::string, uint32_t> next_upstream_;
  // Counters for connections that matched no route (HTTP endpoints, 404s): never exported.
  RouteWorkerCounters unrouted_counters_;
  // Limits: the sweep that enforces idle timeout, lifetime, pings and (for the kinds
  // that send on their own) the send-queue bound; one timer per worker, armed only while some
  // open connection has such a limit. `limits_now_ms_` is the coarse clock messages store.
  std::unique_ptr<boost::asio::steady_timer> limits_timer_;
  bool limits_sweep_armed_ = false;
  int64_t limits_now_ms_ = 0;
  // One peek buffer per worker: the head is re-parsed from the start on every peek.
  std::array<char, kMaxRequestHeadBytes> head_buf_;
  // Bytes read and thrown away after a rejection (contents never looked at).
  std::array<char, 4096> drain_buf_;

  std::atomic<uint64_t> applied_version_{0};
  std::atomic<int64_t> live_connections_{0};
  std::atomic<std::thread::id> thread_id_{};
  std::thread thread_;

  // Session registry.
  // Gives `s` its id and the fields the registry reports; called once the route is known.
  void RegisterSession(const SessionPtr& s, const RequestHead& head,
                       const std::vector<std::pair<std::string, std::string>>& params);
  sessions::SessionInfo DescribeSession(const Session& s) const;
  sessions::SessionState StateOf(const Session& s) const;
  Session* FindSession(const std::string& id) const;
  // Publishes an event about `s` to the watchers; free when nobody watches. The limits code
  // calls EmitLimitHit(s, "<limit name>") for every limit hit.
  void EmitSessionEvent(const Session& s, sessions::SessionEvent::Type type,
                        uint16_t close_code = 0, std::string_view close_reason = {},
                        std::string_view limit = {});
  void EmitLimitHit(const Session& s, std::string_view limit) {
    EmitSessionEvent(s, sessions::SessionEvent::Type::kLimitHit, 0, {}, limit);
  }
  // Registered sessions by id (the Session objects are owned by sessions_).
  std::unordered_map<std::string, Session*> by_sid_;
  uint64_t next_generated_sid_ = 1;
};

}  // namespace wsgate::dataplane::transport
