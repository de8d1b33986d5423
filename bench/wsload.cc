// wsload: the benchmark's WebSocket load generator.
//
// One thread, one epoll loop, raw framing (bench/ws_codec.h) with masked client frames: cheap
// enough that the proxy, not the load generator, is the bottleneck (it reports its own CPU use so
// the driver can check). Talks to 127.0.0.0/8 only. Prints exactly one JSON line of results on
// stdout (idle mode prints a second line when it is done holding); diagnostics go to stderr.
//
// Modes:
//   throughput  N connections, K binary messages of S bytes in flight on each (closed loop: every
//               echo sends the next message). The first 8 payload bytes carry the send time, so
//               the round trip is measured per message into a log-linear histogram.
//   idle        opens N connections (source addresses spread over 127.0.0.x), records the
//               watched process's RSS before and after, holds them, exits.
//   handshake   N slots, each looping connect, upgrade, close handshake, close: handshakes/s.
//   slowreader  one connection (path /flood) read at a fixed byte rate while the upstream floods;
//               samples the watched process's RSS over time.
// --watch-pids names the proxy's processes: their CPU time (from /proc) is read at the start and
// end of the measurement window, and their RSS for idle and slowreader.
//
// Threading: everything runs on the main thread; no class here is thread-safe.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <iterator>
#include <string>
#include <vector>

#include "bench/sys_util.h"
#include "bench/ws_codec.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace wsbench {
namespace {

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

enum class Mode { kThroughput, kIdle, kHandshake, kSlowReader };

struct Options {
  Mode mode = Mode::kThroughput;
  std::string mode_name = "throughput";
  std::string label;
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/";
  int conns = 10;
  int inflight = 1;
  size_t size = 64;
  double duration_s = 5;
  double warmup_s = 1;
  int src_addrs = 0;  // 0: let the kernel pick 127.0.0.1; n: spread over 127.0.0.2 .. 127.0.0.n+1
  int connect_concurrency = 256;
  double open_timeout_s = 60;
  std::vector<pid_t> watch_pids;
  pid_t echo_pid = 0;
  double rate = 1e6;  // slowreader: bytes per second
  double sample_s = 0.5;
  double hold_s = 1;
  int64_t rss_limit_kib = 4 << 20;  // slowreader: stop if the watched RSS passes this (4 GiB)
};

constexpr size_t kReadChunk = 256u << 10;
// Connection buffers above this are freed once empty (after a large message).
constexpr size_t kBufferKeep = 1u << 20;
constexpr uint64_t kMaxIncoming = 64ull << 20;

struct Conn {
  int fd = -1;
  enum State { kIdle, kConnecting, kHandshake, kOpen, kClosing } state = kIdle;
  uint32_t interest = 0;
  uint32_t generation = 0;  // bumped per socket, so a stale event never hits its successor
  uint64_t started_ns = 0;
  std::string key;
  ByteBuffer in;
  ByteBuffer out;
  // Reassembly of the message being received (its frames may be fragmented).
  bool in_message = false;
  uint64_t msg_ts = 0;
  uint64_t msg_len = 0;
};

struct Counters {
  uint64_t msgs = 0;
  uint64_t bytes = 0;
};

class Loader {
 public:
  explicit Loader(const Options& opt) : opt_(opt), conns_(opt.conns), rng_(MonotonicNs()) {
    filler_.resize(opt.size);
    for (size_t i = 0; i < filler_.size(); ++i) filler_[i] = 'A' + rng_.Next() % 26;
  }

