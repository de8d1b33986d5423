// fanout_load: the load tool of the fan-out benchmark (bench/fanout_bench.py).
//
// It holds N subscribers, publishes timestamped messages to them and measures delivery, for two
// kinds of subscriber (--target):
//   gateway  WebSocket clients of wsgate (raw framing from bench/ws_codec.h, masked client frames);
//   redis    plain Redis Pub/Sub subscribers (one connection per subscriber, SUBSCRIBE to the same
//            channel the gateway would subscribe to): the baseline without a gateway.
//   centrifugo  WebSocket clients of Centrifugo (room and hold modes), speaking its JSON protocol
//            (v2: newline-separated commands and replies in text frames) at --path-prefix
//            (default /connection/websocket): a connect command, then a subscribe command to
//            --room-channel; publications arrive as pushes. Member 0 publishes with a client
//            publish command (as a wsgate room member sends its frame), so both systems take a
//            message from a member's socket; Centrifugo also pushes it back to member 0, which is
//            counted apart like wsgate's "You wrote: ...".
// Modes (--mode):
//   pubsub   N sessions: the gateway's pubsub route at <--path-prefix>s<i> (session id "s<i>"), or N
//            Redis connections subscribed to session:s<i>:down. The tool PUBLISHes to
//            session:s<i>:down over its own Redis connection (raw RESP), round-robin over the
//            sessions, first at a fixed offered rate (--rate), then at saturation (a closed loop
//            keeping --inflight messages published but not yet delivered).
//   room     N members of one room: the gateway's room route at <--path-prefix>m<i> (client id "m<i>",
//            member 0 sends, the other N-1 receive "Client #m0 says: ..."), or N Redis connections
//            subscribed to one channel that the tool publishes to. First --repeats messages one at a
//            time (each one waits until every receiver has it: the "last member" time), then at
//            saturation (--inflight messages not yet received by everyone). --room-rate R adds a
//            phase at a fixed offered rate of R messages/s (open loop) between the two, whose
//            "last member" times are per message too; --repeats 0 drops the one-at-a-time phase.
//   hold     opens N pubsub sessions on the gateway (or room members, with a room route's
//            --path-prefix; or, with --target centrifugo, N subscribers of --room-channel) and
//            holds them (answering pings) for --hold-s seconds or until SIGTERM/SIGINT; prints
//            {"open": n, ...} once all are open, and a final line when it stops. For benchmarks
//            that need many live sessions (control plane; idle memory per subscriber).
// --id-prefix replaces the "s" / "m" of the ids (two holders on one gateway need different ones).
//
// Every message carries "@@" + 16 hex digits of CLOCK_MONOTONIC at the send (same host) + 8 hex of
// a sequence number + 8 hex of the intended subscriber (pubsub) — so delivery is checked exactly
// once per (message, subscriber), on the right subscriber, besides being timed. Results: one JSON
// line on stdout; diagnostics on stderr. Talks to 127.0.0.0/8 only.
//
// Threading: one thread, one Boost.Asio io_context (epoll). Sockets are read reactor-style
// (async_wait for readability, then non-blocking reads into one shared scratch buffer), so an
// idle subscriber holds no read buffer; nothing here is thread-safe.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench/sys_util.h"
#include "bench/ws_codec.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace wsbench {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

enum class Mode { kPubsub, kRoom, kHold };
enum class Target { kGateway, kRedis, kCentrifugo };

struct Options {
  Mode mode = Mode::kPubsub;
  std::string mode_name = "pubsub";
  Target target = Target::kGateway;
  std::string label;
  int port = 0;        // the gateway's data port
  int redis_port = 0;  // the Redis the tool publishes to (and the baseline subscribes to)
  std::string path_prefix;
  std::string id_prefix;  // session ids are <id_prefix><i>; default "s" (pubsub, hold), "m" (room)
  std::string room_channel = "room:bench:";
  int sessions = 1000;
  double rate = 5000;  // fixed offered rate, messages/s
  double room_rate = 0;  // room: fixed offered rate phase (0: none)
  double warmup_s = 1;
  double duration_s = 5;
  int inflight = 1000;
  size_t size = 64;
  int repeats = 200;
  double hold_s = 3600;
  int connect_concurrency = 200;
  double open_timeout_s = 60;
  double drain_s = 5;
  int src_addrs = 0;
  bool skip_saturation = false;
  pid_t gateway_pid = 0;
  pid_t redis_pid = 0;
};

constexpr size_t kReadChunk = 256u << 10;
constexpr size_t kBufferKeep = 64u << 10;
constexpr uint64_t kMaxIncoming = 16u << 20;
constexpr size_t kStampLen = 2 + 16 + 8 + 8;  // "@@" ts seq target
// Room saturation: at most this many messages are tracked (one counter each).
constexpr size_t kMaxTracked = 4u << 20;

