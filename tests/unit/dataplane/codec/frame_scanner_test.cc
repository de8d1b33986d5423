// The relay's frame scanner against the contract in frame_scanner.h: lengths of every width,
// the mask bit per direction, streams split anywhere, verbatim headers, message state across
// fragments, and every protocol error it must refuse.
#include "dataplane/codec/frame_scanner.h"

#include <gtest/gtest.h>

#include <cstring>
#include <ostream>
#include <string>
#include <vector>

namespace wsgate::dataplane::relay {

void PrintTo(FrameScanner::Step step, std::ostream* os) {
  // In the order the enum declares them.
  static const char* const kNames[] = {"kNeedMore", "kFrameStart", "kPayload", "kFrameEnd",
                                       "kError"};
  const auto i = static_cast<size_t>(step);
  if (i < sizeof kNames / sizeof kNames[0]) {
    *os << kNames[i];
  } else {
    *os << "Step(" << i << ")";
  }
}

namespace {

using Step = FrameScanner::Step;
constexpr uint8_t kMaskKey[4] = {0x37, 0xfa, 0x21, 0x3d};

struct Frame {
  bool fin = true;
  uint8_t opcode = kText;
  std::string payload;
  bool masked = false;
  uint8_t rsv = 0;             // the three RSV bits, already in place (0x40, 0x20, 0x10)
  int length_width = 0;        // 0: shortest; 7, 16 or 64: that encoding
  uint64_t forced_length = 0;  // nonzero: the length field says this, whatever the payload
};

// The frame's header bytes as a sender would write them.
std::string Header(const Frame& f) {
  std::string h;
  h += static_cast<char>((f.fin ? 0x80 : 0) | f.rsv | f.opcode);
  const uint64_t len = f.forced_length ? f.forced_length : f.payload.size();
  int width = f.length_width;
  if (width == 0) width = len < 126 ? 7 : len <= 0xffff ? 16 : 64;
  const char mask_bit = f.masked ? static_cast<char>(0x80) : 0;
  if (width == 7) {
    h += static_cast<char>(mask_bit | static_cast<char>(len));
  } else if (width == 16) {
    h += static_cast<char>(mask_bit | 126);
    h += static_cast<char>(len >> 8);
    h += static_cast<char>(len & 0xff);
  } else {
    h += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) h += static_cast<char>((len >> shift) & 0xff);
  }
  if (f.masked) h.append(reinterpret_cast<const char*>(kMaskKey), 4);
  return h;
}

// The payload as it travels: masked with the key when the frame is masked.
std::string WirePayload(const Frame& f) {
  std::string p = f.payload;
  if (f.masked) {
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<char>(p[i] ^ kMaskKey[i % 4]);
  }
  return p;
}

std::string Wire(const Frame& f) { return Header(f) + WirePayload(f); }

std::string Wire(const std::vector<Frame>& frames) {
  std::string out;
  for (const Frame& f : frames) out += Wire(f);
  return out;
}

Frame Client(Frame f) {
  f.masked = true;
  return f;
}

// What the scanner said about one frame, and the state it was in at each boundary.
struct Seen {
  FrameHeader header;
  std::string raw_header;
  std::string payload;  // the kPayload chunks, joined
  // At kFrameStart, then at kFrameEnd.
  bool in_frame_at_start = false, in_frame_at_end = true;
  bool boundary_at_start = true, boundary_at_end = false;
  uint8_t opcode_at_start = 0, opcode_at_end = 0;
  uint64_t bytes_at_start = 0, bytes_at_end = 0;
  uint64_t remaining_at_start = 0;
  bool ended = false;
};

struct Scan {
  std::vector<Seen> frames;
  std::vector<Step> steps;  // every step but kNeedMore, kPayload runs folded into one
  bool failed = false;
  std::string error;
};

// Feeds `wire` to a new scanner in pieces of `piece` bytes (each piece its own buffer, as reads
// are) and records what it says.
Scan Feed(bool from_client, const std::string& wire, size_t piece) {
  FrameScanner scanner(from_client);
  Scan scan;
  for (size_t at = 0; at < wire.size() && !scan.failed; at += piece) {
    const std::string buffer = wire.substr(at, piece);  // its own allocation: chunks point here
    size_t offset = 0;
    while (true) {
      size_t used = 0;
      const Step step = scanner.Next(buffer.data() + offset, buffer.size() - offset, &used);
      EXPECT_LE(used, buffer.size() - offset);
      offset += used;
      if (step == Step::kNeedMore) {
        EXPECT_EQ(offset, buffer.size()) << "kNeedMore must mean every byte was used";
        break;
      }
      if (step != Step::kPayload || scan.steps.empty() || scan.steps.back() != Step::kPayload) {
        scan.steps.push_back(step);
      }
      if (step == Step::kError) {
        scan.failed = true;
        scan.error = scanner.error_reason();
        break;
      }
      if (step == Step::kFrameStart) {
        Seen seen;
        seen.header = scanner.header();
        seen.raw_header.assign(scanner.raw_header(), scanner.header().header_size);
        seen.in_frame_at_start = scanner.in_frame();
        seen.boundary_at_start = scanner.at_message_boundary();
        seen.opcode_at_start = scanner.message_opcode();
        seen.bytes_at_start = scanner.message_bytes();
        seen.remaining_at_start = scanner.frame_remaining();
        scan.frames.push_back(seen);
      } else if (step == Step::kPayload) {
        EXPECT_FALSE(scan.frames.empty());
        EXPECT_GT(scanner.chunk_size(), 0u);
        // Cut-through: the chunk is the caller's bytes, not a copy.
        EXPECT_GE(scanner.chunk(), buffer.data());
        EXPECT_LE(scanner.chunk() + scanner.chunk_size(), buffer.data() + buffer.size());
        EXPECT_EQ(used, scanner.chunk_size());
        scan.frames.back().payload.append(scanner.chunk(), scanner.chunk_size());
      } else if (step == Step::kFrameEnd) {
        EXPECT_EQ(used, 0u);
        Seen& seen = scan.frames.back();
        EXPECT_FALSE(seen.ended);
        seen.ended = true;
        seen.in_frame_at_end = scanner.in_frame();
        seen.boundary_at_end = scanner.at_message_boundary();
        seen.opcode_at_end = scanner.message_opcode();
        seen.bytes_at_end = scanner.message_bytes();
        EXPECT_EQ(scanner.frame_remaining(), 0u);
      }
    }
  }
  return scan;
}

// Runs `wire` whole, then one byte at a time and in a few other piece sizes; all must agree.
Scan FeedAllWays(bool from_client, const std::string& wire) {
  const Scan whole = Feed(from_client, wire, wire.size() ? wire.size() : 1);
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{13}, size_t{64}}) {
    SCOPED_TRACE("pieces of " + std::to_string(piece) + " bytes");
    const Scan split = Feed(from_client, wire, piece);
    EXPECT_EQ(split.steps, whole.steps);
    EXPECT_EQ(split.failed, whole.failed);
    EXPECT_EQ(split.error, whole.error);
    EXPECT_EQ(split.frames.size(), whole.frames.size());
    for (size_t i = 0; i < std::min(split.frames.size(), whole.frames.size()); ++i) {
      SCOPED_TRACE("frame " + std::to_string(i));
      EXPECT_EQ(split.frames[i].raw_header, whole.frames[i].raw_header);
      EXPECT_EQ(split.frames[i].payload, whole.frames[i].payload);
      EXPECT_EQ(split.frames[i].bytes_at_end, whole.frames[i].bytes_at_end);
      EXPECT_EQ(split.frames[i].boundary_at_end, whole.frames[i].boundary_at_end);
    }
  }
  return whole;
}

