// The `websocket` route kind's data path: one client connection and its upstream leg,
// relayed by wsgate's own framing on Asio instead of two websocketpp connections.
//
// What it does, in order:
// 1. Takes the client socket whose request head the worker has already peeked and routed,
//    consumes the head, connects the upstream (literal address, or a host name through Asio's
//    resolver), sends the upstream handshake the worker built and reads the upstream's answer.
// 2. Accepted: writes the 101 to the client (the upstream's subprotocol, which must be one the
//    client offered) and starts relaying. Refused or timed out: answers 502 or 504 and closes.
// 3. Relays data frames verbatim, as their bytes arrive (cut-through): a client's masked frame
//    goes upstream with the client's own masking key (a proxy that forwards the exact bytes
//    needs no new key: the bytes on the wire are as unpredictable as the client made them), and
//    an upstream's frame goes to the client as it came. No message is reassembled or copied
//    beyond one append to the destination's output buffer. Everything read in one wakeup is
//    written with one send() per destination.
// 4. Handles hop by hop what a proxy terminates: pings are answered on the leg they came from,
//    pongs are consumed (the client's clear the route's ping deadline), a close frame is echoed
//    on its leg and replayed on the other with the same code and reason, an abrupt end of one
//    leg closes the other with 1011 (towards the client) or 1001 (towards the upstream).
//
// Per message it calls the host (the worker's session) to count and to apply the route's
// limits: the message rate at a client message's first frame, the size as soon as a frame
// header makes a message too big (1009, before any of its payload is buffered), the send-queue
// bound of the client leg, the built-in backpressure of both legs.
//
// Threading: everything runs on the worker thread that owns the io_context. Both sockets are
// registered with the worker's EdgePoller (edge_poller.h); an edge is followed by recv() into
// the worker's scratch buffer, so an idle connection holds no read buffer at all
// (dataplane/relay/README.md, "Readiness"). The host is told when both legs are gone.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/codec/frame_scanner.h"
#include "dataplane/kinds/websocket/edge_poller.h"
#include "dataplane/transport/secure_rng.h"

