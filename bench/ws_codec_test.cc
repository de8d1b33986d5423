// Unit tests of the benchmark's own WebSocket codec: if it mis-frames, every figure is wrong.
#include "bench/ws_codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace wsbench {
namespace {

std::vector<uint8_t> Frame(bool fin, uint8_t op, const std::string& payload, const uint8_t* mask) {
  std::vector<uint8_t> out(kMaxFrameHeader + payload.size());
  size_t h = WriteFrameHeader(out.data(), fin, op, payload.size(), mask);
  std::memcpy(out.data() + h, payload.data(), payload.size());
  if (mask) ApplyMask(out.data() + h, payload.size(), mask, 0);
  out.resize(h + payload.size());
  return out;
}

ParseStatus Parse(const std::vector<uint8_t>& b, Role role, FrameHeader* fh, const char** error,
                  uint64_t max = 1ull << 40) {
  return ParseFrameHeader(b.data(), b.size(), role, max, fh, error);
}

TEST(FrameCodec, RoundTripsEveryLengthEncodingBoundary) {
  const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  for (size_t len : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 70000u}) {
    std::string payload(len, 'x');
    for (size_t i = 0; i < len; ++i) payload[i] = static_cast<char>('a' + i % 26);
    std::vector<uint8_t> f = Frame(true, kOpBinary, payload, mask);
    FrameHeader fh;
    const char* error = nullptr;
    ASSERT_EQ(Parse(f, Role::kServer, &fh, &error), ParseStatus::kOk) << len << ": " << error;
    EXPECT_TRUE(fh.fin);
    EXPECT_EQ(fh.opcode, kOpBinary);
    EXPECT_EQ(fh.payload_len, len);
    EXPECT_EQ(fh.header_len + len, f.size());
    EXPECT_EQ(fh.header_len, (len < 126 ? 2u : len <= 65535 ? 4u : 10u) + 4u);
    ApplyMask(f.data() + fh.header_len, len, fh.mask, 0);
    EXPECT_EQ(std::string(f.begin() + fh.header_len, f.end()), payload) << len;
  }
}

TEST(FrameCodec, EveryTruncatedHeaderNeedsMore) {
  const uint8_t mask[4] = {1, 2, 3, 4};
  for (size_t len : {10u, 300u, 70000u}) {
    std::vector<uint8_t> f = Frame(false, kOpText, std::string(len, 'y'), mask);
    FrameHeader fh;
    const char* error = nullptr;
    ASSERT_EQ(Parse(f, Role::kServer, &fh, &error), ParseStatus::kOk);
    for (size_t cut = 0; cut < fh.header_len; ++cut) {
      std::vector<uint8_t> part(f.begin(), f.begin() + cut);
      FrameHeader partial;
      EXPECT_EQ(Parse(part, Role::kServer, &partial, &error), ParseStatus::kNeedMore)
          << len << " cut at " << cut;
    }
  }
}

TEST(FrameCodec, MaskingDependsOnRole) {
  const uint8_t mask[4] = {9, 9, 9, 9};
  FrameHeader fh;
  const char* error = nullptr;
  EXPECT_EQ(Parse(Frame(true, kOpText, "hi", nullptr), Role::kServer, &fh, &error),
            ParseStatus::kError);
  EXPECT_STREQ(error, "client frame not masked");
  EXPECT_EQ(Parse(Frame(true, kOpText, "hi", mask), Role::kClient, &fh, &error),
            ParseStatus::kError);
  EXPECT_EQ(Parse(Frame(true, kOpText, "hi", nullptr), Role::kClient, &fh, &error),
            ParseStatus::kOk);
}