// Checks what the scanner saw against the frames that were sent.
void ExpectFrames(const Scan& scan, const std::vector<Frame>& sent) {
  ASSERT_FALSE(scan.failed) << scan.error;
  ASSERT_EQ(scan.frames.size(), sent.size());
  std::vector<Step> steps;
  for (size_t i = 0; i < sent.size(); ++i) {
    SCOPED_TRACE("frame " + std::to_string(i));
    const Seen& seen = scan.frames[i];
    const Frame& f = sent[i];
    EXPECT_TRUE(seen.ended);
    EXPECT_EQ(seen.header.fin, f.fin);
    EXPECT_EQ(seen.header.opcode, f.opcode);
    EXPECT_EQ(seen.header.masked, f.masked);
    EXPECT_EQ(seen.header.length, f.payload.size());
    EXPECT_EQ(seen.remaining_at_start, f.payload.size());
    EXPECT_EQ(seen.header.header_size, Header(f).size());
    EXPECT_EQ(seen.raw_header, Header(f));
    if (f.masked) {
      uint32_t key;
      std::memcpy(&key, kMaskKey, 4);
      EXPECT_EQ(seen.header.mask_key, key);
    } else {
      EXPECT_EQ(seen.header.mask_key, 0u);
    }
    EXPECT_EQ(seen.payload, WirePayload(f));  // verbatim: still masked
    EXPECT_TRUE(seen.in_frame_at_start);
    EXPECT_FALSE(seen.in_frame_at_end);
    EXPECT_FALSE(seen.boundary_at_start);
    steps.push_back(Step::kFrameStart);
    if (!f.payload.empty()) steps.push_back(Step::kPayload);
    steps.push_back(Step::kFrameEnd);
  }
  EXPECT_EQ(scan.steps, steps);
}