struct ssl_st;  // OpenSSL's SSL, kept out of this header

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace wsgate::dataplane::transport {

// What the relay reports to the worker's session. Called on the worker thread, possibly from
// inside a relay method the worker itself called (e.g. AdmitClientMessage may close the client).
class RelayHost {
 public:
  virtual ~RelayHost() = default;
  // The upstream accepted and the client has its 101: the session is open.
  virtual void OnOpen(const std::string& subprotocol, double upstream_connect_seconds) = 0;
  // The handshake was answered with this HTTP status (502, 503, 504) instead.
  virtual void OnRefused(int status) = 0;
  // A wss:// upstream's TLS handshake failed (`reason`: the certificate check's verdict or
  // OpenSSL's error); OnRefused(502) follows.
  virtual void OnUpstreamTlsFailed(const std::string& reason) { (void)reason; }
  // A client data message starts: false drops it (the host applied the rate limit's policy).
  virtual bool AdmitClientMessage() = 0;
  // A whole data message went through (counted at its last frame; payload bytes).
  virtual void OnClientMessage(uint64_t bytes) = 0;
  virtual void OnUpstreamMessage(uint64_t bytes) = 0;
  virtual void OnClientPong() = 0;
  // A limit the relay enforces itself was hit (max_message_bytes; send_queue_bytes for each
  // message drop_oldest drops).
  virtual void OnLimitHit(std::string_view limit) = 0;
  // The client's queue passed the route's send_queue_bytes under the `close` policy.
  virtual void OnSendQueueExceeded() = 0;
  // A leg stopped being read because the other leg's queue is full.
  virtual void OnBackpressure() = 0;
  // The client leg is gone: `code` is the close code both sides agreed on (1006 if none).
  virtual void OnClientClosed(uint16_t code, const std::string& reason) = 0;
  // Both legs are gone; the relay does nothing more.
  virtual void OnDone() = 0;
};

// Per worker: what every relay of the worker shares (the worker owns it).
struct RelayContext {
  RelayContext(boost::asio::io_context& io, SecureRandom32& r) : ioc(io), rng(r), poller(io) {}
  boost::asio::io_context& ioc;
  SecureRandom32& rng;  // masking keys of frames the relay writes upstream itself
  EdgePoller poller;    // readiness of every relay socket of the worker
  // Reads land here and are consumed before the next read: one buffer for all connections.
  std::vector<char> scratch = std::vector<char>(64 * 1024);
  // Built-in backpressure: stop reading a leg while the other leg has more queued than this.
  size_t backpressure_bytes = size_t{1} << 20;
};

struct RelayLimits {
  uint64_t max_message_bytes = 0;  // 0: none
  uint64_t send_queue_bytes = 0;   // the client leg's bound; 0: built-in backpressure only
  bool drop_oldest = false;        // policy above the bound: drop held messages, else close
};

class ProxyRelay : public std::enable_shared_from_this<ProxyRelay> {
 public:
  struct ClientSide {
    size_t head_bytes = 0;                  // the request head to consume from the socket
    std::string accept;                     // Sec-WebSocket-Accept for the client's key
    std::vector<std::string> subprotocols;  // the client's offers
  };
  struct UpstreamSide {
    std::string host;  // literal address or host name
    uint16_t port = 80;
    std::string request;          // the handshake request head (ws_handshake.h)
    std::string expected_accept;  // for the key in `request`
    std::chrono::milliseconds connect_timeout{5000};
    // wss://: TLS over the connection, verified as `tls` says (null: 502), SNI and the host
    // name check against `server_name` (empty: `host`).
    bool secure = false;
    std::shared_ptr<boost::asio::ssl::context> tls;
    std::string server_name;
  };
  enum class State { kConnecting, kOpen, kClosing, kClosed };

  // `client_fd`: the accepted client socket, already out of Asio (released) and non-blocking;
  // the relay owns it from here (-1: the hand-over failed, Start ends the session).
  ProxyRelay(RelayContext& ctx, int client_fd, std::unique_ptr<RelayHost> host);
  ~ProxyRelay();
  ProxyRelay(const ProxyRelay&) = delete;
  ProxyRelay& operator=(const ProxyRelay&) = delete;

  void Start(ClientSide client, UpstreamSide upstream, RelayLimits limits);
  // Live limit updates (LimitService, PutRoute): apply to the next message.
  void SetLimits(RelayLimits limits) { limits_ = limits; }

  // The worker's controls. Codes are sent as given (the caller validated them); 1005 sends an
  // empty close frame. Closing a leg that is already closing or gone does nothing.
  void CloseClient(uint16_t code, std::string_view reason);
  void CloseUpstream(uint16_t code, std::string_view reason);
  // Before the 101 only: answers `status` with `body` and ends both legs (false if too late).
  bool Refuse(int status, std::string_view body);
  // A whole message to the client, after any message being forwarded (false: not open).
  bool SendToClient(std::string_view payload, bool binary);
  bool PingClient();
  // The same ping on the upstream leg: an upstream that stalls (a hung process, a peer gone
  // without a FIN) is seen only by the pong that does not come back.
  bool PingUpstream();
  // Once the upstream leg is closing or gone its pong no longer matters: the close handshake
  // has its own deadline.
  bool awaiting_upstream_pong() const { return upstream_ping_outstanding_ && upstream_open(); }

  State client_state() const;
  bool upstream_open() const { return opened_ && !upstream_.done && !upstream_.close_sent; }
  bool connecting() const { return !opened_ && !refused_; }
  // Bytes queued towards the client: written by nobody yet, including held messages.
  size_t client_queued_bytes() const { return client_.queued() + held_bytes_; }
  const std::string& subprotocol() const { return subprotocol_; }

 private:
  // One socket and both directions of its bytes: `in` what we read from it, `out` what we
  // write to it.
  struct Leg final : EdgePoller::Watcher {
    Leg(ProxyRelay* r, int socket_fd, bool is_client)
        : relay(r), fd(socket_fd), scanner(is_client), client(is_client) {}
    void OnEvents(uint32_t events) override { relay->OnEvents(*this, events); }
    ProxyRelay* const relay;
    // The client's socket comes from Asio's acceptor (released from Asio by the worker); the
    // upstream's is the relay's own. Registered with the worker's EdgePoller.
    int fd = -1;
    // Its byte I/O, chosen once when the leg is set up: plain recv()/send(), or SSL_read()/
    // SSL_write() over `ssl` on the same non-blocking fd (proxy_relay_tls.cc). Same contract
    // either way: > 0 bytes, 0 end of stream, -1 with errno (EAGAIN: wait for an edge).
    ssize_t (*recv_some)(Leg& leg, char* buf, size_t len) = &PlainRecv;
    ssize_t (*send_some)(Leg& leg, const char* buf, size_t len) = &PlainSend;
    ssl_st* ssl = nullptr;
    bool tls_handshaking = false;
    bool tls_failed = false;            // a fatal TLS error: no close_notify after it
    bool tls_read_wants_write = false;  // SSL_read needs EPOLLOUT before it can go on
    bool tls_write_wants_read = false;  // SSL_write needs EPOLLIN before it can go on
    uint64_t poll_id = 0;
    bool read_ready = false;  // an edge said readable and no recv() has drained it since
    bool rdhup = false;       // the peer's FIN (or an error) is pending
    bool connecting = false;  // the upstream's non-blocking connect is in flight
    relay::FrameScanner scanner;
    const bool client;
    // Input side.
    bool paused = false;    // backpressure: not read until the other leg drains
    bool forwarding = false;  // the current frame's payload goes to the other leg
    bool dropping = false;    // the current data message is dropped (rate limit, closing)
    bool holding = false;     // the current message goes to `hold_current_` (drop_oldest)
    bool in_control = false;  // the current frame is a control frame we handle
    std::string control;      // its payload so far (at most 125 bytes)
    bool close_received = false;
    bool input_failed = false;  // it broke the protocol: nothing more it sends is looked at
    // Output side.
    std::string out;
    size_t sent = 0;
    bool writing = false;  // send() hit EAGAIN: waiting for the EPOLLOUT edge
    bool mid_frame = false;    // `out` ends inside a forwarded frame
    bool mid_message = false;  // `out` ends inside a forwarded fragmented message
    std::string pending_control;  // frames to put in at the next frame boundary
    std::string pending_data;     // frames to put in at the next message boundary
    bool close_sent = false;
    bool finishing = false;  // closed for writing; reading until the peer's FIN
    bool done = false;       // socket closed
    size_t queued() const { return out.size() - sent + pending_control.size() + pending_data.size(); }
  };

  Leg& Other(Leg& leg) { return &leg == &client_ ? upstream_ : client_; }

  // Byte I/O of a leg (Leg::recv_some / send_some).
  static ssize_t PlainRecv(Leg& leg, char* buf, size_t len);
  static ssize_t PlainSend(Leg& leg, const char* buf, size_t len);
  static ssize_t TlsRecv(Leg& leg, char* buf, size_t len);
  static ssize_t TlsSend(Leg& leg, const char* buf, size_t len);
  // wss:// upstreams: the TLS handshake after the TCP connect, then the WebSocket handshake.
  void StartUpstreamTls();
  void ContinueUpstreamTls();
  // Readiness a TLS leg waited for in the other direction (a TLS record both ways).
  void OnTlsEvents(Leg& leg, uint32_t events);
  // close_notify (when `notify` and the handshake was done), then the SSL object goes.
  void EndTls(Leg& leg, bool notify);
  void TlsCloseNotify(Leg& leg);  // before shutdown(SHUT_WR) of a TLS leg

  // Set-up.
  void ConsumeHead();
  void ClientGoneBeforeAnswer();
  void ConnectUpstream(const UpstreamSide& up);
  void ConnectTo(size_t index);  // upstream_endpoints_[index], or 502 past the end
  void OnUpstreamConnected();
  void OnUpstreamAnswer();
  void OpenRelay(size_t answer_head_bytes);
  void WriteHttpAndClose(int status, std::string_view body);

  // Reading and the frame loop.
  // Registers the client's socket with the poller (TCP_NODELAY on the way).
  bool RegisterClient();
  void OnEvents(Leg& leg, uint32_t events);
  void ReadLoop(Leg& leg);
  void PostRead(Leg& leg);
  void Process(Leg& src, const char* data, size_t size);
  void OnFrameStart(Leg& src);
  void OnFrameEnd(Leg& src);
  void OnControl(Leg& src, uint8_t opcode);
  void ProtocolError(Leg& src, uint16_t code, std::string_view reason);
  void AfterInput(Leg& src);

  // Writing.
  void AppendControl(Leg& dst, uint8_t opcode, std::string_view payload);
  void AppendData(Leg& dst, uint8_t opcode, std::string_view payload);
  void FrameInto(std::string& into, const Leg& dst, uint8_t opcode, std::string_view payload);
  void AtFrameBoundary(Leg& dst);
  void SendClose(Leg& leg, uint16_t code, std::string_view reason);
  void Flush(Leg& leg);
  void OnDrained(Leg& leg);
  void ResumeOther(Leg& leg);
  void MoveHeldToClient();

  // Ending.
  void LegGone(Leg& leg);      // EOF or error: the other leg learns abnormally
  void CloseSocket(Leg& leg);  // this leg is finished
  void ArmCloseTimer();
  void OnCloseTimeout();
  void MaybeDone();

  RelayContext& ctx_;
  std::unique_ptr<RelayHost> host_;
  Leg client_;
  Leg upstream_;
  boost::asio::steady_timer timer_;  // connect deadline, then the close-handshake deadline
  std::unique_ptr<boost::asio::ip::tcp::resolver> resolver_;
  bool upstream_secure_ = false;
  std::shared_ptr<boost::asio::ssl::context> upstream_tls_;
  std::string tls_name_;  // SNI and the name the certificate must carry
  std::vector<boost::asio::ip::tcp::endpoint> upstream_endpoints_;
  size_t next_endpoint_ = 0;
  RelayLimits limits_;
  ClientSide client_side_;
  std::string expected_accept_;
  std::string answer_;  // the upstream's answer while its head is incomplete
  std::string subprotocol_;
  std::chrono::steady_clock::time_point connect_started_;
  bool opened_ = false;
  bool refused_ = false;
  bool draining_ = false;  // refused: reading the client until EOF before closing
  bool close_timer_armed_ = false;
  bool done_reported_ = false;
  bool upstream_ping_outstanding_ = false;  // PingUpstream sent one; the upstream's pong clears it
  uint16_t client_close_code_ = 1006;
  std::string client_close_reason_;
  // The client broke the protocol; its close (this code and reason) waits until the upstream,
  // already sent its close, has answered what came before the bad frame (ProtocolError).
  bool client_failure_pending_ = false;
  uint16_t client_failure_code_ = 1002;
  std::string client_failure_reason_;
  // drop_oldest: whole messages waiting for the client's queue to go under the bound.
  std::deque<std::string> held_;
  size_t held_bytes_ = 0;
  std::string hold_current_;
};

}  // namespace wsgate::dataplane::transport
