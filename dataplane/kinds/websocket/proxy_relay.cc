#include "dataplane/kinds/websocket/proxy_relay.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>

#include "common/text/utf8.h"
#include "dataplane/codec/ws_handshake.h"
#include "dataplane/codec/frame_in_place.h"

namespace wsgate::dataplane::transport {

namespace {

using boost::asio::ip::tcp;
using relay::FrameScanner;

// How long a close handshake may take before the sockets are simply closed (websocketpp's
// default close_handshake_timeout, which the previous data path had).
constexpr std::chrono::seconds kCloseTimeout{5};
// An output buffer that grew beyond this for a large message is freed once written, so an idle
// connection keeps no large buffer.
constexpr size_t kKeptOutputCapacity = 16 * 1024;
// Reads per wakeup before yielding to other connections (each read can fill the scratch buffer).
constexpr int kReadsPerWakeup = 4;
// An upstream gone inside a binary fragment: at most this much padding finishes the fragment so
// that a close frame can follow (see LegGone); a longer rest ends the TCP connection instead.
constexpr uint64_t kMaxFragmentPadding = 1 << 20;

// Close codes a peer may send (RFC 6455 section 7.4): what websocketpp 0.8.2 accepted too.
bool ValidReceivedCloseCode(uint16_t code) {
  if (code < 1000 || code >= 5000) return false;
  if (code == 1004 || code == 1005 || code == 1006 || code == 1015) return false;
  return !(code >= 1016 && code <= 2999);
}


}  // namespace

ProxyRelay::ProxyRelay(RelayContext& ctx, int client_fd, std::unique_ptr<RelayHost> host)
    : ctx_(ctx),
      host_(std::move(host)),
      client_(this, client_fd, /*is_client=*/true),
      upstream_(this, -1, /*is_client=*/false),
      timer_(ctx.ioc) {}

// A relay normally ends through CloseSocket on both legs (which unregisters them) before its
// session lets it go. Only a worker being torn down drops a relay with a leg still open; the
// poller may be gone by then (it is destroyed before the io_context whose pending handlers hold
// relays), so only the descriptor is closed here.
ProxyRelay::~ProxyRelay() {
  for (Leg* leg : {&client_, &upstream_}) {
    if (leg->ssl != nullptr) EndTls(*leg, /*notify=*/false);
    if (leg->fd >= 0) ::close(leg->fd);
  }
}

// The client's socket left Asio's reactor (one epoll_ctl DEL, in the worker) for the worker's
// EdgePoller (one ADD), for the rest of its life: no per-wait re-registration, and EPOLLRDHUP.
bool ProxyRelay::RegisterClient() {
  if (client_.fd < 0) return false;
  int one = 1;
  ::setsockopt(client_.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  client_.poll_id = ctx_.poller.Add(client_.fd, &client_);
  return client_.poll_id != 0;
}

void ProxyRelay::OnEvents(Leg& leg, uint32_t events) {
  if (leg.done) return;
  if (leg.connecting) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) OnUpstreamConnected();
    return;
  }
  if (leg.ssl != nullptr) {
    OnTlsEvents(leg, events);  // a TLS leg's own dispatch (proxy_relay_tls.cc)
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    leg.read_ready = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) leg.rdhup = true;
    // The client is not read before the upstream accepted (its bytes wait in the kernel).
    if (!leg.paused && (opened_ || !leg.client || draining_)) ReadLoop(leg);
  }
  if (leg.done) return;
  if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && leg.writing) {
    leg.writing = false;
    Flush(leg);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading: the poller reports an edge (OnEvents), then recv() into the worker's scratch buffer
// until EAGAIN, or until a short read when no FIN is pending (EPOLLRDHUP tells: without it a
// short read does not prove the socket drained). The next edge comes with the next bytes.
// Restarting after a pause (no edge will come for bytes already there) begins with a recv()
// (PostRead).

ssize_t ProxyRelay::PlainRecv(Leg& leg, char* buf, size_t len) {
  return ::recv(leg.fd, buf, len, MSG_DONTWAIT);
}

ssize_t ProxyRelay::PlainSend(Leg& leg, const char* buf, size_t len) {
  return ::send(leg.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void ProxyRelay::PostRead(Leg& leg) {
  boost::asio::post(ctx_.ioc, [self = shared_from_this(), &leg] { self->ReadLoop(leg); });
}

void ProxyRelay::ReadLoop(Leg& leg) {
  std::vector<char>& buf = ctx_.scratch;
  for (int round = 0; round < kReadsPerWakeup; ++round) {
    if (leg.done || leg.paused || leg.fd < 0) return;
    ssize_t n = leg.recv_some(leg, buf.data(), buf.size());
    if (n > 0) {
      const bool drained = static_cast<size_t>(n) < buf.size() && !leg.rdhup;
      if (&leg == &upstream_ && !opened_) {
        answer_.append(buf.data(), static_cast<size_t>(n));
        OnUpstreamAnswer();
      } else if (!draining_ && !leg.finishing && !leg.close_received && !leg.input_failed) {
        Process(leg, buf.data(), static_cast<size_t>(n));
        AfterInput(leg);
      }  // else: after a close or a refusal nothing read matters any more
      if (leg.done || leg.paused || (&leg == &upstream_ && refused_)) return;
      if (drained) {
        leg.read_ready = false;
        return;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      leg.read_ready = false;
      return;
    }
    // EOF or an error.
    if (&leg == &upstream_ && !opened_) {
      Refuse(502, "upstream unavailable\n");
    } else {
      LegGone(leg);
    }
    return;
  }
  PostRead(leg);  // more may be waiting: let the worker's other connections go first
}

void ProxyRelay::Process(Leg& src, const char* data, size_t size) {
  Leg& dst = Other(src);
  FrameScanner& scanner = src.scanner;
  while (true) {
    size_t used = 0;
    FrameScanner::Step step = scanner.Next(data, size, &used);
    data += used;
    size -= used;
    switch (step) {
      case FrameScanner::Step::kNeedMore:
        return;
      case FrameScanner::Step::kError:
        ProtocolError(src, 1002, scanner.error_reason());
        return;
      case FrameScanner::Step::kFrameStart:
        OnFrameStart(src);
        break;
      case FrameScanner::Step::kPayload:
        if (src.forwarding) {
          (src.holding ? hold_current_ : dst.out).append(scanner.chunk(), scanner.chunk_size());
        } else if (src.in_control) {
          src.control.append(scanner.chunk(), scanner.chunk_size());
        }
        break;
      case FrameScanner::Step::kFrameEnd:
        OnFrameEnd(src);
        break;
    }
    if (src.done || src.close_received || src.input_failed) return;
  }
}

void ProxyRelay::OnFrameStart(Leg& src) {
  const relay::FrameHeader& h = src.scanner.header();
  Leg& dst = Other(src);
  src.forwarding = false;
  src.in_control = false;
  if (relay::IsControl(h.opcode)) {
    src.in_control = true;
    src.control.clear();
    return;
  }
  // The upstream's answers to what a failed client sent before its bad frame (ProtocolError):
  // they still go to the client, although the upstream has our close already.
  const bool answers_for_client = client_failure_pending_ && !src.client;
  if (limits_.max_message_bytes > 0 && src.scanner.message_bytes() > limits_.max_message_bytes) {
    // Known from the header: refused before any more of it is read or buffered.
    host_->OnLimitHit("max_message_bytes");
    ProtocolError(src, 1009, "message too big");
    return;
  }
  if (h.opcode != relay::kContinuation) {
    src.holding = false;
    src.dropping = dst.done || dst.close_sent || (src.close_sent && !answers_for_client);
    if (!src.dropping && src.client && !host_->AdmitClientMessage()) src.dropping = true;
    // The host may have closed the client just now (rate limit with the close policy).
    if (src.done || (src.close_sent && !answers_for_client) || dst.close_sent) src.dropping = true;
    if (!src.dropping && !src.client && limits_.drop_oldest && limits_.send_queue_bytes > 0 &&
        (!held_.empty() || client_.queued() > limits_.send_queue_bytes)) {
      src.holding = true;
      hold_current_.clear();
    }
  }
  // Nothing may follow a close frame (RFC 6455 section 5.5.1): not even the rest of a message
  // that was being forwarded when the close went out.
  if (dst.close_sent || dst.done || (src.close_sent && !answers_for_client)) src.dropping = true;
  if (src.dropping) return;
  src.forwarding = true;
  if (src.holding) {
    hold_current_.append(src.scanner.raw_header(), h.header_size);
    return;
  }
  dst.out.append(src.scanner.raw_header(), h.header_size);
  dst.mid_frame = true;
}

void ProxyRelay::OnFrameEnd(Leg& src) {
  const relay::FrameHeader& h = src.scanner.header();
  Leg& dst = Other(src);
  if (src.in_control) {
    src.in_control = false;
    OnControl(src, h.opcode);
    return;
  }
  const bool forwarded = src.forwarding && !src.holding;
  if (forwarded) {
    dst.mid_frame = false;
    dst.mid_message = !h.fin;
  }
  if (h.fin) {
    const uint64_t bytes = src.scanner.message_bytes();
    if (src.client) {
      host_->OnClientMessage(bytes);  // dropped ones too: they were received
    } else if (!src.dropping) {
      host_->OnUpstreamMessage(bytes);
    }
    if (src.holding) {
      held_bytes_ += hold_current_.size();
      held_.push_back(std::move(hold_current_));
      hold_current_ = std::string();
      src.holding = false;
      while (held_bytes_ > limits_.send_queue_bytes && held_.size() > 1) {
        held_bytes_ -= held_.front().size();
        held_.pop_front();
        host_->OnLimitHit("send_queue_bytes");
      }
    }
    src.dropping = false;
  }
  src.forwarding = false;
  if (forwarded) AtFrameBoundary(dst);
}

void ProxyRelay::OnControl(Leg& src, uint8_t opcode) {
  std::string& p = src.control;
  const relay::FrameHeader& h = src.scanner.header();
  if (h.masked) MaskInPlace(p.data(), p.size(), h.mask_key);
  switch (opcode) {
    case relay::kPing:
      AppendControl(src, relay::kPong, p);  // hop by hop: answered on the leg it came from
      return;
    case relay::kPong:
      if (src.client) {
        host_->OnClientPong();
      } else {
        upstream_ping_outstanding_ = false;
      }
      return;
    case relay::kClose: {
      uint16_t code = 1005;  // no status in the frame
      std::string reason;
      if (p.size() == 1) {
        ProtocolError(src, 1002, "close frame with a 1-byte payload");
        return;
      }
      if (p.size() >= 2) {
        code = static_cast<uint16_t>((static_cast<uint8_t>(p[0]) << 8) | static_cast<uint8_t>(p[1]));
        if (!ValidReceivedCloseCode(code)) {
          ProtocolError(src, 1002, "invalid close code");
          return;
        }
        reason.assign(p, 2, std::string::npos);
        // RFC 6455 section 5.5.1: the reason is UTF-8. Forwarding one that is not would hand
        // the other peer a frame it must fail on; the connection fails here instead (1007).
        if (!text::IsValidUtf8(reason)) {
          ProtocolError(src, 1007, "close reason is not valid UTF-8");
          return;
        }
      }
      src.close_received = true;
      SendClose(src, code, reason);  // the echo; nothing if we had sent ours already
      SendClose(Other(src), code, reason);
      return;
    }
    default:
      return;
  }
}

// `src` sent something we cannot go on from: it is closed with `code`, and so is the other leg
// (the same code and reason: the peer there learns why its session ended).
void ProxyRelay::ProtocolError(Leg& src, uint16_t code, std::string_view reason) {
  src.input_failed = true;
  src.forwarding = false;
  Leg& dst = Other(src);
  if (src.client && !dst.done && !dst.close_sent && !dst.mid_frame && !src.close_sent) {
    // The frames the client sent before the bad one are already on their way upstream, and an
    // endpoint would have answered them before failing the connection (an echo's echo): the
    // upstream is closed first, what it still sends before its close goes on to the client, and
    // the client gets its close (with this code) when the upstream's close, EOF or the close
    // deadline comes (SendClose). Otherwise those answers would be lost behind our close.
    client_failure_pending_ = true;
    client_failure_code_ = code;
    client_failure_reason_.assign(reason.substr(0, 123));
    SendClose(dst, code, reason);
    return;
  }
  SendClose(src, code, reason);
  if (dst.mid_frame) {
    // Half a frame is out towards dst and the rest will never come: no close frame can follow.
    Flush(dst);
    CloseSocket(dst);
    return;
  }
  SendClose(dst, code, reason);
}

// After a read's frames were processed: write what they produced, then decide on backpressure.
void ProxyRelay::AfterInput(Leg& src) {
  Leg& dst = Other(src);
  Flush(dst);
  Flush(src);  // pongs, close echoes
  if (src.done || dst.done) return;
  const size_t queued = dst.queued();
  if (dst.client && limits_.send_queue_bytes > 0) {
    // The route's bound on the client leg: `close` closes a client that falls that far behind;
    // drop_oldest holds whole messages instead (OnFrameStart) and is bounded there.
    if (!limits_.drop_oldest && queued > limits_.send_queue_bytes && !dst.close_sent) {
      host_->OnSendQueueExceeded();
    }
    return;
  }
  if (queued > ctx_.backpressure_bytes && !src.paused && !src.close_received &&
      !src.input_failed) {
    src.paused = true;
    host_->OnBackpressure();
  }
}

// ---------------------------------------------------------------------------------------------
// Writing.

void ProxyRelay::FrameInto(std::string& into, const Leg& dst, uint8_t opcode,
                           std::string_view payload) {
  // Frames we write upstream are masked with a fresh key; towards the client never.
  const bool masked = !dst.client;
  const uint32_t key = masked ? ctx_.rng() : 0;
  char header[14];
  const size_t n = EncodeFrameHeader(header, opcode, /*fin=*/true, payload.size(), masked, key);
  into.append(header, n);
  const size_t at = into.size();
  into.append(payload.data(), payload.size());
  if (masked) MaskInPlace(into.data() + at, payload.size(), key);
}

void ProxyRelay::AppendControl(Leg& dst, uint8_t opcode, std::string_view payload) {
  if (dst.done || dst.close_sent) return;  // nothing may follow a close frame
  FrameInto(dst.mid_frame ? dst.pending_control : dst.out, dst, opcode, payload);
}

void ProxyRelay::AppendData(Leg& dst, uint8_t opcode, std::string_view payload) {
  if (dst.done || dst.close_sent) return;
  FrameInto(dst.mid_frame || dst.mid_message ? dst.pending_data : dst.out, dst, opcode, payload);
}

void ProxyRelay::AtFrameBoundary(Leg& dst) {
  if (!dst.pending_control.empty()) {
    dst.out += dst.pending_control;
    dst.pending_control.clear();
  }
  if (!dst.mid_message && !dst.pending_data.empty()) {
    dst.out += dst.pending_data;
    dst.pending_data.clear();
  }
}

void ProxyRelay::SendClose(Leg& leg, uint16_t code, std::string_view reason) {
  if (leg.close_sent || leg.done) return;
  if (!opened_) return;
  std::string failure_reason;
  if (leg.client && client_failure_pending_) {
    // Whatever ends the wait for the upstream's answers, the client learns why it was failed.
    client_failure_pending_ = false;
    code = client_failure_code_;
    failure_reason = std::move(client_failure_reason_);
    reason = failure_reason;
  }
  std::string payload;
  if (code != 1005) {
    payload.push_back(static_cast<char>(code >> 8));
    payload.push_back(static_cast<char>(code & 0xff));
    payload.append(reason.substr(0, 123));
  }
  leg.pending_data.clear();  // no data may follow the close frame
  AppendControl(leg, relay::kClose, payload);
  leg.close_sent = true;
  if (leg.client) {
    client_close_code_ = code;
    client_close_reason_ = code == 1005 ? std::string() : std::string(reason.substr(0, 123));
  }
  if (leg.paused) {
    // The close handshake needs the peer's answer.
    leg.paused = false;
    PostRead(leg);
  }
  ArmCloseTimer();
}

void ProxyRelay::Flush(Leg& leg) {
  if (leg.done || leg.writing || leg.fd < 0) return;
  while (leg.sent < leg.out.size()) {
    ssize_t n = leg.send_some(leg, leg.out.data() + leg.sent, leg.out.size() - leg.sent);
    if (n > 0) {
      leg.sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      leg.writing = true;  // the EPOLLOUT edge calls Flush again (OnEvents)
      ResumeOther(leg);
      return;
    }
    LegGone(leg);  // EPIPE, ECONNRESET: the peer is gone
    return;
  }
  if (leg.out.capacity() > kKeptOutputCapacity) {
    std::string().swap(leg.out);
  } else {
    leg.out.clear();
  }
  leg.sent = 0;
  OnDrained(leg);
}

// Everything queued for `leg` is written.
void ProxyRelay::OnDrained(Leg& leg) {
  if (draining_ && leg.client) {
    // A refused handshake's answer is out: stop writing, read until the client closes.
    if (!leg.finishing) {
      leg.finishing = true;
      ::shutdown(leg.fd, SHUT_WR);
      PostRead(leg);
    }
    return;
  }
  if (leg.close_sent && leg.pending_control.empty() && !leg.finishing) {
    if (leg.close_received && leg.client) {
      // The close handshake is complete and the client sends nothing after its close frame:
      // the server side closes the TCP connection first (RFC 6455 section 7.1.1).
      CloseSocket(leg);
      ResumeOther(leg);
      return;
    }
    if (leg.close_received) {
      // Towards the upstream we are the client: the server closes first, so that its side,
      // not ours, keeps the TIME_WAIT (our ephemeral ports to one upstream are finite). Read
      // until its FIN (bounded by the close timer).
      leg.finishing = true;
      leg.paused = false;
      PostRead(leg);
    } else if (leg.input_failed) {
      // The peer broke the protocol and may still be sending: stop writing and read until its
      // FIN, so that unread bytes do not reset the connection before it reads our close frame.
      leg.finishing = true;
      if (leg.ssl != nullptr) TlsCloseNotify(leg);
      ::shutdown(leg.fd, SHUT_WR);
      leg.paused = false;
      PostRead(leg);
    }
  }
  if (leg.client) MoveHeldToClient();
  ResumeOther(leg);
}

// Built-in backpressure: the leg feeding `leg` reads again once `leg` is down to half the bound.
void ProxyRelay::ResumeOther(Leg& leg) {
  Leg& src = Other(leg);
  if (src.paused && !src.done && leg.queued() <= ctx_.backpressure_bytes / 2) {
    src.paused = false;
    PostRead(src);
  }
}

// drop_oldest: held messages go to the client as its queue goes back under the bound.
void ProxyRelay::MoveHeldToClient() {
  if (held_.empty() || client_.done) return;
  if (client_.close_sent) {
    held_.clear();
    held_bytes_ = 0;
    return;
  }
  bool moved = false;
  while (!held_.empty() && client_.queued() <= limits_.send_queue_bytes) {
    client_.out += held_.front();
    held_bytes_ -= held_.front().size();
    held_.pop_front();
    moved = true;
  }
  if (moved) Flush(client_);
}

// ---------------------------------------------------------------------------------------------
// The worker's controls.

void ProxyRelay::CloseClient(uint16_t code, std::string_view reason) {
  auto keep = shared_from_this();
  SendClose(client_, code, reason);
  Flush(client_);
}

void ProxyRelay::CloseUpstream(uint16_t code, std::string_view reason) {
  auto keep = shared_from_this();
  SendClose(upstream_, code, reason);
  Flush(upstream_);
}

bool ProxyRelay::SendToClient(std::string_view payload, bool binary) {
  if (!opened_ || client_.done || client_.close_sent) return false;
  auto keep = shared_from_this();
  AppendData(client_, binary ? relay::kBinary : relay::kText, payload);
  Flush(client_);
  return true;
}

bool ProxyRelay::PingClient() {
  if (!opened_ || client_.done || client_.close_sent) return false;
  auto keep = shared_from_this();
  AppendControl(client_, relay::kPing, {});
  Flush(client_);
  return true;
}

bool ProxyRelay::PingUpstream() {
  if (!upstream_open()) return false;
  auto keep = shared_from_this();
  AppendControl(upstream_, relay::kPing, {});
  Flush(upstream_);
  upstream_ping_outstanding_ = true;
  return true;
}

ProxyRelay::State ProxyRelay::client_state() const {
  if (!opened_) return refused_ ? State::kClosed : State::kConnecting;
  if (client_.done) return State::kClosed;
  if (client_.close_sent || client_.close_received) return State::kClosing;
  return State::kOpen;
}

// ---------------------------------------------------------------------------------------------
// Ending.

// `leg` reached EOF or failed. After its close handshake that is the normal end; otherwise the
// other leg is told: 1011 "upstream went away" towards the client, 1001 "client went away"
// towards the upstream (the codes the previous data path used).
void ProxyRelay::LegGone(Leg& leg) {
  if (leg.done) return;
  const bool clean = leg.finishing || (leg.close_sent && leg.close_received);
  CloseSocket(leg);
  if (clean || !opened_ || draining_) return;
  Leg& other = Other(leg);
  if (other.done) return;
  if (other.mid_frame) {
    // No close frame can follow half a frame. A binary fragment that is not its message's last
    // can be finished with padding, though: the client then gets 1011 with a reason and drops
    // the message it never got whole. Anything else (a final frame: padding would hand the
    // client a corrupt message) ends the TCP connection.
    const relay::FrameHeader& h = leg.scanner.header();
    const uint64_t rest = leg.scanner.frame_remaining();
    if (leg.client || !leg.forwarding || leg.holding || h.fin ||
        leg.scanner.message_opcode() != relay::kBinary || rest > kMaxFragmentPadding) {
      Flush(other);
      CloseSocket(other);
      return;
    }
    other.out.append(static_cast<size_t>(rest), '\0');
    other.mid_frame = false;
    other.mid_message = true;
    AtFrameBoundary(other);
  }
  if (leg.client) {
    SendClose(other, 1001, "client went away");
  } else {
    SendClose(other, 1011, "upstream went away");
  }
  Flush(other);
}

void ProxyRelay::CloseSocket(Leg& leg) {
  if (leg.done) return;
  leg.done = true;
  if (leg.poll_id != 0) ctx_.poller.Remove(leg.poll_id);  // before the close: no stale events
  leg.poll_id = 0;
  if (leg.ssl != nullptr) EndTls(leg, /*notify=*/true);
  if (leg.fd >= 0) ::close(leg.fd);  // also takes it out of the epoll set
  leg.fd = -1;
  std::string().swap(leg.out);
  std::string().swap(leg.pending_control);
  std::string().swap(leg.pending_data);
  leg.sent = 0;
  if (leg.client) {
    held_.clear();
    held_bytes_ = 0;
    if (opened_) host_->OnClientClosed(client_close_code_, client_close_reason_);
  }
  MaybeDone();
}

void ProxyRelay::ArmCloseTimer() {
  if (close_timer_armed_) return;
  close_timer_armed_ = true;
  timer_.expires_after(kCloseTimeout);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->OnCloseTimeout();
  });
}

// A close handshake was not answered in time: that leg is closed, and the other one, if nobody
// told it yet, learns that its peer went away (and gets its own close deadline).
void ProxyRelay::OnCloseTimeout() {
  close_timer_armed_ = false;
  for (Leg* leg : {&client_, &upstream_}) {
    if (!leg->close_sent || leg->done) continue;
    CloseSocket(*leg);
    Leg& other = Other(*leg);
    if (other.done || other.close_sent) continue;
    if (leg->client) {
      SendClose(other, 1001, "client went away");
    } else {
      SendClose(other, 1011, "upstream went away");
    }
    Flush(other);
  }
}

void ProxyRelay::MaybeDone() {
  if (!client_.done || !upstream_.done || done_reported_) return;
  done_reported_ = true;
  timer_.cancel();
  // Posted: the host frees the session (and with it this relay) when told.
  boost::asio::post(ctx_.ioc, [self = shared_from_this()] { self->host_->OnDone(); });
}

}  // namespace wsgate::dataplane::transport