TEST(FrameScanner, LengthsOfEveryWidthFromAServer) {
  const std::vector<Frame> frames = {
      {true, kText, "", false},
      {true, kText, "hello", false},
      {true, kBinary, std::string(125, 'a'), false},      // the largest 7-bit length
      {true, kBinary, std::string(126, 'b'), false},      // the smallest 16-bit length
      {true, kText, std::string(0xffff, 'c'), false},     // the largest 16-bit length
      {true, kBinary, std::string(0x10000, 'd'), false},  // the smallest 64-bit length
  };
  EXPECT_EQ(Header(frames[2]).size(), 2u);
  EXPECT_EQ(Header(frames[3]).size(), 4u);
  EXPECT_EQ(Header(frames[5]).size(), 10u);
  ExpectFrames(FeedAllWays(false, Wire(frames)), frames);
}

TEST(FrameScanner, LengthsOfEveryWidthFromAClient) {
  std::vector<Frame> frames = {
      {true, kText, "", true},
      {true, kText, "Hello", true},
      {true, kBinary, std::string(125, 'a'), true},
      {true, kBinary, std::string(300, 'b'), true},
      {true, kBinary, std::string(70000, 'e'), true},
  };
  EXPECT_EQ(Header(frames[1]).size(), 6u);
  EXPECT_EQ(Header(frames[3]).size(), 8u);
  EXPECT_EQ(Header(frames[4]).size(), 14u);
  ExpectFrames(FeedAllWays(true, Wire(frames)), frames);
}

TEST(FrameScanner, NonMinimalLengthEncodingsAreAccepted) {
  // RFC 6455 asks senders for the minimal encoding; a receiver relaying verbatim need not care.
  Frame small16{true, kText, "abc", false};
  small16.length_width = 16;
  Frame small64{true, kBinary, "defg", false};
  small64.length_width = 64;
  const std::vector<Frame> frames = {small16, small64};
  ExpectFrames(FeedAllWays(false, Wire(frames)), frames);
}

TEST(FrameScanner, HugeLengthIsReportedWithoutWaitingForThePayload) {
  Frame big{true, kBinary, "", false};
  big.forced_length = uint64_t{1} << 40;
  const std::string header = Header(big);
  FrameScanner scanner(false);
  size_t used = 0;
  ASSERT_EQ(scanner.Next(header.data(), header.size(), &used), Step::kFrameStart);
  EXPECT_EQ(used, header.size());
  EXPECT_EQ(scanner.header().length, uint64_t{1} << 40);
  EXPECT_EQ(scanner.frame_remaining(), uint64_t{1} << 40);
  EXPECT_EQ(scanner.message_bytes(), uint64_t{1} << 40);
  EXPECT_EQ(scanner.Next(header.data() + used, 0, &used), Step::kNeedMore);
  const std::string some(1000, 'x');
  ASSERT_EQ(scanner.Next(some.data(), some.size(), &used), Step::kPayload);
  EXPECT_EQ(used, some.size());
  EXPECT_EQ(scanner.frame_remaining(), (uint64_t{1} << 40) - 1000);
  EXPECT_TRUE(scanner.in_frame());
}