  int Run() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) return Fatal("epoll_create1 failed");
    dst_.sin_family = AF_INET;
    dst_.sin_port = htons(static_cast<uint16_t>(opt_.port));
    if (inet_pton(AF_INET, opt_.host.c_str(), &dst_.sin_addr) != 1 ||
        (ntohl(dst_.sin_addr.s_addr) >> 24) != 127) {
      return Fatal("--host must be a 127.0.0.0/8 address");
    }
    host_header_ = opt_.host + ":" + std::to_string(opt_.port);
    switch (opt_.mode) {
      case Mode::kThroughput:
        return RunThroughput();
      case Mode::kIdle:
        return RunIdle();
      case Mode::kHandshake:
        return RunHandshake();
      case Mode::kSlowReader:
        return RunSlowReader();
    }
    return 1;
  }

 private:
  // ---- connection plumbing -------------------------------------------------------------------

  void NoteError(const std::string& what) {
    if (first_error_.empty()) first_error_ = what;
  }

  void SetInterest(int index, uint32_t events) {
    Conn& c = conns_[index];
    if (events == c.interest) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = (uint64_t{c.generation} << 32) | static_cast<uint32_t>(index);
    epoll_ctl(ep_, c.interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &ev);
    c.interest = events;
  }

  void Drop(int index) {
    Conn& c = conns_[index];
    if (c.fd >= 0) close(c.fd);
    if (c.state == Conn::kConnecting || c.state == Conn::kHandshake) --pending_;
    if (c.state == Conn::kOpen || c.state == Conn::kClosing) --open_now_;
    c.fd = -1;
    c.state = Conn::kIdle;
    c.interest = 0;
    c.in.Clear();
    c.out.Clear();
    c.in_message = false;
  }

  bool StartConnect(int index) {
    Conn& c = conns_[index];
    ++c.generation;
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      ++connect_failures_;
      NoteError(std::string("socket: ") + std::strerror(errno));
      return false;
    }
    if (opt_.src_addrs > 0) {
      // Spread source addresses so that no (source, destination) pair runs out of ephemeral
      // ports; IP_BIND_ADDRESS_NO_PORT defers the port choice to connect().
      int one = 1;
      setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
      sockaddr_in src{};
      src.sin_family = AF_INET;
      src.sin_addr.s_addr =
          htonl((127u << 24) | static_cast<uint32_t>(2 + next_src_++ % opt_.src_addrs));
      if (bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) {
        ++connect_failures_;
        NoteError(std::string("bind: ") + std::strerror(errno));
        close(c.fd);
        c.fd = -1;
        return false;
      }
    }
    c.started_ns = MonotonicNs();
    int rc = connect(c.fd, reinterpret_cast<sockaddr*>(&dst_), sizeof(dst_));
    if (rc != 0 && errno != EINPROGRESS) {
      ++connect_failures_;
      NoteError(std::string("connect: ") + std::strerror(errno));
      close(c.fd);
      c.fd = -1;
      return false;
    }
    c.state = Conn::kConnecting;
    ++pending_;
    SetInterest(index, EPOLLOUT);
    return true;
  }

  void QueueFrame(Conn& c, uint8_t opcode, const uint8_t* payload, size_t len) {
    uint8_t mask[4];
    uint32_t m = static_cast<uint32_t>(rng_.Next());
    std::memcpy(mask, &m, 4);
    uint8_t* p = c.out.PrepareWrite(kMaxFrameHeader + len);
    size_t h = WriteFrameHeader(p, true, opcode, len, mask);
    if (len > 0) {
      std::memcpy(p + h, payload, len);
      ApplyMask(p + h, len, mask, 0);
    }
    c.out.Commit(h + len);
  }

  // A binary message of opt_.size bytes whose first 8 bytes are the send time.
  void QueueTimedMessage(Conn& c) {
    uint8_t mask[4];
    uint32_t m = static_cast<uint32_t>(rng_.Next());
    std::memcpy(mask, &m, 4);
    const size_t len = opt_.size;
    uint8_t* p = c.out.PrepareWrite(kMaxFrameHeader + len);
    size_t h = WriteFrameHeader(p, true, kOpBinary, len, mask);
    std::memcpy(p + h, filler_.data(), len);
    uint64_t now = MonotonicNs();
    std::memcpy(p + h, &now, sizeof(now));
    ApplyMask(p + h, len, mask, 0);
    c.out.Commit(h + len);
  }

  void QueueClose(Conn& c, uint16_t code) {
    uint8_t payload[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
    QueueFrame(c, kOpClose, payload, 2);
  }

  // Returns false if the connection failed.
  bool Flush(int index) {
    Conn& c = conns_[index];
    while (!c.out.empty()) {
      ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        NoteError(std::string("send: ") + std::strerror(errno));
        return false;
      }
      c.out.Consume(static_cast<size_t>(n));
    }
    uint32_t want = (c.state == Conn::kConnecting) ? EPOLLOUT : EPOLLIN;
    if (!c.out.empty()) want |= EPOLLOUT;
    SetInterest(index, want);
    return true;
  }

  // What became of a connection after an event: still running, finished as planned (the close
  // handshake of the handshake mode), or failed. The caller drops finished connections.
  enum class Outcome { kContinue, kDoneOk, kFailed };

  Outcome OnEvent(int index, uint32_t events) {
    Conn& c = conns_[index];
    if (c.state == Conn::kConnecting) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return Outcome::kContinue;
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        ++connect_failures_;
        NoteError(std::string("connect: ") + std::strerror(err));
        return Outcome::kFailed;
      }
      SetNoDelay(c.fd);
      c.key = NewKey();
      std::string req = BuildUpgradeRequest(host_header_, opt_.path, c.key);
      c.out.Append(req.data(), req.size());
      c.state = Conn::kHandshake;
      return Flush(index) ? Outcome::kContinue : Outcome::kFailed;
    }
    if (events & EPOLLIN) {
      for (int i = 0; i < 8; ++i) {
        ssize_t n = recv(c.fd, scratch_.get(), kReadChunk, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        if (n <= 0) {
          if (c.state == Conn::kClosing) return Outcome::kDoneOk;
          std::string why = n == 0 ? "closed by the peer" : std::strerror(errno);
          if (c.state == Conn::kHandshake) {
            ++handshake_failures_;
            NoteError("handshake: connection " + why + " before the upgrade answer");
          } else {
            ++closed_early_;
            NoteError("connection " + why);
          }
          return Outcome::kFailed;
        }
        Outcome o = Feed(index, scratch_.get(), static_cast<size_t>(n));
        if (o != Outcome::kContinue) return o;
        if (static_cast<size_t>(n) < kReadChunk) break;
      }
    } else if (events & (EPOLLERR | EPOLLHUP)) {
      ++closed_early_;
      NoteError("socket error or hang-up");
      return Outcome::kFailed;
    }
    return Flush(index) ? Outcome::kContinue : Outcome::kFailed;
  }

  // Handles newly received bytes straight from the shared read buffer; only the tail of an
  // incomplete frame is copied into the connection's buffer (idle connections hold none).
  Outcome Feed(int index, const uint8_t* data, size_t len) {
    Conn& c = conns_[index];
    size_t used = 0;
    Outcome o;
    if (c.in.empty()) {
      o = Process(index, data, len, &used);
      if (o == Outcome::kContinue) c.in.Append(data + used, len - used);
    } else {
      c.in.Append(data, len);
      o = Process(index, c.in.data(), c.in.size(), &used);
      if (o == Outcome::kContinue) c.in.Consume(used);
    }
    c.in.ShrinkIfIdle(kBufferKeep);
    return o;
  }

  // Processes data[0, len); *used says how many bytes were complete frames (or the handshake).
  Outcome Process(int index, const uint8_t* data, size_t len, size_t* used) {
    Conn& c = conns_[index];
    *used = 0;
    if (c.state == Conn::kHandshake) {
      UpgradeResponse resp;
      const char* error = nullptr;
      HttpStatus st =
          ParseUpgradeResponse(reinterpret_cast<const char*>(data), len, c.key, &resp, &error);
      if (st == HttpStatus::kNeedMore) return Outcome::kContinue;
      if (st == HttpStatus::kError) {
        ++handshake_failures_;
        NoteError(std::string("handshake: ") + error + " (" + resp.status_line + ")");
        return Outcome::kFailed;
      }
      *used = resp.consumed;
      c.state = Conn::kOpen;
      --pending_;
      OnOpen(index);
    }
    while ((c.state == Conn::kOpen || c.state == Conn::kClosing) && *used < len) {
      FrameHeader fh;
      const char* error = nullptr;
      ParseStatus st =
          ParseFrameHeader(data + *used, len - *used, Role::kClient, kMaxIncoming, &fh, &error);
      if (st == ParseStatus::kNeedMore) break;
      if (st == ParseStatus::kError) {
        ++protocol_errors_;
        NoteError(std::string("frame: ") + error);
        return Outcome::kFailed;
      }
      if (len - *used - fh.header_len < fh.payload_len) break;
      const uint8_t* payload = data + *used + fh.header_len;
      const size_t plen = static_cast<size_t>(fh.payload_len);
      *used += fh.header_len + plen;
      switch (fh.opcode) {
        case kOpPing:
          QueueFrame(c, kOpPong, payload, plen);
          break;
        case kOpPong:
          break;
        case kOpClose:
          if (c.state == Conn::kClosing) return Outcome::kDoneOk;
          ++closed_early_;
          NoteError(DescribeClose(payload, plen));
          return Outcome::kFailed;
        default:
          if (fh.opcode != kOpContinuation) {
            if (c.in_message) {
              ++protocol_errors_;
              NoteError("new message before the previous one ended");
              return Outcome::kFailed;
            }
            c.in_message = true;
            c.msg_len = 0;
            c.msg_ts = 0;
            if (plen >= sizeof(uint64_t)) std::memcpy(&c.msg_ts, payload, sizeof(uint64_t));
          } else if (!c.in_message) {
            ++protocol_errors_;
            NoteError("continuation frame outside a message");
            return Outcome::kFailed;
          }
          c.msg_len += plen;
          if (fh.fin) {
            c.in_message = false;
            OnMessage(index, c.msg_ts, c.msg_len);
          }
      }
    }
    return Outcome::kContinue;
  }

  static std::string DescribeClose(const uint8_t* payload, size_t len) {
    std::string what = "close frame from the peer";
    if (len >= 2) {
      what += ": code " + std::to_string((payload[0] << 8) | payload[1]);
      if (len > 2) {
        what +=
            " reason \"" + std::string(reinterpret_cast<const char*>(payload + 2), len - 2) + "\"";
      }
    }
    return what;
  }

  std::string NewKey() {
    uint8_t raw[16];
    uint64_t a = rng_.Next(), b = rng_.Next();
    std::memcpy(raw, &a, 8);
    std::memcpy(raw + 8, &b, 8);
    return Base64Encode(raw, sizeof(raw));
  }

  // Runs one epoll round with a timeout; returns the number of events handled.
  int Poll(int timeout_ms) {
    int n = epoll_wait(ep_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
    if (n < 0) return 0;
    for (int i = 0; i < n; ++i) {
      int index = static_cast<int>(events_[i].data.u64 & 0xFFFFFFFFu);
      const uint32_t generation = static_cast<uint32_t>(events_[i].data.u64 >> 32);
      // Dropped (and maybe reconnected) earlier in this batch: the event is for the old socket.
      if (conns_[index].fd < 0 || conns_[index].generation != generation) continue;
      Outcome o = OnEvent(index, events_[i].events);
      if (o != Outcome::kContinue) OnFinished(index, o == Outcome::kDoneOk);
    }
    return n;
  }

  // ---- per-mode hooks ------------------------------------------------------------------------

  void OnOpen(int index) {
    Conn& c = conns_[index];
    ++opened_;
    ++open_now_;
    if (opt_.mode == Mode::kThroughput) {
      for (int k = 0; k < opt_.inflight; ++k) QueueTimedMessage(c);
    } else if (opt_.mode == Mode::kHandshake) {
      uint64_t now = MonotonicNs();
      if (now >= window_start_ && now < window_end_) handshake_hist_.Record(now - c.started_ns);
      QueueClose(c, 1000);
      c.state = Conn::kClosing;
    }
  }

  void OnMessage(int index, uint64_t ts, uint64_t len) {
    Conn& c = conns_[index];
    if (opt_.mode != Mode::kThroughput) return;
    uint64_t now = MonotonicNs();
    if (len != opt_.size || ts == 0 || ts > now) {
      ++protocol_errors_;
      NoteError("echoed message has the wrong size or timestamp");
    } else if (now >= window_start_ && now < window_end_) {
      hist_.Record(now - ts);
      ++window_.msgs;
      window_.bytes += len;
    }
    if (!stopping_) QueueTimedMessage(c);
  }

  void OnFinished(int index, bool ok) {
    Drop(index);
    if (opt_.mode == Mode::kHandshake) {
      uint64_t now = MonotonicNs();
      if (ok && now >= window_start_ && now < window_end_) ++completed_;
      if (!ok) ++cycle_failures_;
      if (!stopping_) StartConnect(index);
    }
  }

  // ---- modes ---------------------------------------------------------------------------------

  // Opens every connection, at most connect_concurrency at a time. Returns when all are open or
  // failed, or at the deadline.
  void OpenAll(uint64_t deadline) {
    int next = 0;
    while (!g_stop && MonotonicNs() < deadline) {
      while (next < opt_.conns && pending_ < opt_.connect_concurrency) StartConnect(next++);
      if (next >= opt_.conns && pending_ == 0) break;
      Poll(10);
    }
  }

  void ReadWindowStart() {
    cpu_start_ = opt_.watch_pids.empty() ? 0 : TotalCpuSeconds(opt_.watch_pids);
    echo_cpu_start_ = opt_.echo_pid ? ProcessCpuSeconds(opt_.echo_pid) : 0;
    self_cpu_start_ = SelfCpuSeconds();
  }

  // Appends the CPU figures of the window to the JSON line being built.
  void AppendCpuFigures(std::string* json, double window_s, double units) {
    double proxy = opt_.watch_pids.empty() ? -1 : TotalCpuSeconds(opt_.watch_pids) - cpu_start_;
    double echo = opt_.echo_pid ? ProcessCpuSeconds(opt_.echo_pid) - echo_cpu_start_ : -1;
    double self = SelfCpuSeconds() - self_cpu_start_;
    char buf[256];
    std::snprintf(buf, sizeof(buf),
                  ",\"proxy_cpu_s\":%.4f,\"proxy_cpu_us_per_unit\":%.3f,\"load_cpu_util\":%.3f,"
                  "\"echo_cpu_util\":%.3f",
                  proxy, proxy >= 0 && units > 0 ? proxy * 1e6 / units : -1, self / window_s,
                  echo >= 0 ? echo / window_s : -1);
    *json += buf;
  }

  void AppendCommon(std::string* json) {
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "\"mode\":\"%s\",\"label\":\"%s\",\"conns\":%d,\"opened\":%llu,"
                  "\"connect_failures\":%llu,\"handshake_failures\":%llu,\"closed_early\":%llu,"
                  "\"protocol_errors\":%llu",
                  opt_.mode_name.c_str(), JsonEscape(opt_.label).c_str(), opt_.conns,
                  static_cast<unsigned long long>(opened_),
                  static_cast<unsigned long long>(connect_failures_),
                  static_cast<unsigned long long>(handshake_failures_),
                  static_cast<unsigned long long>(closed_early_),
                  static_cast<unsigned long long>(protocol_errors_));
    *json += buf;
  }

  int Finish(std::string json, bool ok, const std::string& error) {
    std::string line = "{\"ok\":";
    line += ok ? "true," : "false,";
    AppendCommon(&line);
    line += json;
    std::string err = error.empty() ? first_error_ : error;
    line += ",\"error\":\"" + JsonEscape(err) + "\"}";
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    return ok ? 0 : 1;
  }

  int Fatal(const std::string& error) { return Finish("", false, error); }

  int RunThroughput() {
    const uint64_t t0 = MonotonicNs();
    // Messages flow as soon as each connection opens; the window starts once all are open.
    window_start_ = window_end_ = UINT64_MAX;
    OpenAll(t0 + static_cast<uint64_t>(opt_.open_timeout_s * 1e9));
    if (opened_ < static_cast<uint64_t>(opt_.conns)) {
      return Finish("", false,
                    "only " + std::to_string(opened_) + " of " + std::to_string(opt_.conns) +
                        " connections opened: " + first_error_);
    }
    const uint64_t open_ns = MonotonicNs();
    window_start_ = open_ns + static_cast<uint64_t>(opt_.warmup_s * 1e9);
    window_end_ = window_start_ + static_cast<uint64_t>(opt_.duration_s * 1e9);
    bool started = false;
    uint64_t now;
    while (!g_stop && (now = MonotonicNs()) < window_end_) {
      if (!started && now >= window_start_) {
        ReadWindowStart();
        started = true;
      }
      Poll(started ? 5 : 1);
    }
    stopping_ = true;
    const double window_s = started ? static_cast<double>(MonotonicNs() - window_start_) / 1e9 : 0;
    std::string json;
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  ",\"inflight\":%d,\"size\":%zu,\"duration_s\":%.3f,\"msgs\":%llu,"
                  "\"msgs_per_s\":%.1f,\"mbytes_per_s\":%.2f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
                  "\"p99_us\":%.1f,\"max_us\":%.1f",
                  opt_.inflight, opt_.size, window_s, static_cast<unsigned long long>(window_.msgs),
                  window_s > 0 ? window_.msgs / window_s : 0,
                  window_s > 0 ? window_.bytes / window_s / 1e6 : 0, hist_.Quantile(0.5) / 1e3,
                  hist_.Quantile(0.9) / 1e3, hist_.Quantile(0.99) / 1e3, hist_.max() / 1e3);
    json += buf;
    // The round-trip distribution as quantiles (µs), for the CDF plots of `make bench`.
    json += ",\"cdf_us\":[";
    static constexpr double kCdfQuantiles[] = {0.01, 0.05, 0.1,  0.2,  0.3,   0.4,    0.5,
                                               0.6,  0.7,  0.8,  0.9,  0.95,  0.99,   0.995,
                                               0.999, 0.9995, 0.9999};
    for (size_t i = 0; i < std::size(kCdfQuantiles); ++i) {
      std::snprintf(buf, sizeof(buf), "%s[%.4f,%.1f]", i == 0 ? "" : ",", kCdfQuantiles[i],
                    hist_.Quantile(kCdfQuantiles[i]) / 1e3);
      json += buf;
    }
    json += "]";
    if (started) AppendCpuFigures(&json, window_s, static_cast<double>(window_.msgs));
    bool ok = started && window_.msgs > 0 && closed_early_ == 0 && protocol_errors_ == 0;
    return Finish(json, ok, ok ? "" : first_error_.empty() ? "no messages" : first_error_);
  }

  int RunIdle() {
    const int64_t rss_before = TotalRssKib(opt_.watch_pids);
    const uint64_t t0 = MonotonicNs();
    window_start_ = window_end_ = UINT64_MAX;
    OpenAll(t0 + static_cast<uint64_t>(opt_.open_timeout_s * 1e9));
    const double open_s = static_cast<double>(MonotonicNs() - t0) / 1e9;
    const int64_t rss_open = TotalRssKib(opt_.watch_pids);
    // Keep serving the connections (pings) while the proxy settles, then read RSS again.
    const uint64_t hold_end = MonotonicNs() + static_cast<uint64_t>(opt_.hold_s * 1e9);
    while (!g_stop && MonotonicNs() < hold_end) Poll(20);
    const int64_t rss_after = TotalRssKib(opt_.watch_pids);
    const uint64_t still_open = open_now_;
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  ",\"open_s\":%.3f,\"rss_before_kib\":%lld,\"rss_open_kib\":%lld,"
                  "\"rss_after_kib\":%lld,\"still_open\":%llu,\"kib_per_conn\":%.3f",
                  open_s, static_cast<long long>(rss_before), static_cast<long long>(rss_open),
                  static_cast<long long>(rss_after), static_cast<unsigned long long>(still_open),
                  still_open > 0 && rss_before >= 0 && rss_after >= 0
                      ? static_cast<double>(rss_after - rss_before) / still_open
                      : -1.0);
    bool ok = still_open == static_cast<uint64_t>(opt_.conns) && rss_before >= 0;
    return Finish(buf, ok,
                  ok ? ""
                     : "only " + std::to_string(still_open) + " of " + std::to_string(opt_.conns) +
                           " connections open: " + first_error_);
  }

  int RunHandshake() {
    const uint64_t t0 = MonotonicNs();
    window_start_ = t0 + static_cast<uint64_t>(opt_.warmup_s * 1e9);
    window_end_ = window_start_ + static_cast<uint64_t>(opt_.duration_s * 1e9);
    for (int i = 0; i < opt_.conns; ++i) StartConnect(i);
    bool started = false;
    uint64_t now;
    while (!g_stop && (now = MonotonicNs()) < window_end_) {
      if (!started && now >= window_start_) {
        ReadWindowStart();
        started = true;
      }
      // A slot whose connect() failed outright restarts here (bounded by the window).
      for (int i = 0; i < opt_.conns; ++i) {
        if (conns_[i].fd < 0) StartConnect(i);
      }
      Poll(5);
    }
    stopping_ = true;
    const double window_s = started ? static_cast<double>(MonotonicNs() - window_start_) / 1e9 : 0;
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  ",\"duration_s\":%.3f,\"handshakes\":%llu,\"handshakes_per_s\":%.1f,"
                  "\"cycle_failures\":%llu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f",
                  window_s, static_cast<unsigned long long>(completed_),
                  window_s > 0 ? completed_ / window_s : 0,
                  static_cast<unsigned long long>(cycle_failures_),
                  handshake_hist_.Quantile(0.5) / 1e3, handshake_hist_.Quantile(0.99) / 1e3,
                  handshake_hist_.max() / 1e3);
    std::string json = buf;
    if (started) AppendCpuFigures(&json, window_s, static_cast<double>(completed_));
    // A few failed cycles under load are reported, not fatal; most must succeed.
    bool ok = started && completed_ > 0 && cycle_failures_ * 100 <= completed_;
    return Finish(json, ok, ok ? "" : first_error_.empty() ? "no handshakes" : first_error_);
  }

  int RunSlowReader() {
    window_start_ = window_end_ = UINT64_MAX;
    const int64_t rss_before = TotalRssKib(opt_.watch_pids);
    OpenAll(MonotonicNs() + static_cast<uint64_t>(opt_.open_timeout_s * 1e9));
    if (opened_ != 1) return Finish("", false, "connection did not open: " + first_error_);
    Conn& c = conns_[0];
    // From here on the socket is read by the rate limiter, not by the event loop.
    epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    c.interest = 0;
    const uint64_t t0 = MonotonicNs();
    const uint64_t end = t0 + static_cast<uint64_t>(opt_.duration_s * 1e9);
    const uint64_t sample_ns = static_cast<uint64_t>(opt_.sample_s * 1e9);
    uint64_t next_sample = t0;
    uint64_t read_bytes = c.in.size();  // what arrived with the handshake answer
    double tokens = 0;
    uint64_t last = t0;
    bool closed = false, rss_limit_hit = false;
    double closed_at = -1;
    std::vector<std::pair<double, int64_t>> samples;  // (seconds, KiB)
    std::vector<uint8_t> scratch(kReadChunk);
    uint64_t now;
    while (!g_stop && (now = MonotonicNs()) < end) {
      if (now >= next_sample) {
        int64_t rss = TotalRssKib(opt_.watch_pids);
        samples.emplace_back(static_cast<double>(now - t0) / 1e9, rss);
        next_sample += sample_ns;
        if (rss > opt_.rss_limit_kib) {
          rss_limit_hit = true;
          NoteError("watched RSS passed --rss-limit-mib; stopped early");
          break;
        }
      }
      if (!closed) {
        // Token bucket: at most 50 ms worth of reading in one go, so the rate stays smooth.
        tokens =
            std::min(tokens + opt_.rate * static_cast<double>(now - last) / 1e9, opt_.rate * 0.05);
        last = now;
        while (tokens >= 1) {
          size_t want = std::min(scratch.size(), static_cast<size_t>(tokens));
          ssize_t n = recv(c.fd, scratch.data(), want, MSG_DONTWAIT);
          if (n > 0) {
            read_bytes += static_cast<uint64_t>(n);
            tokens -= static_cast<double>(n);
            continue;
          }
          if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
          closed = true;  // the proxy closed the slow consumer: a legitimate policy
          closed_at = static_cast<double>(now - t0) / 1e9;
          break;
        }
      }
      // A rate limiter's tick, not a synchronisation: nothing waits for another process here.
      usleep(5000);
    }
    const double elapsed = static_cast<double>(MonotonicNs() - t0) / 1e9;
    // Growth over the second half of the samples actually taken (also when stopped early): a
    // proxy that bounds its buffers levels off and shows ~0 here.
    int64_t rss_max = -1, rss_half = -1, rss_last = -1;
    std::string series;
    for (size_t i = 0; i < samples.size(); ++i) {
      rss_max = std::max(rss_max, samples[i].second);
      if (i == samples.size() / 2) rss_half = samples[i].second;
      rss_last = samples[i].second;
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%s[%.2f,%lld]", i ? "," : "", samples[i].first,
                    static_cast<long long>(samples[i].second));
      series += buf;
    }
    std::string json;
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  ",\"duration_s\":%.3f,\"rate_target\":%.0f,\"read_bytes\":%llu,"
                  "\"read_rate\":%.0f,\"closed_by_peer\":%s,\"closed_at_s\":%.2f,"
                  "\"rss_before_kib\":%lld,\"rss_max_kib\":%lld,\"rss_half_kib\":%lld,"
                  "\"rss_last_kib\":%lld,\"rss_growth_kib\":%lld,\"rss_growth_2nd_half_kib\":%lld,"
                  "\"rss_limit_hit\":%s,\"rss_series\":[",
                  elapsed, opt_.rate, static_cast<unsigned long long>(read_bytes),
                  elapsed > 0 ? read_bytes / elapsed : 0, closed ? "true" : "false", closed_at,
                  static_cast<long long>(rss_before), static_cast<long long>(rss_max),
                  static_cast<long long>(rss_half), static_cast<long long>(rss_last),
                  static_cast<long long>(rss_max - rss_before),
                  static_cast<long long>(rss_half >= 0 ? rss_last - rss_half : -1),
                  rss_limit_hit ? "true" : "false");
    json = buf + series + "]";
    bool ok = rss_before >= 0 && read_bytes > 0;
    return Finish(json, ok, ok ? first_error_ : "nothing read: " + first_error_);
  }

  Options opt_;
  std::vector<Conn> conns_;
  FastRng rng_;
  std::vector<uint8_t> filler_;
  std::vector<epoll_event> events_ = std::vector<epoll_event>(1024);
  std::unique_ptr<uint8_t[]> scratch_{new uint8_t[kReadChunk]};  // shared read buffer
  int ep_ = -1;
  sockaddr_in dst_{};
  std::string host_header_;
  uint32_t next_src_ = 0;
  int pending_ = 0;        // connections connecting or handshaking
  uint64_t open_now_ = 0;  // connections past the handshake and not yet dropped
  bool stopping_ = false;
  uint64_t window_start_ = 0, window_end_ = 0;
  double cpu_start_ = 0, echo_cpu_start_ = 0, self_cpu_start_ = 0;
  Counters window_;
  LogLinearHistogram hist_;
  LogLinearHistogram handshake_hist_;
  uint64_t opened_ = 0, completed_ = 0, cycle_failures_ = 0;
  uint64_t connect_failures_ = 0, handshake_failures_ = 0, closed_early_ = 0, protocol_errors_ = 0;
  std::string first_error_;
};

