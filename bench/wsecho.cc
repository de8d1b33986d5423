// wsecho: the WebSocket echo upstream that the benchmark puts behind both proxies.
//
// One thread, one epoll loop, raw framing (bench/ws_codec.h): it must cost far less than the proxy
// in front of it, and it shares no code with websocketpp. Every path echoes each frame back as it
// came (opcode and FIN preserved, so fragmented messages come back fragmented the same way) except
// /flood, where the server also sends binary messages as fast as the socket accepts them: the
// upstream half of the slow-reader scenario.
//
// Prints one JSON line {"listening":PORT} on stdout once it accepts connections, so a driver can
// ask for port 0 and learn the port without a race. Exits on SIGTERM/SIGINT or after --lifetime-s.
//
// Threading: everything runs on the main thread; no class here is thread-safe.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/sys_util.h"
#include "bench/ws_codec.h"

namespace wsbench {
namespace {

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  size_t flood_size = 16 * 1024;
  uint64_t max_message = 64ull << 20;
  double lifetime_s = 3600;
};

// Stop reading a connection whose echoes pile up beyond this, resume below the low mark: the echo
// server's own memory stays bounded whatever the peer does.
constexpr size_t kOutHighWater = 8u << 20;
constexpr size_t kOutLowWater = 1u << 20;
// A flood connection keeps at most this much queued in user space; the kernel buffers the rest.
constexpr size_t kFloodQueue = 256u << 10;
constexpr size_t kReadChunk = 256u << 10;
// Connection buffers above this are freed once empty (after a large message).
constexpr size_t kBufferKeep = 1u << 20;

struct Conn {
  int fd = -1;
  uint32_t generation = 0;  // distinguishes a reused fd from its predecessor in one event batch
  enum State { kHandshake, kOpen, kClosing } state = kHandshake;
  bool flood = false;
  bool close_after_flush = false;
  bool paused = false;
  uint32_t interest = 0;  // events currently registered with epoll
  ByteBuffer in;
  ByteBuffer out;
};

class EchoServer {
 public:
  explicit EchoServer(const Options& opt) : opt_(opt) {
    flood_frame_.resize(kMaxFrameHeader + opt.flood_size);
    size_t h = WriteFrameHeader(flood_frame_.data(), true, kOpBinary, opt.flood_size, nullptr);
    flood_frame_.resize(h + opt.flood_size);
    FastRng rng(42);
    for (size_t i = h; i < flood_frame_.size(); ++i) flood_frame_[i] = 'a' + rng.Next() % 26;
  }