TEST(FrameScanner, PayloadChunkStopsAtTheFrameEnd) {
  // Two frames in one buffer: the first kPayload must not run into the second frame.
  const std::string wire = Wire({{true, kText, "abc", false}, {true, kBinary, "de", false}});
  FrameScanner scanner(false);
  size_t used = 0;
  const char* p = wire.data();
  size_t left = wire.size();
  ASSERT_EQ(scanner.Next(p, left, &used), Step::kFrameStart);
  EXPECT_EQ(used, 2u);
  p += used, left -= used;
  ASSERT_EQ(scanner.Next(p, left, &used), Step::kPayload);
  EXPECT_EQ(scanner.chunk(), p);
  EXPECT_EQ(scanner.chunk_size(), 3u);
  EXPECT_EQ(used, 3u);
  p += used, left -= used;
  ASSERT_EQ(scanner.Next(p, left, &used), Step::kFrameEnd);
  EXPECT_EQ(used, 0u);
  ASSERT_EQ(scanner.Next(p, left, &used), Step::kFrameStart);
  EXPECT_EQ(scanner.header().opcode, kBinary);
  p += used, left -= used;
  ASSERT_EQ(scanner.Next(p, left, &used), Step::kPayload);
  EXPECT_EQ(std::string(scanner.chunk(), scanner.chunk_size()), "de");
  p += used, left -= used;
  ASSERT_EQ(scanner.Next(p, left, &used), Step::kFrameEnd);
  EXPECT_EQ(scanner.Next(p, left, &used), Step::kNeedMore);
  EXPECT_EQ(left, 0u);
}

TEST(FrameScanner, ZeroLengthFrameIsStartThenEnd) {
  for (const bool from_client : {false, true}) {
    SCOPED_TRACE(from_client ? "client" : "server");
    Frame empty{true, kBinary, "", from_client};
    const std::string wire = Wire(empty);
    FrameScanner scanner(from_client);
    size_t used = 0;
    ASSERT_EQ(scanner.Next(wire.data(), wire.size(), &used), Step::kFrameStart);
    EXPECT_EQ(used, wire.size());
    EXPECT_EQ(scanner.header().length, 0u);
    EXPECT_TRUE(scanner.in_frame());
    EXPECT_FALSE(scanner.at_message_boundary());
    // kFrameEnd comes even with no bytes given: the frame needs none.
    ASSERT_EQ(scanner.Next(nullptr, 0, &used), Step::kFrameEnd);
    EXPECT_EQ(used, 0u);
    EXPECT_FALSE(scanner.in_frame());
    EXPECT_TRUE(scanner.at_message_boundary());
    EXPECT_EQ(scanner.Next(nullptr, 0, &used), Step::kNeedMore);
  }
}

TEST(FrameScanner, HeaderSplitAcrossReadsIsCarried) {
  // A 14-byte client header arriving in pieces: raw_header() is the whole of it.
  const Frame f = Client({true, kBinary, std::string(70000, 'z')});
  const std::string wire = Wire(f);
  FrameScanner scanner(true);
  size_t used = 0;
  for (size_t i = 0; i + 1 < 14; ++i) {
    ASSERT_EQ(scanner.Next(wire.data() + i, 1, &used), Step::kNeedMore) << i;
    EXPECT_EQ(used, 1u);
    EXPECT_FALSE(scanner.in_frame());
  }
  // The last header byte arrives with payload behind it: only the header byte is used.
  ASSERT_EQ(scanner.Next(wire.data() + 13, 10, &used), Step::kFrameStart);
  EXPECT_EQ(used, 1u);
  EXPECT_EQ(std::string(scanner.raw_header(), scanner.header().header_size), Header(f));
  EXPECT_EQ(scanner.header().header_size, 14u);
  EXPECT_EQ(scanner.header().length, 70000u);
}

