// Minimal WebSocket (RFC 6455) framing and handshake helpers for the benchmark tools.
//
// The load generator and the echo upstream speak raw WebSocket on purpose: they must cost far less
// CPU than the proxy they measure, and they must not share code (or bugs) with websocketpp, which
// wsgate itself is built on. Everything here is a pure function over byte ranges, so the codec is
// unit-tested without sockets (bench/ws_codec_test.cc). No permessage-deflate, no extensions.
#ifndef WSGATE_BENCH_WS_CODEC_H_
#define WSGATE_BENCH_WS_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wsbench {

enum Opcode : uint8_t {
  kOpContinuation = 0x0,
  kOpText = 0x1,
  kOpBinary = 0x2,
  kOpClose = 0x8,
  kOpPing = 0x9,
  kOpPong = 0xA,
};

struct FrameHeader {
  bool fin = false;
  uint8_t opcode = 0;
  bool masked = false;
  uint8_t mask[4] = {0, 0, 0, 0};
  uint64_t payload_len = 0;
  size_t header_len = 0;  // bytes before the payload
};

enum class ParseStatus { kNeedMore, kOk, kError };

// Which side is parsing: a server requires masked frames (RFC 6455 5.1), a client refuses them.
enum class Role { kServer, kClient };

// Parses the frame header at data[0, len). kNeedMore if the header is incomplete (the payload is
// not required to be present). kError with *error set for a protocol violation: reserved bits,
// unknown opcode, fragmented or oversized control frame, non-minimal or 64-bit-MSB length, wrong
// masking for `role`, or a payload above `max_payload`.
ParseStatus ParseFrameHeader(const uint8_t* data, size_t len, Role role, uint64_t max_payload,
                             FrameHeader* out, const char** error);

// Largest header WriteFrameHeader produces.
constexpr size_t kMaxFrameHeader = 14;

// Writes a frame header for a payload of `payload_len` bytes into out (at least kMaxFrameHeader
// bytes). `mask` null means an unmasked (server) frame. Returns the header length.
size_t WriteFrameHeader(uint8_t* out, bool fin, uint8_t opcode, uint64_t payload_len,
                        const uint8_t* mask);

// XORs data[0, len) with the 4-byte mask, as if the data started `offset` bytes into the payload.
// Masking is its own inverse.
void ApplyMask(uint8_t* data, size_t len, const uint8_t mask[4], size_t offset);

// Sec-WebSocket-Accept for a Sec-WebSocket-Key (base64(SHA-1(key + GUID))).
std::string ComputeAcceptKey(std::string_view client_key);

std::string Base64Encode(const uint8_t* data, size_t len);

// The client's upgrade request.
std::string BuildUpgradeRequest(std::string_view host, std::string_view path, std::string_view key);

enum class HttpStatus { kNeedMore, kOk, kError };

// Refuses headers larger than this: a peer that never ends its headers must not grow a buffer.
constexpr size_t kMaxHttpHeader = 16 * 1024;

struct UpgradeRequest {
  std::string path;
  std::string key;
  size_t consumed = 0;  // bytes of the request, including the blank line
};

// Parses a client's upgrade request at data[0, len). kError (with *error) if it is not a
// well-formed `GET <path> HTTP/1.1` with `Upgrade: websocket`, `Sec-WebSocket-Version: 13` and a
// `Sec-WebSocket-Key`, or if the headers exceed kMaxHttpHeader.
HttpStatus ParseUpgradeRequest(const char* data, size_t len, UpgradeRequest* out,
                               const char** error);

struct UpgradeResponse {
  int status = 0;
  std::string status_line;
  size_t consumed = 0;
};

// Parses the server's answer. kOk only for a 101 whose Sec-WebSocket-Accept matches `key`;
// kError otherwise (out->status and out->status_line are still filled when the status line
// parsed, so the caller can report what the server said).
HttpStatus ParseUpgradeResponse(const char* data, size_t len, std::string_view key,
                                UpgradeResponse* out, const char** error);

// A log-linear latency histogram (HdrHistogram-like): exact below 64 ns-units, then 32
// sub-buckets per power of two (about 3% relative error), up to 2^63. Fixed size, no allocation
// after construction; Record is a few instructions. Not thread-safe: owned by the one thread of
// the tool that records into it.
class LogLinearHistogram {
 public:
  LogLinearHistogram();
  void Record(uint64_t value);
  void Merge(const LogLinearHistogram& other);
  void Reset();
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  // The value at quantile q in [0, 1]: the upper bound of the bucket holding it, capped by the
  // exact maximum. 0 when empty.
  uint64_t Quantile(double q) const;

  static size_t BucketIndex(uint64_t value);
  static uint64_t BucketUpperBound(size_t index);

 private:
  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

// A small, fast PRNG (xorshift64*) for masking keys and filler. Masking keys only need to be
// unpredictable to defeat cache poisoning through intermediaries, which does not apply on loopback;
// what matters here is that no frame pays for std::random_device (FIELD-NOTES).
class FastRng {
 public:
  explicit FastRng(uint64_t seed) : state_(seed ? seed : 0x9E3779B97F4A7C15ull) {}
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }

 private:
  uint64_t state_;
};

// A growable byte buffer with a read cursor: append at the end, consume from the front. Compacts
// lazily, so consuming is O(1); storage is not zero-filled, so capacity that is never written
// costs no resident memory. Not thread-safe: owned by the connection that owns it.
class ByteBuffer {
 public:
  uint8_t* data() { return buf_.get() + begin_; }
  const uint8_t* data() const { return buf_.get() + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  // Space for at least n more bytes at the end; returns where to write them.
  uint8_t* PrepareWrite(size_t n);
  void Commit(size_t n) { end_ += n; }
  void Append(const void* src, size_t n);
  void Consume(size_t n);
  void Clear() { begin_ = end_ = 0; }
  size_t capacity() const { return capacity_; }
  // Frees the storage when the buffer is empty and holds more than `limit` bytes: a burst (one
  // large message) does not pin its memory, while steady traffic never reallocates.
  void ShrinkIfIdle(size_t limit);

 private:
  std::unique_ptr<uint8_t[]> buf_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace wsbench

#endif  // WSGATE_BENCH_WS_CODEC_H_
