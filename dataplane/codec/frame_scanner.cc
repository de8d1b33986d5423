#include "dataplane/codec/frame_scanner.h"

#include <algorithm>
#include <cstring>

namespace wsgate::dataplane::relay {

namespace {

// Header bytes implied by the first two: 2, plus 2 or 8 for an extended length, plus 4 for a key.
uint8_t HeaderSize(uint8_t second) {
  const uint8_t len7 = second & 0x7f;
  const uint8_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  return static_cast<uint8_t>(2 + ext + ((second & 0x80) ? 4 : 0));
}

}  // namespace

bool FrameScanner::ParseHeader() {
  if (have_ < 2) return false;
  const auto b0 = static_cast<uint8_t>(raw_[0]);
  const auto b1 = static_cast<uint8_t>(raw_[1]);
  const uint8_t size = HeaderSize(b1);
  if (have_ < size) return false;
  header_.fin = (b0 & 0x80) != 0;
  header_.opcode = b0 & 0x0f;
  header_.masked = (b1 & 0x80) != 0;
  header_.header_size = size;
  const uint8_t len7 = b1 & 0x7f;
  size_t pos = 2;
  if (len7 == 126) {
    header_.length = (uint64_t{static_cast<uint8_t>(raw_[2])} << 8) | static_cast<uint8_t>(raw_[3]);
    pos = 4;
  } else if (len7 == 127) {
    uint64_t v = 0;
    for (size_t i = 2; i < 10; ++i) v = (v << 8) | static_cast<uint8_t>(raw_[i]);
    header_.length = v;
    pos = 10;
  } else {
    header_.length = len7;
  }
  header_.mask_key = 0;
  if (header_.masked) std::memcpy(&header_.mask_key, raw_ + pos, 4);
  return true;
}

FrameScanner::Step FrameScanner::StartFrame() {
  const auto b0 = static_cast<uint8_t>(raw_[0]);
  const uint8_t op = header_.opcode;
  if ((b0 & 0x70) != 0) return Fail("reserved bits set without an extension");
  if ((op >= 0x3 && op <= 0x7) || op >= 0xB) return Fail("reserved opcode");
  if (header_.masked != from_client_) {
    return Fail(from_client_ ? "client frame not masked" : "server frame masked");
  }
  if ((header_.length >> 63) != 0) return Fail("frame length has its top bit set");
  if (IsControl(op)) {
    if (!header_.fin) return Fail("fragmented control frame");
    if (header_.length > 125) return Fail("control frame longer than 125 bytes");
  } else if (op == kContinuation) {
    if (!in_message_) return Fail("continuation frame with no message started");
    message_bytes_ += header_.length;
    in_message_ = !header_.fin;
  } else {
    if (in_message_) return Fail("new data frame inside a fragmented message");
    message_opcode_ = op;
    message_bytes_ = header_.length;
    in_message_ = !header_.fin;
  }
  in_frame_ = true;
  remaining_ = header_.length;
  end_pending_ = remaining_ == 0;
  return Step::kFrameStart;
}

FrameScanner::Step FrameScanner::Next(const char* data, size_t size, size_t* consumed) {
  *consumed = 0;
  if (failed_) return Step::kError;
  if (end_pending_) {
    end_pending_ = false;
    in_frame_ = false;
    have_ = 0;
    return Step::kFrameEnd;
  }
  if (in_frame_) {
    if (size == 0) return Step::kNeedMore;
    const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, size));
    chunk_ = data;
    chunk_size_ = take;
    remaining_ -= take;
    end_pending_ = remaining_ == 0;
    *consumed = take;
    return Step::kPayload;
  }
  // The common case: a whole header at the start of the bytes given (one small fixed copy).
  if (have_ == 0 && size >= 2) {
    const uint8_t want = HeaderSize(static_cast<uint8_t>(data[1]));
    if (size >= want) {
      if (size >= sizeof(raw_)) {
        std::memcpy(raw_, data, sizeof(raw_));
      } else {
        std::memcpy(raw_, data, want);
      }
      have_ = want;
      ParseHeader();
      *consumed = want;
      return StartFrame();
    }
  }
  // Collect the header across reads: the first two bytes say how long it is.
  size_t used = 0;
  while (true) {
    const uint8_t want = have_ < 2 ? 2 : HeaderSize(static_cast<uint8_t>(raw_[1]));
    if (have_ >= want) break;
    const size_t take = std::min<size_t>(want - have_, size - used);
    if (take == 0) {
      *consumed = used;
      return Step::kNeedMore;
    }
    std::memcpy(raw_ + have_, data + used, take);
    have_ = static_cast<uint8_t>(have_ + take);
    used += take;
  }
  ParseHeader();
  *consumed = used;
  return StartFrame();
}

}  // namespace wsgate::dataplane::relay