TEST(FrameScanner, FragmentedMessageWithControlFramesBetween) {
  for (const bool from_client : {false, true}) {
    SCOPED_TRACE(from_client ? "client" : "server");
    const std::vector<Frame> frames = {
        {false, kText, "Hel", from_client},
        {true, kPing, "are you there", from_client},
        {false, kContinuation, "lo ", from_client},
        {false, kContinuation, "", from_client},
        {true, kPong, "", from_client},
        {true, kContinuation, "world", from_client},
        {true, kBinary, "next", from_client},
        {true, kClose, std::string("\x03\xe8", 2), from_client},
    };
    const Scan scan = FeedAllWays(from_client, Wire(frames));
    ExpectFrames(scan, frames);
    ASSERT_EQ(scan.frames.size(), frames.size());
    struct Expected {
      uint8_t opcode;
      uint64_t bytes_at_start;
      bool boundary_at_end;
    };
    // message_bytes() counts this frame's full length from its kFrameStart on; control frames
    // leave the message state alone.
    const Expected expected[] = {
        {kText, 3, false}, {kText, 3, false}, {kText, 6, false},  {kText, 6, false},
        {kText, 6, false}, {kText, 11, true}, {kBinary, 4, true}, {kBinary, 4, true},
    };
    for (size_t i = 0; i < frames.size(); ++i) {
      SCOPED_TRACE("frame " + std::to_string(i));
      const Seen& seen = scan.frames[i];
      EXPECT_EQ(seen.opcode_at_start, expected[i].opcode);
      EXPECT_EQ(seen.opcode_at_end, expected[i].opcode);
      EXPECT_EQ(seen.bytes_at_start, expected[i].bytes_at_start);
      EXPECT_EQ(seen.bytes_at_end, expected[i].bytes_at_start);
      EXPECT_TRUE(seen.in_frame_at_start);
      EXPECT_FALSE(seen.in_frame_at_end);
      EXPECT_FALSE(seen.boundary_at_start);
      EXPECT_EQ(seen.boundary_at_end, expected[i].boundary_at_end);
    }
  }
}

TEST(FrameScanner, StateBeforeAnyFrame) {
  FrameScanner scanner(false);
  EXPECT_FALSE(scanner.in_frame());
  EXPECT_TRUE(scanner.at_message_boundary());
  EXPECT_EQ(scanner.message_bytes(), 0u);
  size_t used = 1;
  EXPECT_EQ(scanner.Next(nullptr, 0, &used), Step::kNeedMore);
  EXPECT_EQ(used, 0u);
  // One header byte: still at a boundary (nothing of the frame is known yet).
  const char first = static_cast<char>(0x81);
  EXPECT_EQ(scanner.Next(&first, 1, &used), Step::kNeedMore);
  EXPECT_EQ(used, 1u);
  EXPECT_FALSE(scanner.in_frame());
}

struct ErrorCase {
  const char* name;
  bool from_client;
  std::vector<Frame> frames;  // the last one is the offending frame
};

Frame Rsv(Frame f, uint8_t bits) {
  f.rsv = bits;
  return f;
}

Frame Forced(Frame f, uint64_t length) {
  f.forced_length = length;
  return f;
}

Frame Width(Frame f, int width) {
  f.length_width = width;
  return f;
}