TEST(FrameCodec, RefusesProtocolViolations) {
  FrameHeader fh;
  const char* error = nullptr;
  // RSV1 set (no extension negotiated).
  EXPECT_EQ(Parse({0xC2, 0x00}, Role::kClient, &fh, &error), ParseStatus::kError);
  // Opcode 3 is reserved.
  EXPECT_EQ(Parse({0x83, 0x00}, Role::kClient, &fh, &error), ParseStatus::kError);
  // Fragmented ping.
  EXPECT_EQ(Parse({0x09, 0x00}, Role::kClient, &fh, &error), ParseStatus::kError);
  // Ping longer than 125 bytes.
  EXPECT_EQ(Parse({0x89, 126, 0x00, 0x80}, Role::kClient, &fh, &error), ParseStatus::kError);
  // 16-bit length used for a length that fits in 7 bits.
  EXPECT_EQ(Parse({0x82, 126, 0x00, 0x10}, Role::kClient, &fh, &error), ParseStatus::kError);
  // 64-bit length used for a length that fits in 16 bits.
  EXPECT_EQ(Parse({0x82, 127, 0, 0, 0, 0, 0, 0, 0x01, 0x00}, Role::kClient, &fh, &error),
            ParseStatus::kError);
  // 64-bit length with the most significant bit set.
  EXPECT_EQ(Parse({0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, Role::kClient, &fh, &error),
            ParseStatus::kError);
  // Above the caller's maximum.
  EXPECT_EQ(Parse({0x82, 126, 0x01, 0x00}, Role::kClient, &fh, &error, 255), ParseStatus::kError);
  EXPECT_EQ(Parse({0x82, 126, 0x01, 0x00}, Role::kClient, &fh, &error, 256), ParseStatus::kOk);
}

TEST(FrameCodec, MaskWithOffsetMatchesWholeMask) {
  const uint8_t mask[4] = {0xA1, 0xB2, 0xC3, 0xD4};
  std::vector<uint8_t> whole(37), split;
  for (size_t i = 0; i < whole.size(); ++i) whole[i] = static_cast<uint8_t>(i * 7);
  split = whole;
  ApplyMask(whole.data(), whole.size(), mask, 0);
  ApplyMask(split.data(), 5, mask, 0);
  ApplyMask(split.data() + 5, split.size() - 5, mask, 5);
  EXPECT_EQ(whole, split);
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(whole[i], static_cast<uint8_t>((i * 7) ^ mask[i % 4])) << i;
  }
}

TEST(Handshake, AcceptKeyMatchesRfc6455Example) {
  EXPECT_EQ(ComputeAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(Handshake, Base64PadsCorrectly) {
  const uint8_t d[] = {'f', 'o', 'o', 'b', 'a', 'r'};
  EXPECT_EQ(Base64Encode(d, 0), "");
  EXPECT_EQ(Base64Encode(d, 1), "Zg==");
  EXPECT_EQ(Base64Encode(d, 2), "Zm8=");
  EXPECT_EQ(Base64Encode(d, 3), "Zm9v");
  EXPECT_EQ(Base64Encode(d, 6), "Zm9vYmFy");
}

TEST(Handshake, RequestRoundTripsThroughTheParser) {
  std::string req = BuildUpgradeRequest("127.0.0.1:9", "/flood?x=1", "abc==");
  UpgradeRequest out;
  const char* error = nullptr;
  for (size_t cut = 0; cut < req.size(); ++cut) {
    ASSERT_EQ(ParseUpgradeRequest(req.data(), cut, &out, &error), HttpStatus::kNeedMore) << cut;
  }
  std::string with_next = req + "\x82";  // a pipelined frame right behind the request
  ASSERT_EQ(ParseUpgradeRequest(with_next.data(), with_next.size(), &out, &error), HttpStatus::kOk)
      << error;
  EXPECT_EQ(out.path, "/flood?x=1");
  EXPECT_EQ(out.key, "abc==");
  EXPECT_EQ(out.consumed, req.size());
}

TEST(Handshake, RequestParserRefusesBadRequests) {
  const char* error = nullptr;
  UpgradeRequest out;
  auto parse = [&](const std::string& s) {
    return ParseUpgradeRequest(s.data(), s.size(), &out, &error);
  };
  const std::string good_headers =
      "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: k\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  EXPECT_EQ(parse("GET / HTTP/1.1\r\n" + good_headers), HttpStatus::kOk);
  EXPECT_EQ(parse("POST / HTTP/1.1\r\n" + good_headers), HttpStatus::kError);
  EXPECT_EQ(parse("GET / HTTP/1.0\r\n" + good_headers), HttpStatus::kError);
  EXPECT_EQ(parse("GET /\r\n" + good_headers), HttpStatus::kError);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n"),
            HttpStatus::kError);  // no Upgrade header
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n"),
            HttpStatus::kError);  // no key
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 8\r\n\r\n"),
            HttpStatus::kError);  // old version
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nnocolon\r\n\r\n"), HttpStatus::kError);
  // Headers that never end are refused once they pass the limit, not buffered forever.
  std::string endless = "GET / HTTP/1.1\r\nX: " + std::string(kMaxHttpHeader + 10, 'a');
  EXPECT_EQ(parse(endless), HttpStatus::kError);
}