std::string Hex(uint64_t v, int digits) {
  static const char* kDigits = "0123456789abcdef";
  std::string s(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = kDigits[v & 15];
  return s;
}

bool ParseHex(const char* p, int digits, uint64_t* out) {
  uint64_t v = 0;
  for (int i = 0; i < digits; ++i) {
    char c = p[i];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

// ---- a minimal incremental RESP reader ---------------------------------------------------------

// One reply: an integer, a simple string/error, a bulk string, or an array of up to 4 of those
// (what SUBSCRIBE confirmations, pushed messages and PUBLISH replies are).
struct Reply {
  char type = 0;
  int64_t integer = 0;
  std::string_view str;
  int n = 0;
  std::string_view elems[4];
  int64_t elem_int[4] = {0, 0, 0, 0};
};

// A decimal integer (optionally negative) spelled by `s`; RESP lengths and integers.
int64_t ParseInt(std::string_view s) {
  int64_t v = 0;
  bool neg = !s.empty() && s[0] == '-';
  for (size_t i = neg ? 1 : 0; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') break;
    v = v * 10 + (s[i] - '0');
  }
  return neg ? -v : v;
}

// Finds "\r\n" from p; returns its offset or -1.
long FindCrlf(const char* p, size_t len, size_t from) {
  for (size_t i = from; i + 1 < len; ++i)
    if (p[i] == '\r' && p[i + 1] == '\n') return static_cast<long>(i);
  return -1;
}

// Parses one scalar at p[pos]; returns the offset after it, 0 if more bytes are needed, -1 on
// error.
long ParseScalar(const char* p, size_t len, size_t pos, char* type, int64_t* integer,
                 std::string_view* str) {
  if (pos >= len) return 0;
  long eol = FindCrlf(p, len, pos + 1);
  if (eol < 0) return len - pos > 64 ? -1 : 0;
  *type = p[pos];
  std::string_view line(p + pos + 1, static_cast<size_t>(eol) - pos - 1);
  switch (*type) {
    case ':':
    case '+':
    case '-':
      *str = line;
      *integer = ParseInt(line);
      return eol + 2;
    case '$': {
      long n = static_cast<long>(ParseInt(line));
      if (n < 0) {
        *str = {};
        return eol + 2;
      }
      size_t start = static_cast<size_t>(eol) + 2;
      if (len < start + static_cast<size_t>(n) + 2) return 0;
      *str = std::string_view(p + start, static_cast<size_t>(n));
      return static_cast<long>(start + static_cast<size_t>(n) + 2);
    }
    default:
      return -1;
  }
}

long ParseReply(const char* p, size_t len, Reply* r) {
  if (len == 0) return 0;
  if (p[0] != '*') return ParseScalar(p, len, 0, &r->type, &r->integer, &r->str);
  long eol = FindCrlf(p, len, 1);
  if (eol < 0) return len > 64 ? -1 : 0;
  long count = static_cast<long>(ParseInt(std::string_view(p + 1, static_cast<size_t>(eol) - 1)));
  if (count < 0 || count > 4) return -1;
  r->type = '*';
  r->n = static_cast<int>(count);
  long pos = eol + 2;
  for (int i = 0; i < r->n; ++i) {
    char t = 0;
    long next = ParseScalar(p, len, static_cast<size_t>(pos), &t, &r->elem_int[i], &r->elems[i]);
    if (next <= 0) return next;
    pos = next;
  }
  return pos;
}

void AppendCommand(std::string* out, std::initializer_list<std::string_view> args) {
  out->append("*").append(std::to_string(args.size())).append("\r\n");
  for (std::string_view a : args) {
    out->append("$").append(std::to_string(a.size())).append("\r\n");
    out->append(a.data(), a.size()).append("\r\n");
  }
}

// ---- connections -------------------------------------------------------------------------------

class Tool;

// One socket: a subscriber (WebSocket client of the gateway, or Redis subscriber) or the Redis
// publisher. Output is gathered in `pending` while a write is in flight, then written in one go.
struct Conn {
  enum State { kConnecting, kHandshake, kOpen, kDead } state = kConnecting;
  enum Kind { kWs, kRespSub, kRespPub } kind = kWs;
  int index = 0;
  explicit Conn(asio::io_context& io) : sock(io) {}
  tcp::socket sock;
  std::string key;
  ByteBuffer in;
  std::string pending;
  std::string writing;
  bool write_busy = false;
  // Centrifugo: 0 = the connect reply is awaited, 1 = the subscribe reply, 2 = subscribed.
  int cf_stage = 0;
  bool upgraded = false;  // the 101 came (Centrifugo: the subscriber is still in kHandshake)
  // The sequence number this subscriber should get next: messages reach one subscriber in
  // publish order, so anything else is a duplicate (lower) or a gap (higher).
  uint64_t next_seq = 0;
  uint64_t seq_step = 1;
};

struct Phase {
  std::string name;
  double offered_rate = 0;  // 0: saturation
  uint64_t published = 0;
  uint64_t delivered = 0;
  uint64_t first_seq = 0;
  uint64_t end_seq = 0;
  double window_s = 0;
  LogLinearHistogram latency;  // per delivery, ns
  LogLinearHistogram last;     // room: per message, until the last receiver had it, ns
  uint64_t completed = 0;      // room: messages every receiver had
  uint64_t delivered_in_window = 0;
  uint64_t completed_in_window = 0;
  double gw_cpu = 0, redis_cpu = 0, tool_cpu = 0;
  int64_t gw_rss_end = -1;
};

class Tool {
 public:
  explicit Tool(const Options& opt)
      : opt_(opt), rng_(MonotonicNs()), scratch_(new uint8_t[kReadChunk]), timer_(io_),
        signals_(io_, SIGINT, SIGTERM) {
    filler_.assign(opt_.size > kStampLen ? opt_.size - kStampLen : 0, 'x');
  }

  int Run() {
    signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (!ec) stop_ = true;
    });
    // Both kinds of WebSocket subscriber: the room's sender (member 0) is not a receiver.
    const bool gateway = opt_.target != Target::kRedis;
    receivers_ = opt_.mode == Mode::kRoom && gateway ? opt_.sessions - 1 : opt_.sessions;
    rss_before_open_ = opt_.gateway_pid ? ProcessRssKib(opt_.gateway_pid) : -1;
    subs_.reserve(static_cast<size_t>(opt_.sessions));
    for (int i = 0; i < opt_.sessions; ++i) {
      subs_.push_back(std::make_unique<Conn>(io_));
      subs_.back()->index = i;
      subs_.back()->kind = gateway ? Conn::kWs : Conn::kRespSub;
      if (opt_.mode == Mode::kPubsub) {
        subs_.back()->next_seq = static_cast<uint64_t>(i);
        subs_.back()->seq_step = static_cast<uint64_t>(opt_.sessions);
      }
    }
    uint64_t t0 = MonotonicNs();
    for (int i = 0; i < opt_.connect_concurrency && next_connect_ < opt_.sessions; ++i) ConnectNext();
    phases_.reserve(4);
    // A WebSocket room's messages come from member 0; everything else is published to Redis.
    if (opt_.mode == Mode::kPubsub || opt_.target == Target::kRedis) {
      pub_ = std::make_unique<Conn>(io_);
      pub_->kind = Conn::kRespPub;
      pub_->index = -1;
      Connect(*pub_, opt_.redis_port);
    }
    RunUntil([&] { return opened_ + failed_ >= opt_.sessions && (!pub_ || pub_->state == Conn::kOpen); },
             opt_.open_timeout_s);
    open_s_ = (MonotonicNs() - t0) / 1e9;
    rss_after_open_ = opt_.gateway_pid ? ProcessRssKib(opt_.gateway_pid) : -1;
    if (opened_ < opt_.sessions || (pub_ && pub_->state != Conn::kOpen)) {
      NoteError("only " + std::to_string(opened_) + " of " + std::to_string(opt_.sessions) +
                " subscribers opened in " + std::to_string(open_s_) + "s");
      return Finish(false);
    }
    std::fprintf(stderr, "fanout_load: %d subscribers open in %.2fs\n", opened_, open_s_);
    if (opt_.mode == Mode::kHold) return Hold();
    seen_.assign(kMaxTracked, 0);
    if (opt_.target == Target::kCentrifugo) own_seen_.assign(kMaxTracked, 0);
    if (opt_.mode == Mode::kPubsub) {
      RunPhase("fixed", opt_.rate);
      if (!opt_.skip_saturation && !stop_) RunPhase("saturation", 0);
    } else {
      if (opt_.repeats > 0) RunRoomSequential();
      if (opt_.room_rate > 0 && !stop_) RunPhase("fixed", opt_.room_rate);
      if (!opt_.skip_saturation && !stop_) RunPhase("saturation", 0);
    }
    if (opt_.target == Target::kCentrifugo) {
      // The publisher's replies and own copies may trail the last receiver's delivery.
      RunUntil([&] { return publish_replies_ >= next_seq_ && self_answers_ >= next_seq_; },
               opt_.drain_s);
    }
    return Finish(true);
  }

 private:
  // ---- the loop --------------------------------------------------------------------------------

  // Runs the io_context until done() or the timeout (or a signal); the timer re-checks done()
  // every millisecond and runs `tick_` (the publisher's pacing) if set.
  void RunUntil(const std::function<bool()>& done, double timeout_s, int period_ms = 1) {
    uint64_t deadline = MonotonicNs() + static_cast<uint64_t>(timeout_s * 1e9);
    bool finished = false;
    std::function<void()> arm = [&] {
      timer_.expires_after(std::chrono::milliseconds(period_ms));
      timer_.async_wait([&](const boost::system::error_code& ec) {
        if (ec) return;
        if (tick_) tick_();
        if (stop_ || done() || MonotonicNs() >= deadline) {
          finished = true;
          return;
        }
        arm();
      });
    };
    if (done()) return;
    arm();
    while (!finished && io_.run_one()) {
    }
  }

  // ---- connecting ------------------------------------------------------------------------------

  void ConnectNext() {
    Conn& c = *subs_[static_cast<size_t>(next_connect_++)];
    Connect(c, c.kind == Conn::kWs ? opt_.port : opt_.redis_port);
  }

  void Connect(Conn& c, int port) {
    boost::system::error_code ec;
    c.sock.open(tcp::v4(), ec);
    if (!ec && opt_.src_addrs > 0 && c.kind != Conn::kRespPub) {
      // Spread source addresses so no (source, destination) pair runs out of ephemeral ports.
      int one = 1;
      setsockopt(c.sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
      uint32_t a = (127u << 24) | static_cast<uint32_t>(2 + next_src_++ % opt_.src_addrs);
      c.sock.bind(tcp::endpoint(asio::ip::address_v4(a), 0), ec);
    }
    if (ec) return Fail(c, "socket: " + ec.message());
    tcp::endpoint dst(asio::ip::make_address_v4("127.0.0.1"), static_cast<uint16_t>(port));
    c.sock.async_connect(dst, [this, &c](const boost::system::error_code& e) {
      if (e) return Fail(c, "connect: " + e.message());
      c.sock.set_option(tcp::no_delay(true));
      c.sock.non_blocking(true);
      c.state = Conn::kHandshake;
      if (c.kind == Conn::kWs) {
        uint8_t raw[16];
        uint64_t a = rng_.Next(), b = rng_.Next();
        std::memcpy(raw, &a, 8);
        std::memcpy(raw + 8, &b, 8);
        c.key = Base64Encode(raw, sizeof(raw));
        std::string host = "127.0.0.1:" + std::to_string(opt_.port);
        // Centrifugo has one endpoint for every client; wsgate's routes take the id in the path.
        std::string path = opt_.target == Target::kCentrifugo
                               ? opt_.path_prefix
                               : opt_.path_prefix + opt_.id_prefix + std::to_string(c.index);
        Send(c, BuildUpgradeRequest(host, path, c.key));
      } else if (c.kind == Conn::kRespSub) {
        std::string cmd;
        AppendCommand(&cmd, {"SUBSCRIBE", Channel(c.index)});
        Send(c, cmd);
      } else {
        c.state = Conn::kOpen;  // the publisher needs no handshake
      }
      WaitRead(c);
    });
  }

  std::string Channel(int index) const {
    if (opt_.mode == Mode::kRoom) return opt_.room_channel;
    return "session:" + opt_.id_prefix + std::to_string(index) + ":down";
  }

  void Opened(Conn& c) {
    c.state = Conn::kOpen;
    c.cf_stage = 2;
    ++opened_;
    if (next_connect_ < opt_.sessions) ConnectNext();
  }

  void Fail(Conn& c, const std::string& why) {
    if (c.state == Conn::kDead) return;
    bool was_open = c.state == Conn::kOpen;
    c.state = Conn::kDead;
    boost::system::error_code ignored;
    c.sock.close(ignored);
    if (c.kind == Conn::kRespPub) {
      NoteError("publisher: " + why);
      stop_ = true;
      return;
    }
    if (was_open) {
      ++closed_early_;
    } else {
      ++failed_;
      if (next_connect_ < opt_.sessions) ConnectNext();
    }
    NoteError("subscriber " + std::to_string(c.index) + ": " + why);
  }

  void NoteError(const std::string& what) {
    ++errors_;
    if (first_error_.empty()) first_error_ = what;
  }

  // ---- writing ---------------------------------------------------------------------------------

  void Send(Conn& c, std::string_view bytes) {
    c.pending.append(bytes.data(), bytes.size());
    StartWrite(c);
  }

  void StartWrite(Conn& c) {
    if (c.write_busy || c.pending.empty() || c.state == Conn::kDead) return;
    c.write_busy = true;
    c.writing.swap(c.pending);
    c.pending.clear();
    asio::async_write(c.sock, asio::buffer(c.writing),
                      [this, &c](const boost::system::error_code& ec, size_t) {
                        c.write_busy = false;
                        c.writing.clear();
                        if (ec) return Fail(c, "write: " + ec.message());
                        StartWrite(c);
                      });
  }

  // A masked client frame.
  void SendFrame(Conn& c, uint8_t opcode, const void* payload, size_t len) {
    uint8_t header[kMaxFrameHeader];
    uint8_t mask[4];
    uint32_t m = static_cast<uint32_t>(rng_.Next());
    std::memcpy(mask, &m, 4);
    size_t h = WriteFrameHeader(header, true, opcode, len, mask);
    size_t at = c.pending.size();
    c.pending.append(reinterpret_cast<const char*>(header), h);
    c.pending.append(static_cast<const char*>(payload), len);
    ApplyMask(reinterpret_cast<uint8_t*>(&c.pending[at + h]), len, mask, 0);
    StartWrite(c);
  }

  // ---- reading ---------------------------------------------------------------------------------

  void WaitRead(Conn& c) {
    c.sock.async_wait(tcp::socket::wait_read, [this, &c](const boost::system::error_code& ec) {
      if (c.state == Conn::kDead) return;
      if (ec) return Fail(c, "wait: " + ec.message());
      for (int round = 0; round < 4; ++round) {
        boost::system::error_code rec;
        size_t n = c.sock.read_some(asio::buffer(scratch_.get(), kReadChunk), rec);
        if (rec == asio::error::would_block) break;
        if (rec) return Fail(c, rec == asio::error::eof ? "closed by the peer" : rec.message());
        if (!Feed(c, scratch_.get(), n)) return;
        if (n < kReadChunk) break;
      }
      WaitRead(c);
    });
  }

  // Handles bytes straight from the scratch buffer; only an incomplete tail is kept in c.in.
  bool Feed(Conn& c, const uint8_t* data, size_t len) {
    size_t used = 0;
    bool ok;
    if (c.in.empty()) {
      ok = Process(c, data, len, &used);
      if (ok) c.in.Append(data + used, len - used);
    } else {
      c.in.Append(data, len);
      ok = Process(c, c.in.data(), c.in.size(), &used);
      if (ok) c.in.Consume(used);
    }
    c.in.ShrinkIfIdle(kBufferKeep);
    return ok;
  }

  bool Process(Conn& c, const uint8_t* data, size_t len, size_t* used) {
    *used = 0;
    return c.kind == Conn::kWs ? ProcessWs(c, data, len, used)
                               : ProcessResp(c, reinterpret_cast<const char*>(data), len, used);
  }

  bool ProcessWs(Conn& c, const uint8_t* data, size_t len, size_t* used) {
    if (c.state == Conn::kHandshake && !c.upgraded) {
      UpgradeResponse resp;
      const char* error = nullptr;
      HttpStatus st =
          ParseUpgradeResponse(reinterpret_cast<const char*>(data), len, c.key, &resp, &error);
      if (st == HttpStatus::kNeedMore) return true;
      if (st == HttpStatus::kError) {
        Fail(c, std::string("handshake: ") + error + " (" + resp.status_line + ")");
        return false;
      }
      *used = resp.consumed;
      if (opt_.target == Target::kCentrifugo) {
        c.upgraded = true;  // the subscriber counts as open once subscribed
        static const char kConnect[] = "{\"id\":1,\"connect\":{\"name\":\"fanout_load\"}}";
        SendFrame(c, kOpText, kConnect, sizeof(kConnect) - 1);
      } else {
        Opened(c);
      }
    }
    while (*used < len) {
      FrameHeader fh;
      const char* error = nullptr;
      ParseStatus st =
          ParseFrameHeader(data + *used, len - *used, Role::kClient, kMaxIncoming, &fh, &error);
      if (st == ParseStatus::kNeedMore) break;
      if (st == ParseStatus::kError) {
        Fail(c, std::string("frame: ") + error);
        return false;
      }
      if (len - *used - fh.header_len < fh.payload_len) break;
      const uint8_t* payload = data + *used + fh.header_len;
      const size_t plen = static_cast<size_t>(fh.payload_len);
      *used += fh.header_len + plen;
      switch (fh.opcode) {
        case kOpPing:
          ++pings_;
          SendFrame(c, kOpPong, payload, plen);
          break;
        case kOpPong:
          break;
        case kOpClose: {
          std::string why = "close frame";
          if (plen >= 2) why += " " + std::to_string((payload[0] << 8) | payload[1]);
          if (plen > 2) why += " \"" + std::string(reinterpret_cast<const char*>(payload + 2), plen - 2) + "\"";
          Fail(c, why);
          return false;
        }
        default:
          if (!fh.fin || fh.opcode == kOpContinuation) {
            Fail(c, "fragmented message (the tool does not reassemble)");
            return false;
          }
          if (opt_.target == Target::kCentrifugo) {
            if (!OnCentrifugoFrame(c, reinterpret_cast<const char*>(payload), plen)) return false;
          } else {
            OnPayload(c, reinterpret_cast<const char*>(payload), plen);
          }
      }
    }
    return true;
  }

  bool ProcessResp(Conn& c, const char* data, size_t len, size_t* used) {
    while (*used < len) {
      Reply r;
      long n = ParseReply(data + *used, len - *used, &r);
      if (n == 0) break;
      if (n < 0) {
        Fail(c, "unparsable RESP reply");
        return false;
      }
      *used += static_cast<size_t>(n);
      if (c.kind == Conn::kRespPub) {
        if (r.type != ':') {
          Fail(c, "PUBLISH answered with '" + std::string(1, r.type) + std::string(r.str) + "'");
          return false;
        }
        ++publish_replies_;
        if (r.integer == 0) ++unrouted_;
        continue;
      }
      if (r.type == '*' && r.n == 3 && r.elems[0] == "message") {
        OnPayload(c, r.elems[2].data(), r.elems[2].size());
      } else if (r.type == '*' && r.n == 3 && r.elems[0] == "subscribe") {
        if (c.state == Conn::kHandshake) Opened(c);
      } else {
        Fail(c, "unexpected RESP reply");
        return false;
      }
    }
    return true;
  }

  // ---- Centrifugo's JSON protocol ---------------------------------------------------------------

  // One text frame from Centrifugo: one or more JSON replies/pushes, one per line. Only what this
  // tool sends can come back, so each line is told apart by its start: a reply carries the "id" of
  // the command, a push starts with "push", a ping is {} (answered with {}, the pong).
  bool OnCentrifugoFrame(Conn& c, const char* p, size_t len) {
    std::string_view frame(p, len);
    while (!frame.empty()) {
      size_t nl = frame.find('\n');
      std::string_view line = frame.substr(0, nl);
      frame = nl == std::string_view::npos ? std::string_view() : frame.substr(nl + 1);
      if (line.empty()) continue;
      if (!OnCentrifugoLine(c, line)) return false;
    }
    return true;
  }

  bool OnCentrifugoLine(Conn& c, std::string_view line) {
    if (line == "{}") {
      ++pings_;
      SendFrame(c, kOpText, "{}", 2);
      return true;
    }
    if (line.substr(0, 9) == "{\"push\":{") {
      if (line.find("\"pub\":{") != std::string_view::npos && c.cf_stage == 2) {
        OnPayload(c, line.data(), line.size());
        return true;
      }
      if (line.find("\"disconnect\"") != std::string_view::npos) {
        Fail(c, "centrifugo disconnect push: " + std::string(line.substr(0, 200)));
        return false;
      }
      ++foreign_;  // join/leave or other pushes this tool did not ask for
      return true;
    }
    if (line.substr(0, 6) != "{\"id\":" || line.find("\"error\":") != std::string_view::npos) {
      Fail(c, "centrifugo: " + std::string(line.substr(0, 200)));
      return false;
    }
    if (c.cf_stage == 0 && line.find("\"connect\":") != std::string_view::npos) {
      c.cf_stage = 1;
      std::string cmd = "{\"id\":2,\"subscribe\":{\"channel\":\"" + opt_.room_channel + "\"}}";
      SendFrame(c, kOpText, cmd.data(), cmd.size());
    } else if (c.cf_stage == 1 && line.find("\"subscribe\":") != std::string_view::npos) {
      Opened(c);
    } else if (c.cf_stage == 2 && line.find("\"publish\":") != std::string_view::npos) {
      ++publish_replies_;
    } else {
      Fail(c, "centrifugo: unexpected reply " + std::string(line.substr(0, 200)));
      return false;
    }
    return true;
  }

  // ---- messages --------------------------------------------------------------------------------

  // A stamped payload for message `seq` meant for subscriber `target` (pubsub) or everyone.
  void Stamp(std::string* out, uint64_t now, uint64_t seq, uint64_t target) {
    out->append("@@").append(Hex(now, 16)).append(Hex(seq, 8)).append(Hex(target, 8));
    out->append(filler_);
  }

  void OnPayload(Conn& c, const char* p, size_t len) {
    uint64_t now = MonotonicNs();
    std::string_view text(p, len);
    size_t at = text.find("@@");
    uint64_t ts = 0, seq = 0, target = 0;
    if (at == std::string_view::npos || len - at < kStampLen || !ParseHex(p + at + 2, 16, &ts) ||
        !ParseHex(p + at + 18, 8, &seq) || !ParseHex(p + at + 26, 8, &target)) {
      ++foreign_;
      return;
    }
    if (opt_.mode == Mode::kRoom && opt_.target == Target::kGateway && c.index == 0) {
      // The sender gets "You wrote: ..."; its own broadcast coming back would be a duplicate.
      if (text.substr(0, 11) == "You wrote: ") ++self_answers_;
      else ++duplicates_;
      return;
    }
    if (opt_.mode == Mode::kRoom && opt_.target == Target::kCentrifugo && c.index == 0) {
      // A Centrifugo publisher subscribed to the channel gets its own publication: once each.
      if (seq < own_seen_.size() && own_seen_[seq]++ == 0) ++self_answers_;
      else ++duplicates_;
      return;
    }
    if (opt_.mode == Mode::kPubsub && target != static_cast<uint64_t>(c.index)) ++wrong_target_;
    if (seq >= seen_.size()) {
      ++foreign_;
      return;
    }
    if (seq == c.next_seq) {
      c.next_seq += c.seq_step;
    } else if (seq < c.next_seq) {
      ++duplicates_;
      return;
    } else {
      ++gaps_;  // lost or reordered: the final count of missing deliveries says which
      c.next_seq = seq + c.seq_step;
    }
    uint32_t& n = seen_[seq];
    ++n;
    ++total_delivered_;
    if (!phase_ || seq < phase_->first_seq) return;
    ++phase_->delivered;
    phase_->latency.Record(now - ts);
    if (opt_.mode == Mode::kRoom && n == static_cast<uint32_t>(receivers_)) {
      ++phase_->completed;
      phase_->last.Record(now - ts);
    }
    if (phase_->offered_rate == 0) TopUp();
  }

  // Messages published but not yet delivered (room: not yet delivered to every receiver).
  uint64_t Outstanding() const {
    if (opt_.mode == Mode::kPubsub) return phase_->published - phase_->delivered;
    return phase_->published - phase_->completed;
  }

  void PublishOne() {
    uint64_t seq = next_seq_++;
    uint64_t target = opt_.mode == Mode::kPubsub ? seq % static_cast<uint64_t>(opt_.sessions) : 0;
    uint64_t now = MonotonicNs();
    std::string payload;
    payload.reserve(opt_.size + kStampLen);
    Stamp(&payload, now, seq, target);
    if (opt_.mode == Mode::kRoom && opt_.target == Target::kGateway) {
      SendFrame(*subs_[0], kOpText, payload.data(), payload.size());
    } else if (opt_.target == Target::kCentrifugo) {
      // The stamp is hex digits and 'x' filler: a JSON string as it is.
      std::string cmd = "{\"id\":" + std::to_string(seq + 3) + ",\"publish\":{\"channel\":\"" +
                        opt_.room_channel + "\",\"data\":\"" + payload + "\"}}";
      SendFrame(*subs_[0], kOpText, cmd.data(), cmd.size());
    } else {
      AppendCommand(&pub_->pending, {"PUBLISH", Channel(static_cast<int>(target)), payload});
    }
    ++phase_->published;
  }

  void Flush() {
    if (opt_.mode == Mode::kRoom && opt_.target != Target::kRedis) return;  // SendFrame wrote
    StartWrite(*pub_);
  }

  void TopUp() {
    if (!measuring_) return;
    bool any = false;
    while (Outstanding() < static_cast<uint64_t>(opt_.inflight) && next_seq_ < seen_.size()) {
      PublishOne();
      any = true;
    }
    if (any) Flush();
  }

  // One publishing phase: warm-up then the window, at `rate` (open loop, paced every
  // millisecond) or, for rate 0, a closed loop keeping --inflight messages outstanding. Then
  // waits (up to --drain-s) for what is still on its way, so the exactly-once check is final.
  void RunPhase(const std::string& name, double rate) {
    phases_.emplace_back();
    Phase& ph = phases_.back();
    ph.name = name;
    ph.offered_rate = rate;
    for (int part = 0; part < 2 && !stop_; ++part) {
      const bool window = part == 1;
      Phase warm;
      warm.offered_rate = rate;
      Phase* cur = window ? &ph : &warm;
      cur->first_seq = next_seq_;
      phase_ = cur;
      const double secs = window ? opt_.duration_s : opt_.warmup_s;
      double gw0 = opt_.gateway_pid ? ProcessCpuSeconds(opt_.gateway_pid) : 0;
      double rd0 = opt_.redis_pid ? ProcessCpuSeconds(opt_.redis_pid) : 0;
      double me0 = SelfCpuSeconds();
      const uint64_t start = MonotonicNs();
      measuring_ = true;
      if (rate > 0) {
        tick_ = [&, cur, start] {
          double due = rate * (MonotonicNs() - start) / 1e9;
          bool any = false;
          while (static_cast<double>(cur->published) < due && next_seq_ < seen_.size()) {
            PublishOne();
            any = true;
          }
          if (any) Flush();
        };
      } else {
        TopUp();
      }
      const uint64_t end = start + static_cast<uint64_t>(secs * 1e9);
      RunUntil([&] { return MonotonicNs() >= end; }, secs + 1);
      tick_ = nullptr;
      measuring_ = false;
      const uint64_t stopped = MonotonicNs();
      if (window) {
        ph.window_s = (stopped - start) / 1e9;
        ph.end_seq = next_seq_;
        if (opt_.gateway_pid) ph.gw_cpu = ProcessCpuSeconds(opt_.gateway_pid) - gw0;
        if (opt_.redis_pid) ph.redis_cpu = ProcessCpuSeconds(opt_.redis_pid) - rd0;
        ph.tool_cpu = SelfCpuSeconds() - me0;
        // Deliveries counted in the window only (the drain below is not throughput).
        ph.delivered_in_window = ph.delivered;
        ph.completed_in_window = ph.completed;
      }
    }
    // Drain: everything published so far should arrive.
    const uint64_t expect = ExpectedDeliveries();
    RunUntil([&] { return total_delivered_ >= expect; }, opt_.drain_s);
    ph.gw_rss_end = opt_.gateway_pid ? ProcessRssKib(opt_.gateway_pid) : -1;
    phase_ = nullptr;
  }

  uint64_t ExpectedDeliveries() const {
    return opt_.mode == Mode::kPubsub ? next_seq_ : next_seq_ * static_cast<uint64_t>(receivers_);
  }

  // Room: --repeats messages one at a time, each after the previous reached every receiver.
  void RunRoomSequential() {
    phases_.emplace_back();
    Phase& ph = phases_.back();
    ph.name = "one_at_a_time";
    ph.first_seq = next_seq_;
    phase_ = &ph;
    double gw0 = opt_.gateway_pid ? ProcessCpuSeconds(opt_.gateway_pid) : 0;
    double rd0 = opt_.redis_pid ? ProcessCpuSeconds(opt_.redis_pid) : 0;
    double me0 = SelfCpuSeconds();
    const uint64_t start = MonotonicNs();
    for (int i = 0; i < opt_.repeats && !stop_; ++i) {
      uint64_t seq = next_seq_;
      PublishOne();
      Flush();
      RunUntil([&] { return seen_[seq] >= static_cast<uint32_t>(receivers_); }, opt_.drain_s);
      if (seen_[seq] < static_cast<uint32_t>(receivers_)) {
        NoteError("room message " + std::to_string(seq) + " reached only " +
                  std::to_string(seen_[seq]) + " of " + std::to_string(receivers_));
        break;
      }
    }
    ph.window_s = (MonotonicNs() - start) / 1e9;
    ph.end_seq = next_seq_;
    if (opt_.gateway_pid) ph.gw_cpu = ProcessCpuSeconds(opt_.gateway_pid) - gw0;
    if (opt_.redis_pid) ph.redis_cpu = ProcessCpuSeconds(opt_.redis_pid) - rd0;
    ph.tool_cpu = SelfCpuSeconds() - me0;
    ph.gw_rss_end = opt_.gateway_pid ? ProcessRssKib(opt_.gateway_pid) : -1;
    ph.delivered_in_window = ph.delivered;
    ph.completed_in_window = ph.completed;
    phase_ = nullptr;
  }

  int Hold() {
    std::printf("{\"open\":%d,\"open_s\":%.3f,\"gateway_rss_kib\":%lld}\n", opened_, open_s_,
                static_cast<long long>(rss_after_open_));
    std::fflush(stdout);
    RunUntil([] { return false; }, opt_.hold_s, 100);
    return Finish(true);
  }

  // ---- results ---------------------------------------------------------------------------------

  static double Us(uint64_t ns) { return ns / 1000.0; }

  std::string PhaseJson(const Phase& ph) {
    char buf[2048];
    const double per_k = ph.delivered_in_window ? 1000.0 / ph.delivered_in_window : 0;
    // Deliveries (room: per-member deliveries) per second over the window.
    std::snprintf(
        buf, sizeof(buf),
        "{\"name\":\"%s\",\"offered_rate\":%.0f,\"window_s\":%.3f,\"published\":%llu,"
        "\"delivered\":%llu,\"delivered_in_window\":%llu,\"delivered_per_s\":%.1f,\"published_per_s\":%.1f,"
        "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
        "\"last_member_p50_us\":%.1f,\"last_member_p99_us\":%.1f,\"last_member_max_us\":%.1f,"
        "\"completed\":%llu,\"completed_per_s\":%.1f,"
        "\"gateway_cpu_s\":%.3f,\"redis_cpu_s\":%.3f,\"tool_cpu_s\":%.3f,"
        "\"gateway_cpu_s_per_1k\":%.5f,\"redis_cpu_s_per_1k\":%.5f,\"gateway_rss_kib\":%lld}",
        ph.name.c_str(), ph.offered_rate, ph.window_s,
        static_cast<unsigned long long>(ph.published), static_cast<unsigned long long>(ph.delivered),
        static_cast<unsigned long long>(ph.delivered_in_window),
        ph.window_s > 0 ? ph.delivered_in_window / ph.window_s : 0,
        ph.window_s > 0 ? ph.published / ph.window_s : 0, Us(ph.latency.Quantile(0.5)),
        Us(ph.latency.Quantile(0.99)), Us(ph.latency.max()), Us(ph.last.Quantile(0.5)),
        Us(ph.last.Quantile(0.99)), Us(ph.last.max()),
        static_cast<unsigned long long>(ph.completed),
        ph.window_s > 0 ? ph.completed_in_window / ph.window_s : 0, ph.gw_cpu, ph.redis_cpu, ph.tool_cpu,
        ph.gw_cpu * per_k, ph.redis_cpu * per_k, static_cast<long long>(ph.gw_rss_end));
    return buf;
  }

  int Finish(bool ran) {
    // Exactly-once check over every message published in the run (warm-ups included).
    uint64_t missing = 0;
    const uint32_t want = opt_.mode == Mode::kPubsub ? 1u : static_cast<uint32_t>(receivers_);
    for (uint64_t s = 0; s < next_seq_; ++s)
      if (seen_[s] < want) missing += want - seen_[s];
    bool exact = ran && missing == 0 && duplicates_ == 0 && gaps_ == 0 && wrong_target_ == 0 &&
                 closed_early_ == 0 && failed_ == 0;
    // Centrifugo: every publish answered, and the publisher's own copy of each one back too.
    if (opt_.target == Target::kCentrifugo && opt_.mode == Mode::kRoom)
      exact = exact && publish_replies_ == next_seq_ && self_answers_ == next_seq_;
    std::string phases;
    for (const Phase& ph : phases_) phases += (phases.empty() ? "" : ",") + PhaseJson(ph);
    std::printf(
        "{\"label\":\"%s\",\"mode\":\"%s\",\"target\":\"%s\",\"sessions\":%d,\"receivers\":%d,"
        "\"size\":%zu,\"opened\":%d,\"open_failed\":%d,\"closed_early\":%d,\"open_s\":%.3f,"
        "\"gateway_rss_before_open_kib\":%lld,\"gateway_rss_after_open_kib\":%lld,"
        "\"published_total\":%llu,\"delivered_total\":%llu,\"missing\":%llu,\"duplicates\":%llu,"
        "\"gaps\":%llu,\"wrong_target\":%llu,\"foreign\":%llu,\"self_answers\":%llu,\"pings\":%llu,"
        "\"publish_replies\":%llu,\"unrouted_publishes\":%llu,\"exactly_once\":%s,"
        "\"ok\":%s,\"error\":\"%s\",\"phases\":[%s]}\n",
        JsonEscape(opt_.label).c_str(), opt_.mode_name.c_str(),
        opt_.target == Target::kGateway ? "gateway"
        : opt_.target == Target::kRedis ? "redis" : "centrifugo", opt_.sessions, receivers_, opt_.size,
        opened_, failed_, closed_early_, open_s_, static_cast<long long>(rss_before_open_),
        static_cast<long long>(rss_after_open_), static_cast<unsigned long long>(next_seq_),
        static_cast<unsigned long long>(total_delivered_), static_cast<unsigned long long>(missing),
        static_cast<unsigned long long>(duplicates_), static_cast<unsigned long long>(gaps_),
        static_cast<unsigned long long>(wrong_target_),
        static_cast<unsigned long long>(foreign_), static_cast<unsigned long long>(self_answers_),
        static_cast<unsigned long long>(pings_), static_cast<unsigned long long>(publish_replies_),
        static_cast<unsigned long long>(unrouted_), exact ? "true" : "false",
        ran && errors_ == 0 ? "true" : "false", JsonEscape(first_error_).c_str(), phases.c_str());
    std::fflush(stdout);
    if (!first_error_.empty()) std::fprintf(stderr, "fanout_load: %s\n", first_error_.c_str());
    return ran && errors_ == 0 ? 0 : 1;
  }

  const Options& opt_;
  asio::io_context io_{1};
  FastRng rng_;
  std::unique_ptr<uint8_t[]> scratch_;
  asio::steady_timer timer_;
  asio::signal_set signals_;
  std::string filler_;
  std::vector<std::unique_ptr<Conn>> subs_;
  std::unique_ptr<Conn> pub_;
  std::vector<uint32_t> seen_;  // per message sequence number: deliveries so far
  std::vector<uint8_t> own_seen_;  // Centrifugo: the publisher's own copies, per message
  std::vector<Phase> phases_;   // reserved below: Phase pointers stay valid
  Phase* phase_ = nullptr;
  std::function<void()> tick_;
  bool measuring_ = false;
  bool stop_ = false;
  int receivers_ = 0;
  int next_connect_ = 0;
  int opened_ = 0;
  int failed_ = 0;
  int closed_early_ = 0;
  uint32_t next_src_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t total_delivered_ = 0;
  uint64_t gaps_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t wrong_target_ = 0;
  uint64_t foreign_ = 0;
  uint64_t self_answers_ = 0;
  uint64_t pings_ = 0;
  uint64_t publish_replies_ = 0;
  uint64_t unrouted_ = 0;
  uint64_t errors_ = 0;
  std::string first_error_;
  double open_s_ = 0;
  int64_t rss_before_open_ = -1;
  int64_t rss_after_open_ = -1;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "fanout_load: %s\n"
               "usage: fanout_load --mode pubsub|room|hold --target gateway|redis|centrifugo\n"
               "  [--port P (gateway data port)] [--redis-port R] [--path-prefix /bench/ws/]\n"
               "  [--sessions N] [--rate msgs/s] [--warmup-s S] [--duration-s S] [--inflight W]\n"
               "  [--size B] [--repeats K] [--room-rate msgs/s] [--room-channel C] [--id-prefix P]\n"
               "  [--hold-s S]\n"
               "  [--drain-s S]\n"
               "  [--connect-concurrency C] [--open-timeout-s S] [--src-addrs K]\n"
               "  [--no-saturation] [--gateway-pid PID] [--redis-pid PID] [--label L]\n",
               why);
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--mode") {
      o.mode_name = val();
      if (o.mode_name == "pubsub") o.mode = Mode::kPubsub;
      else if (o.mode_name == "room") o.mode = Mode::kRoom;
      else if (o.mode_name == "hold") o.mode = Mode::kHold;
      else Usage("--mode must be pubsub, room or hold");
    } else if (a == "--target") {
      std::string t = val();
      if (t == "gateway") o.target = Target::kGateway;
      else if (t == "redis") o.target = Target::kRedis;
      else if (t == "centrifugo") o.target = Target::kCentrifugo;
      else Usage("--target must be gateway, redis or centrifugo");
    } else if (a == "--port") o.port = std::atoi(val().c_str());
    else if (a == "--redis-port") o.redis_port = std::atoi(val().c_str());
    else if (a == "--path-prefix") o.path_prefix = val();
    else if (a == "--room-channel") o.room_channel = val();
    else if (a == "--id-prefix") o.id_prefix = val();
    else if (a == "--sessions") o.sessions = std::atoi(val().c_str());
    else if (a == "--rate") o.rate = std::atof(val().c_str());
    else if (a == "--room-rate") o.room_rate = std::atof(val().c_str());
    else if (a == "--warmup-s") o.warmup_s = std::atof(val().c_str());
    else if (a == "--duration-s") o.duration_s = std::atof(val().c_str());
    else if (a == "--inflight") o.inflight = std::atoi(val().c_str());
    else if (a == "--size") o.size = static_cast<size_t>(std::atol(val().c_str()));
    else if (a == "--repeats") o.repeats = std::atoi(val().c_str());
    else if (a == "--hold-s") o.hold_s = std::atof(val().c_str());
    else if (a == "--drain-s") o.drain_s = std::atof(val().c_str());
    else if (a == "--connect-concurrency") o.connect_concurrency = std::atoi(val().c_str());
    else if (a == "--open-timeout-s") o.open_timeout_s = std::atof(val().c_str());
    else if (a == "--src-addrs") o.src_addrs = std::atoi(val().c_str());
    else if (a == "--no-saturation") o.skip_saturation = true;
    else if (a == "--gateway-pid") o.gateway_pid = std::atoi(val().c_str());
    else if (a == "--redis-pid") o.redis_pid = std::atoi(val().c_str());
    else if (a == "--label") o.label = val();
    else Usage(("unknown option " + a).c_str());
  }
  if (o.sessions < 1 || o.sessions > 60000) Usage("--sessions must be 1..60000");
  if (o.id_prefix.empty()) o.id_prefix = o.mode == Mode::kRoom ? "m" : "s";
  for (char ch : o.id_prefix)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_')
      Usage("--id-prefix takes letters, digits, '-' and '_' only");
  const bool ws = o.target != Target::kRedis;
  if (o.mode == Mode::kRoom && ws && o.sessions < 2)
    Usage("a WebSocket room needs at least 2 members (one sends)");
  if (ws && (o.port <= 0 || o.port > 65535)) Usage("--port is required");
  if (o.target == Target::kCentrifugo) {
    if (o.mode == Mode::kPubsub) Usage("--target centrifugo takes --mode room or hold");
    if (o.path_prefix.empty()) o.path_prefix = "/connection/websocket";
    // The channel goes into JSON as it is: keep it to characters that need no escaping.
    for (char ch : o.room_channel)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && !std::strchr(":_-.", ch))
        Usage("--room-channel takes letters, digits and :_-. for centrifugo");
  }
  if (o.room_rate < 0 || o.room_rate > 1e6) Usage("--room-rate must be in [0, 1e6]");
  if (o.repeats < 0) Usage("--repeats must be at least 0");
  if ((o.target == Target::kRedis || o.mode == Mode::kPubsub) &&
      (o.redis_port <= 0 || o.redis_port > 65535))
    Usage("--redis-port is required");
  if (o.mode == Mode::kHold && !ws) Usage("hold needs --target gateway or centrifugo");
  if (ws && o.path_prefix.empty()) Usage("--path-prefix is required");
  if (o.rate <= 0 || o.rate > 1e7) Usage("--rate must be in (0, 1e7]");
  if (o.inflight < 1 || o.inflight > 1000000) Usage("--inflight must be 1..1000000");
  if (o.connect_concurrency < 1) Usage("--connect-concurrency must be positive");
  if (o.duration_s <= 0 || o.duration_s > 600 || o.warmup_s < 0 || o.warmup_s > 60)
    Usage("--duration-s must be in (0, 600], --warmup-s in [0, 60]");
  if (o.size > (1u << 20)) Usage("--size must be at most 1 MiB");
  if (o.src_addrs < 0 || o.src_addrs > 250) Usage("--src-addrs must be 0..250");
  return o;
}

}  // namespace
}  // namespace wsbench

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  wsbench::Options opt = wsbench::ParseArgs(argc, argv);
  // One fd per subscriber: take the hard limit.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < static_cast<rlim_t>(opt.sessions) + 64) {
      std::fprintf(stderr, "fanout_load: open-files limit %llu is below --sessions + 64\n",
                   static_cast<unsigned long long>(rl.rlim_cur));
      return 2;
    }
  }
  wsbench::Tool tool(opt);
  return tool.Run();
}