std::vector<ErrorCase> ErrorCases() {
  std::vector<ErrorCase> cases = {
      {"RSV1", false, {Rsv({true, kText, "x"}, 0x40)}},
      {"RSV2", false, {Rsv({true, kText, "x"}, 0x20)}},
      {"RSV3", true, {Rsv(Client({true, kBinary, "x"}), 0x10)}},
      {"RSV on a control frame", false, {Rsv({true, kPing, ""}, 0x40)}},
      {"fragmented ping", false, {{false, kPing, "p"}}},
      {"fragmented close", true, {Client({false, kClose, ""})}},
      {"ping of 126 bytes", false, {{true, kPing, std::string(126, 'p')}}},
      {"close of 126 bytes", true, {Client({true, kClose, std::string(126, 'c')})}},
      {"pong with a 64-bit length", false, {Forced(Width({true, kPong, ""}, 64), 200)}},
      {"server frame masked", false, {Client({true, kText, "hi"})}},
      {"client frame not masked", true, {{true, kText, "hi"}}},
      {"client control frame not masked", true, {{true, kPing, ""}}},
      {"server control frame masked", false, {Client({true, kPong, ""})}},
      {"continuation with no message", false, {{true, kContinuation, "x"}}},
      {"non-final continuation with no message", true, {Client({false, kContinuation, "x"})}},
      {"continuation after a finished message",
       false,
       {{true, kText, "done"}, {true, kContinuation, "x"}}},
      {"text inside a fragmented message", false, {{false, kText, "a"}, {true, kText, "b"}}},
      {"binary inside a fragmented message after a ping",
       true,
       {Client({false, kBinary, "a"}), Client({true, kPing, ""}),
        Client({false, kContinuation, "b"}), Client({true, kBinary, "c"})}},
      {"64-bit length with its top bit", false, {Forced({true, kBinary, ""}, uint64_t{1} << 63)}},
      {"64-bit length all ones", true, {Forced(Client({true, kBinary, ""}), ~uint64_t{0})}},
  };
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    cases.push_back({"reserved opcode", false, {{true, op, ""}}});
    cases.push_back({"reserved opcode from a client", true, {Client({true, op, "x"})}});
  }
  return cases;
}

TEST(FrameScanner, EveryViolationIsAnErrorAndStaysOne) {
  for (const ErrorCase& c : ErrorCases()) {
    SCOPED_TRACE(std::string(c.name) + " opcode " + std::to_string(c.frames.back().opcode));
    std::string wire;
    for (const Frame& f : c.frames) wire += Wire(f);
    // A valid frame after the bad one must not revive the stream.
    wire += Wire(Frame{true, kText, "after", c.from_client});
    const Scan scan = FeedAllWays(c.from_client, wire);
    ASSERT_TRUE(scan.failed);
    EXPECT_FALSE(scan.error.empty());
    ASSERT_EQ(scan.steps.back(), Step::kError);
    // The frames before the offending one went through whole; the offending one never started.
    EXPECT_EQ(scan.frames.size(), c.frames.size() - 1);
    for (const Seen& seen : scan.frames) EXPECT_TRUE(seen.ended);

    // And it stays an error, whatever comes next.
    FrameScanner scanner(c.from_client);
    size_t offset = 0, used = 0;
    Step step;
    while ((step = scanner.Next(wire.data() + offset, wire.size() - offset, &used)) !=
           Step::kError) {
      ASSERT_NE(step, Step::kNeedMore);
      offset += used;
    }
    const std::string reason = scanner.error_reason();
    const std::string good = Wire(Frame{true, kBinary, "ok", c.from_client});
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(scanner.Next(good.data(), good.size(), &used), Step::kError);
      EXPECT_EQ(used, 0u);
      EXPECT_EQ(scanner.Next(nullptr, 0, &used), Step::kError);
    }
    EXPECT_EQ(scanner.error_reason(), reason);
  }
}

TEST(FrameScanner, ErrorReasonsSayWhat) {
  const struct {
    bool from_client;
    Frame frame;
    const char* mentions;
  } cases[] = {
      {false, Rsv({true, kText, ""}, 0x40), "reserved bits"},
      {false, {true, 0x3, ""}, "opcode"},
      {false, {false, kPing, ""}, "fragmented control"},
      {false, {true, kPing, std::string(126, 'p')}, "125"},
      {false, Client({true, kText, ""}), "masked"},
      {true, {true, kText, ""}, "not masked"},
      {false, {true, kContinuation, ""}, "continuation"},
      {false, Forced({true, kBinary, ""}, uint64_t{1} << 63), "top bit"},
  };
  for (const auto& c : cases) {
    const Scan scan = Feed(c.from_client, Wire(c.frame), 64);
    ASSERT_TRUE(scan.failed) << c.mentions;
    EXPECT_NE(scan.error.find(c.mentions), std::string::npos) << scan.error;
  }
  const Scan inside = Feed(false, Wire({{false, kText, "a"}, {true, kBinary, "b"}}), 64);
  ASSERT_TRUE(inside.failed);
  EXPECT_NE(inside.error.find("inside a fragmented message"), std::string::npos) << inside.error;
}

}  // namespace
}  // namespace wsgate::dataplane::relay