void Usage() {
  std::fprintf(
      stderr,
      "usage: wsload --mode throughput|idle|handshake|slowreader --port N [options]\n"
      "  --host 127.0.0.1      destination (127.0.0.0/8 only)\n"
      "  --path /              request path\n"
      "  --conns N             connections (handshake: concurrent slots)        [10]\n"
      "  --inflight K          messages in flight per connection (throughput)   [1]\n"
      "  --size S              message size in bytes, >= 8 (throughput)          [64]\n"
      "  --duration SECONDS    measurement window                                [5]\n"
      "  --warmup SECONDS      traffic before the window (throughput, handshake) [1]\n"
      "  --src-addrs N         spread source addresses over 127.0.0.2..N+1       [0]\n"
      "  --connect-concurrency N  connections opening at once                    [256]\n"
      "  --open-timeout SECONDS                                                  [60]\n"
      "  --watch-pids P1,P2    proxy processes: CPU time and RSS read from /proc\n"
      "  --echo-pid P          upstream process: its CPU use is reported\n"
      "  --rate BYTES_PER_S    slowreader read rate                              [1000000]\n"
      "  --sample SECONDS      slowreader RSS sampling period                    [0.5]\n"
      "  --hold SECONDS        idle: how long to hold the connections            [1]\n"
      "  --rss-limit-mib N     slowreader: stop early above this watched RSS     [4096]\n"
      "  --label TEXT          copied into the JSON result\n");
}