  bool Listen() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ep_ < 0 || listen_fd_ < 0) return Fail("socket");
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(opt_.port));
    if (inet_pton(AF_INET, opt_.host.c_str(), &addr.sin_addr) != 1) return Fail("bad --host");
    if ((ntohl(addr.sin_addr.s_addr) >> 24) != 127) {
      std::fprintf(stderr, "wsecho: --host must be a 127.0.0.0/8 address\n");
      return false;
    }
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Fail("bind");
    }
    if (listen(listen_fd_, 4096) != 0) return Fail("listen");
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint32_t>(listen_fd_);
    epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd_, &ev);
    std::printf("{\"listening\":%d}\n", ntohs(addr.sin_port));
    std::fflush(stdout);
    return true;
  }

  void Run() {
    const uint64_t deadline = MonotonicNs() + static_cast<uint64_t>(opt_.lifetime_s * 1e9);
    std::vector<epoll_event> events(512);
    while (!g_stop && MonotonicNs() < deadline) {
      int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 200);
      if (n < 0) {
        if (errno == EINTR) continue;
        Fail("epoll_wait");
        return;
      }
      for (int i = 0; i < n; ++i) {
        const int fd = static_cast<int>(events[i].data.u64 & 0xFFFFFFFFu);
        if (fd == listen_fd_) {
          AcceptAll();
          continue;
        }
        Conn* c = Find(fd);
        if (c == nullptr || c->generation != (events[i].data.u64 >> 32)) continue;
        if (!HandleEvents(c, events[i].events)) CloseConn(c);
      }
    }
  }

 private:
  static bool Fail(const char* what) {
    std::fprintf(stderr, "wsecho: %s: %s\n", what, std::strerror(errno));
    return false;
  }

  Conn* Find(int fd) {
    return fd >= 0 && static_cast<size_t>(fd) < conns_.size() ? conns_[fd].get() : nullptr;
  }

  void AcceptAll() {
    for (int i = 0; i < 1024; ++i) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
          if (!warned_emfile_) std::fprintf(stderr, "wsecho: out of file descriptors\n");
          warned_emfile_ = true;
        }
        return;
      }
      SetNoDelay(fd);
      if (static_cast<size_t>(fd) >= conns_.size()) conns_.resize(fd + 1024);
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      c->generation = ++generation_;
      conns_[fd] = std::move(c);
      SetInterest(conns_[fd].get(), EPOLLIN);
    }
  }

  void SetInterest(Conn* c, uint32_t events) {
    if (events == c->interest) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = (uint64_t{c->generation} << 32) | static_cast<uint32_t>(c->fd);
    epoll_ctl(ep_, c->interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev);
    c->interest = events;
  }

  void CloseConn(Conn* c) {
    int fd = c->fd;
    close(fd);  // also removes it from the epoll set
    conns_[fd].reset();
  }

  // Returns false when the connection must be closed now.
  bool HandleEvents(Conn* c, uint32_t events) {
    if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) return false;
    if (events & EPOLLIN) {
      for (int i = 0; i < 4 && !c->paused && c->state != Conn::kClosing; ++i) {
        ssize_t n = recv(c->fd, scratch_.get(), kReadChunk, 0);
        if (n == 0) return false;
        if (n < 0) {
          if (errno == EAGAIN || errno == EINTR) break;
          return false;
        }
        Feed(c, scratch_.get(), static_cast<size_t>(n));
        if (static_cast<size_t>(n) < kReadChunk) break;
      }
    }
    return Flush(c);
  }

  // Handles newly received bytes. They are processed straight from the shared read buffer; only
  // the tail of an incomplete frame (or request) is copied into the connection's own buffer, so
  // an idle connection holds no read buffer at all.
  void Feed(Conn* c, uint8_t* data, size_t len) {
    if (c->in.empty()) {
      size_t used = Process(c, data, len);
      if (c->state != Conn::kClosing) c->in.Append(data + used, len - used);
    } else {
      c->in.Append(data, len);
      c->in.Consume(Process(c, c->in.data(), c->in.size()));
      if (c->state == Conn::kClosing) c->in.Clear();
    }
    c->in.ShrinkIfIdle(kBufferKeep);
  }

  void QueueClose(Conn* c, uint16_t code) {
    uint8_t frame[4 + 2];
    size_t h = WriteFrameHeader(frame, true, kOpClose, 2, nullptr);
    frame[h] = static_cast<uint8_t>(code >> 8);
    frame[h + 1] = static_cast<uint8_t>(code);
    c->out.Append(frame, h + 2);
    c->state = Conn::kClosing;
    c->close_after_flush = true;
  }

  // Processes data[0, len) (unmasking payloads in place) and returns how many bytes it used.
  size_t Process(Conn* c, uint8_t* data, size_t len) {
    size_t used = 0;
    if (c->state == Conn::kHandshake) {
      UpgradeRequest req;
      const char* error = nullptr;
      HttpStatus st = ParseUpgradeRequest(reinterpret_cast<const char*>(data), len, &req, &error);
      if (st == HttpStatus::kNeedMore) return 0;
      if (st == HttpStatus::kError) {
        static const char kBad[] =
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        c->out.Append(kBad, sizeof(kBad) - 1);
        c->close_after_flush = true;
        c->state = Conn::kClosing;
        return len;
      }
      used = req.consumed;
      std::string resp =
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: " +
          ComputeAcceptKey(req.key) + "\r\n\r\n";
      c->out.Append(resp.data(), resp.size());
      std::string path = req.path.substr(0, req.path.find('?'));
      c->flood = path == "/flood" || path.rfind("/flood/", 0) == 0;
      c->state = Conn::kOpen;
    }
    while (c->state == Conn::kOpen && used < len) {
      FrameHeader fh;
      const char* error = nullptr;
      ParseStatus st =
          ParseFrameHeader(data + used, len - used, Role::kServer, opt_.max_message, &fh, &error);
      if (st == ParseStatus::kNeedMore) break;
      if (st == ParseStatus::kError) {
        if (++protocol_errors_ <= 10)
          std::fprintf(stderr, "wsecho: closing with 1002: %s\n", error);
        QueueClose(c, 1002);
        break;
      }
      if (len - used - fh.header_len < fh.payload_len) break;  // wait for the whole frame
      uint8_t* payload = data + used + fh.header_len;
      const size_t plen = static_cast<size_t>(fh.payload_len);
      ApplyMask(payload, plen, fh.mask, 0);
      uint8_t header[kMaxFrameHeader];
      switch (fh.opcode) {
        case kOpPong:
          break;
        case kOpClose: {
          // Echo the peer's code and reason back, as RFC 6455 5.5.1 suggests.
          size_t h = WriteFrameHeader(header, true, kOpClose, plen, nullptr);
          c->out.Append(header, h);
          c->out.Append(payload, plen);
          c->state = Conn::kClosing;
          c->close_after_flush = true;
          break;
        }
        default: {
          uint8_t op = fh.opcode == kOpPing ? static_cast<uint8_t>(kOpPong) : fh.opcode;
          size_t h = WriteFrameHeader(header, fh.fin, op, plen, nullptr);
          c->out.Append(header, h);
          c->out.Append(payload, plen);
        }
      }
      used += fh.header_len + plen;
    }
    return c->state == Conn::kClosing ? len : used;
  }

  bool Flush(Conn* c) {
    // A flood connection refills its queue each time the socket takes data; bounded per event so
    // one flood cannot starve the other connections.
    for (int round = 0; round < 64; ++round) {
      if (c->flood && c->state == Conn::kOpen) {
        while (c->out.size() < kFloodQueue) c->out.Append(flood_frame_.data(), flood_frame_.size());
      }
      if (c->out.empty()) break;
      ssize_t n = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        return false;
      }
      c->out.Consume(static_cast<size_t>(n));
      if (!c->flood) break;
    }
    if (c->out.empty() && c->close_after_flush) return false;
    if (!c->paused && c->out.size() > kOutHighWater) c->paused = true;
    if (c->paused && c->out.size() < kOutLowWater) c->paused = false;
    uint32_t want = 0;
    if (!c->paused && !c->close_after_flush) want |= EPOLLIN;
    if (!c->out.empty() || (c->flood && c->state == Conn::kOpen)) want |= EPOLLOUT;
    if (want == 0) want = EPOLLOUT;  // closing with output pending
    SetInterest(c, want);
    c->out.ShrinkIfIdle(kBufferKeep);
    return true;
  }

  Options opt_;
  int ep_ = -1;
  int listen_fd_ = -1;
  bool warned_emfile_ = false;
  uint32_t generation_ = 0;
  uint64_t protocol_errors_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<uint8_t> flood_frame_;
  std::unique_ptr<uint8_t[]> scratch_{new uint8_t[kReadChunk]};  // shared read buffer
};

