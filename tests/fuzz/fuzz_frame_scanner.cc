// The relay's incremental frame scanner (dataplane/codec/frame_scanner.h) on an arbitrary byte
// stream, both directions. The first input byte picks the direction and how the stream is cut
// into reads; the invariant is that the cut does not matter: fed in one read or in small pieces,
// the scanner reports the same frames, the same payload bytes and the same error. Each frame
// header it accepts is re-encoded with EncodeFrameHeader (frame_in_place.h) and scanned again to
// the same fields.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane/codec/frame_in_place.h"
#include "dataplane/codec/frame_scanner.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using wsgate::dataplane::relay::FrameHeader;
using wsgate::dataplane::relay::FrameScanner;
using Step = FrameScanner::Step;

struct Trace {
  std::vector<FrameHeader> headers;
  std::string payload;  // every kPayload chunk, concatenated
  size_t frame_ends = 0;
  bool error = false;
  std::string error_reason;
};

bool SameHeader(const FrameHeader& a, const FrameHeader& b) {
  return a.fin == b.fin && a.opcode == b.opcode && a.masked == b.masked && a.length == b.length &&
         a.mask_key == b.mask_key;
}

// A header the scanner accepted, written again by the encoder, scans to the same fields.
void CheckReencode(const FrameHeader& h, bool from_client) {
  char out[14];
  const size_t n = wsgate::dataplane::transport::EncodeFrameHeader(out, h.opcode, h.fin, h.length,
                                                                   h.masked, h.mask_key);
  FUZZ_CHECK(n >= 2 && n <= 14);
  FUZZ_CHECK(n <= h.header_size);  // the encoder uses the shortest length form
  // A continuation needs a message started first: scan a text frame that starts one.
  FrameScanner s(from_client);
  std::string stream;
  if (h.opcode == wsgate::dataplane::relay::kContinuation) {
    char start[14];
    const size_t m = wsgate::dataplane::transport::EncodeFrameHeader(
        start, wsgate::dataplane::relay::kText, false, 0, from_client, 0);
    stream.assign(start, m);
  }
  const size_t skip = stream.size();
  stream.append(out, n);
  size_t used = 0;
  if (skip != 0) {
    FUZZ_CHECK(s.Next(stream.data(), stream.size(), &used) == Step::kFrameStart);
    FUZZ_CHECK(used == skip);
    size_t end_used = 0;
    FUZZ_CHECK(s.Next(stream.data() + used, stream.size() - used, &end_used) == Step::kFrameEnd);
  }
  const Step step = s.Next(stream.data() + skip, n, &used);
  FUZZ_CHECK(step == Step::kFrameStart);
  FUZZ_CHECK(used == n);
  FUZZ_CHECK(SameHeader(s.header(), h));
  FUZZ_CHECK(s.header().header_size == n);
  FUZZ_CHECK(std::memcmp(s.raw_header(), out, n) == 0);
}

// Scans `data` delivered in reads of the sizes `cuts` gives (cycled; 0 means "the rest").
Trace Scan(const uint8_t* data, size_t size, bool from_client, const std::vector<size_t>& cuts,
           bool check_reencode) {
  Trace t;
  FrameScanner s(from_client);
  size_t pos = 0;
  size_t cut_index = 0;
  size_t guard = 0;
  while (pos < size || s.in_frame()) {
    size_t read = size - pos;
    if (!cuts.empty()) {
      const size_t c = cuts[cut_index++ % cuts.size()];
      if (c != 0 && c < read) read = c;
    }
    const char* buf = reinterpret_cast<const char*>(data) + pos;
    size_t off = 0;
    while (true) {
      FUZZ_CHECK(++guard < 16 * (size + 16));  // no step may loop without progress
      size_t consumed = 0;
      const Step step = s.Next(buf + off, read - off, &consumed);
      FUZZ_CHECK(consumed <= read - off);
      if (step == Step::kError) {
        t.error = true;
        t.error_reason = s.error_reason();
        FUZZ_CHECK(!t.error_reason.empty());
        return t;
      }
      if (step == Step::kNeedMore) {
        FUZZ_CHECK(consumed == read - off);
        break;
      }
      if (step == Step::kFrameStart) {
        const FrameHeader& h = s.header();
        FUZZ_CHECK(h.header_size >= 2 && h.header_size <= 14);
        FUZZ_CHECK(h.masked == from_client);
        FUZZ_CHECK((h.length >> 63) == 0);
        FUZZ_CHECK(s.in_frame());
        FUZZ_CHECK(s.frame_remaining() == h.length);
        t.headers.push_back(h);
        if (check_reencode) CheckReencode(h, from_client);
      } else if (step == Step::kPayload) {
        FUZZ_CHECK(s.chunk() == buf + off);
        FUZZ_CHECK(s.chunk_size() == consumed && consumed > 0);
        t.payload.append(s.chunk(), s.chunk_size());
      } else if (step == Step::kFrameEnd) {
        ++t.frame_ends;
        FUZZ_CHECK(!s.in_frame());
      }
      off += consumed;
    }
    pos += read;
    if (pos >= size) break;  // out of bytes: a frame may be left incomplete
  }
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  ++data;
  --size;
  const bool from_client = (control & 0x80) != 0;
  // Read sizes from the control byte: 1..8 bytes, or one of two uneven patterns.
  std::vector<size_t> cuts;
  switch ((control >> 4) & 0x7) {
    case 0: cuts = {1}; break;
    case 1: cuts = {2, 3}; break;
    case 2: cuts = {13, 1}; break;
    case 3: cuts = {7}; break;
    default: cuts = {static_cast<size_t>((control & 0x0f) + 1)}; break;
  }
  const Trace whole = Scan(data, size, from_client, {}, /*check_reencode=*/true);
  const Trace pieces = Scan(data, size, from_client, cuts, /*check_reencode=*/false);
  FUZZ_CHECK(whole.error == pieces.error);
  FUZZ_CHECK(whole.error_reason == pieces.error_reason);
  FUZZ_CHECK(whole.headers.size() == pieces.headers.size());
  for (size_t i = 0; i < whole.headers.size(); ++i) {
    FUZZ_CHECK(SameHeader(whole.headers[i], pieces.headers[i]));
  }
  FUZZ_CHECK(whole.payload == pieces.payload);
  // Both runs call Next() until kNeedMore, so every frame completed by the input has its end.
  FUZZ_CHECK(whole.frame_ends == pieces.frame_ends);
  FUZZ_CHECK(whole.frame_ends <= whole.headers.size());
  return 0;
}