bool ParseArgs(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") return false;
    if (i + 1 >= argc) {
      std::fprintf(stderr, "wsload: %s needs a value\n", a.c_str());
      return false;
    }
    std::string v = argv[++i];
    if (a == "--mode") {
      opt->mode_name = v;
      if (v == "throughput")
        opt->mode = Mode::kThroughput;
      else if (v == "idle")
        opt->mode = Mode::kIdle;
      else if (v == "handshake")
        opt->mode = Mode::kHandshake;
      else if (v == "slowreader")
        opt->mode = Mode::kSlowReader;
      else {
        std::fprintf(stderr, "wsload: unknown mode %s\n", v.c_str());
        return false;
      }
      continue;
    }
    if (a == "--host") {
      opt->host = v;
      continue;
    }
    if (a == "--label") {
      opt->label = v;
      continue;
    }
    if (a == "--path") {
      if (v.empty() || v[0] != '/' || v.find_first_of(" \r\n") != std::string::npos) {
        std::fprintf(stderr, "wsload: --path must start with / and contain no spaces\n");
        return false;
      }
      opt->path = v;
      continue;
    }
    if (a == "--watch-pids") {
      if (!ParsePidList(v, &opt->watch_pids)) {
        std::fprintf(stderr, "wsload: bad --watch-pids %s\n", v.c_str());
        return false;
      }
      continue;
    }
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0' || !(d >= 0)) {
      std::fprintf(stderr, "wsload: bad value for %s: %s\n", a.c_str(), v.c_str());
      return false;
    }
    bool in_range = true;
    if (a == "--port") {
      in_range = d >= 1 && d <= 65535;
      opt->port = static_cast<int>(d);
    } else if (a == "--conns") {
      in_range = d >= 1 && d <= 100000;
      opt->conns = static_cast<int>(d);
    } else if (a == "--inflight") {
      in_range = d >= 1 && d <= 100000;
      opt->inflight = static_cast<int>(d);
    } else if (a == "--size") {
      in_range = d >= 8 && d <= (16 << 20);
      opt->size = static_cast<size_t>(d);
    } else if (a == "--duration") {
      in_range = d > 0 && d <= 3600;
      opt->duration_s = d;
    } else if (a == "--warmup") {
      in_range = d <= 600;
      opt->warmup_s = d;
    } else if (a == "--src-addrs") {
      in_range = d <= 250;
      opt->src_addrs = static_cast<int>(d);
    } else if (a == "--connect-concurrency") {
      in_range = d >= 1;
      opt->connect_concurrency = static_cast<int>(d);
    } else if (a == "--open-timeout") {
      in_range = d > 0 && d <= 600;
      opt->open_timeout_s = d;
    } else if (a == "--echo-pid") {
      in_range = d >= 1;
      opt->echo_pid = static_cast<pid_t>(d);
    } else if (a == "--rate") {
      in_range = d >= 1;
      opt->rate = d;
    } else if (a == "--sample") {
      in_range = d >= 0.01 && d <= 60;
      opt->sample_s = d;
    } else if (a == "--hold") {
      in_range = d <= 3600;
      opt->hold_s = d;
    } else if (a == "--rss-limit-mib") {
      in_range = d >= 1;
      opt->rss_limit_kib = static_cast<int64_t>(d * 1024);
    } else {
      std::fprintf(stderr, "wsload: unknown option %s\n", a.c_str());
      return false;
    }
    if (!in_range) {
      std::fprintf(stderr, "wsload: value out of range for %s: %s\n", a.c_str(), v.c_str());
      return false;
    }
  }
  if (opt->port == 0) {
    std::fprintf(stderr, "wsload: --port is required\n");
    return false;
  }
  if ((opt->mode == Mode::kIdle || opt->mode == Mode::kSlowReader) && opt->watch_pids.empty()) {
    std::fprintf(stderr, "wsload: %s mode needs --watch-pids\n", opt->mode_name.c_str());
    return false;
  }
  if (opt->mode == Mode::kSlowReader) opt->conns = 1;
  return true;
}

}  // namespace
}  // namespace wsbench

int main(int argc, char** argv) {
  wsbench::Options opt;
  if (!wsbench::ParseArgs(argc, argv, &opt)) {
    wsbench::Usage();
    return 2;
  }
  // Idle mode holds thousands of sockets: use the whole hard limit.
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, wsbench::OnSignal);
  signal(SIGINT, wsbench::OnSignal);
  wsbench::Loader loader(opt);
  return loader.Run();
}