void Usage() {
  std::fprintf(stderr,
               "usage: wsecho [--host 127.0.0.1] [--port 0] [--flood-size BYTES]\n"
               "              [--max-message BYTES] [--lifetime-s SECONDS]\n"
               "Echoes every WebSocket frame; on /flood also sends binary messages as fast as\n"
               "the socket accepts them. Prints {\"listening\":PORT} when ready.\n");
}

bool ParseArgs(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") return false;
    if (i + 1 >= argc) {
      std::fprintf(stderr, "wsecho: %s needs a value\n", a.c_str());
      return false;
    }
    std::string v = argv[++i];
    char* end = nullptr;
    if (a == "--host") {
      opt->host = v;
      continue;
    }
    double d = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0' || d < 0) {
      std::fprintf(stderr, "wsecho: bad value for %s: %s\n", a.c_str(), v.c_str());
      return false;
    }
    if (a == "--port" && d <= 65535) {
      opt->port = static_cast<int>(d);
    } else if (a == "--flood-size" && d >= 1 && d <= (16 << 20)) {
      opt->flood_size = static_cast<size_t>(d);
    } else if (a == "--max-message" && d >= 1) {
      opt->max_message = static_cast<uint64_t>(d);
    } else if (a == "--lifetime-s" && d > 0) {
      opt->lifetime_s = d;
    } else {
      std::fprintf(stderr, "wsecho: unknown option or value out of range: %s %s\n", a.c_str(),
                   v.c_str());
      return false;
    }
  }
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
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, wsbench::OnSignal);
  signal(SIGINT, wsbench::OnSignal);
  wsbench::EchoServer server(opt);
  if (!server.Listen()) return 1;
  server.Run();
  return 0;
}