TEST(Handshake, ResponseParserChecksStatusAndAccept) {
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  UpgradeResponse out;
  const char* error = nullptr;
  auto parse = [&](const std::string& s) {
    return ParseUpgradeResponse(s.data(), s.size(), key, &out, &error);
  };
  EXPECT_EQ(
      parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"),
      HttpStatus::kOk);
  EXPECT_EQ(parse("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: wrong\r\n\r\n"),
            HttpStatus::kError);
  EXPECT_EQ(parse("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"), HttpStatus::kError);
  EXPECT_EQ(out.status, 502);
  EXPECT_EQ(out.status_line, "HTTP/1.1 502 Bad Gateway");
  EXPECT_EQ(parse("HTTP/1.1 1x1 Oops\r\n\r\n"), HttpStatus::kError);
  EXPECT_EQ(parse("HTTP/1.1 101 Switching Protocols\r\n"), HttpStatus::kNeedMore);
}

TEST(Histogram, BucketsAreMonotonicAndTight) {
  size_t prev = 0;
  for (uint64_t v = 1; v < (1ull << 40); v = v * 3 / 2 + 1) {
    size_t idx = LogLinearHistogram::BucketIndex(v);
    EXPECT_GE(idx, prev);
    prev = idx;
    uint64_t upper = LogLinearHistogram::BucketUpperBound(idx);
    EXPECT_GE(upper, v);
    // Log-linear with 32 sub-buckets: the bucket's upper bound is within ~3.2% of the value.
    EXPECT_LE(static_cast<double>(upper), static_cast<double>(v) * 1.033 + 1) << v;
  }
  EXPECT_EQ(LogLinearHistogram::BucketUpperBound(LogLinearHistogram::BucketIndex(UINT64_MAX)),
            UINT64_MAX);
}

TEST(Histogram, QuantilesOfAKnownDistribution) {
  LogLinearHistogram h;
  EXPECT_EQ(h.Quantile(0.5), 0u);
  for (uint64_t v = 1; v <= 1000; ++v) h.Record(v * 1000);  // 1 us .. 1 ms in ns
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_EQ(h.max(), 1000000u);
  EXPECT_NEAR(static_cast<double>(h.Quantile(0.5)), 500000.0, 500000.0 * 0.035);
  EXPECT_NEAR(static_cast<double>(h.Quantile(0.99)), 990000.0, 990000.0 * 0.035);
  EXPECT_EQ(h.Quantile(1.0), 1000000u);
  EXPECT_LE(h.Quantile(0.0), 1000u * 1.04);
  LogLinearHistogram other;
  other.Record(5000000);
  h.Merge(other);
  EXPECT_EQ(h.max(), 5000000u);
  EXPECT_EQ(h.count(), 1001u);
  h.Reset();
  EXPECT_EQ(h.count(), 0u);
}

TEST(ByteBuffer, ConsumeAndGrowKeepUnreadBytes) {
  ByteBuffer b;
  b.Append("hello world", 11);
  b.Consume(6);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), b.size()), "world");
  std::string big(100000, 'z');
  b.Append(big.data(), big.size());
  EXPECT_EQ(b.size(), 5 + big.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), 5), "world");
  b.Consume(b.size());
  EXPECT_TRUE(b.empty());
  const size_t grown = b.capacity();
  b.ShrinkIfIdle(grown);  // at the limit: kept
  EXPECT_EQ(b.capacity(), grown);
  b.ShrinkIfIdle(1024);
  EXPECT_EQ(b.capacity(), 0u);
  b.Append("again", 5);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), b.size()), "again");
}

}  // namespace
}  // namespace wsbench
