// Finds the frames in one direction of a WebSocket connection's byte stream (RFC 6455 section
// 5), incrementally, without copying payloads: the proxy relay forwards data frames verbatim as
// their bytes arrive (cut-through) and only needs to know where each frame and each message
// starts and ends, and the few control frames it handles itself.
//
// Pull interface: the relay calls Next() on the bytes a read brought in until it says kNeedMore.
// A header split across two reads is carried inside the scanner (at most 14 bytes); payload
// bytes are never copied, kPayload points into the caller's buffer.
//
// The scanner checks what a connection without extensions must refuse (close code 1002): RSV
// bits, reserved opcodes, fragmented or oversized control frames, the mask bit that the
// direction requires (clients mask, servers do not), a continuation with no message started, a
// new data message inside a fragmented one, and a 64-bit length with its top bit set.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wsgate::dataplane::relay {

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

inline bool IsControl(uint8_t opcode) { return (opcode & 0x8) != 0; }

struct FrameHeader {
  bool fin = false;
  uint8_t opcode = 0;
  bool masked = false;
  uint64_t length = 0;     // payload bytes
  uint32_t mask_key = 0;   // the 4 key bytes in wire order, as memcpy'd from the header
  uint8_t header_size = 0; // 2..14
};

class FrameScanner {
 public:
  enum class Step {
    kNeedMore,    // every byte given was consumed; feed the next read
    kFrameStart,  // header() and raw_header() describe a new frame; no payload consumed yet
    kPayload,     // chunk()/chunk_size(): the next payload bytes of the current frame
    kFrameEnd,    // the current frame is complete (after its last kPayload, or its header)
    kError,       // a protocol violation: error_reason(); the stream cannot go on
  };

  // `from_client`: frames must be masked (RFC 6455 section 5.1); otherwise they must not be.
  explicit FrameScanner(bool from_client) : from_client_(from_client) {}

  // Looks at [data, data + size) and reports the next step; *consumed is how many of those
  // bytes that step used (the caller advances by it and calls again).
  Step Next(const char* data, size_t size, size_t* consumed);

  const FrameHeader& header() const { return header_; }
  // The current frame's header exactly as received (for verbatim forwarding).
  const char* raw_header() const { return raw_; }
  const char* chunk() const { return chunk_; }
  size_t chunk_size() const { return chunk_size_; }
  // Payload bytes of the current frame not reported yet.
  uint64_t frame_remaining() const { return remaining_; }
  // Between a frame's kFrameStart and its kFrameEnd. A control frame may be put into the
  // forwarded stream only when this is false (RFC 6455 allows it between fragments).
  bool in_frame() const { return in_frame_; }
  // Not in a frame and no data message in progress (no fragment without its FIN frame yet): the
  // only place a data frame of another message may be put into the forwarded stream.
  bool at_message_boundary() const { return !in_frame_ && !in_message_; }
  // The data message in progress (or just finished): its opcode (text/binary) and the payload
  // bytes of its frames so far, this frame's full length included from kFrameStart on.
  uint8_t message_opcode() const { return message_opcode_; }
  uint64_t message_bytes() const { return message_bytes_; }
  const char* error_reason() const { return error_; }

 private:
  Step Fail(const char* reason) {
    error_ = reason;
    failed_ = true;
    return Step::kError;
  }
  // Parses raw_[0, have_) as a header; false while incomplete.
  bool ParseHeader();
  Step StartFrame();

  const bool from_client_;
  bool failed_ = false;
  bool in_frame_ = false;    // header parsed, payload (or its kFrameEnd) not done
  bool end_pending_ = false; // all payload reported, kFrameEnd not yet
  bool in_message_ = false;  // a data message's FIN frame has not been seen yet
  uint8_t message_opcode_ = 0;
  uint64_t message_bytes_ = 0;
  uint64_t remaining_ = 0;
  FrameHeader header_;
  char raw_[14];
  uint8_t have_ = 0;  // header bytes collected in raw_
  const char* chunk_ = nullptr;
  size_t chunk_size_ = 0;
  const char* error_ = "";
};

}  // namespace wsgate::dataplane::relay
