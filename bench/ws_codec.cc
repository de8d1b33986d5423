#include "bench/ws_codec.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace wsbench {
namespace {

constexpr char kWebSocketGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool IsKnownOpcode(uint8_t op) {
  return op == kOpContinuation || op == kOpText || op == kOpBinary || op == kOpClose ||
         op == kOpPing || op == kOpPong;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// True if the comma-separated header value contains `token` (case-insensitive), as
// `Connection: keep-alive, Upgrade` does.
bool HasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (EqualsIgnoreCase(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

struct HeaderBlock {
  std::string_view first_line;
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  size_t consumed = 0;
};

// Splits an HTTP/1.1 header block into its first line and fields. Obsolete line folding is
// refused rather than supported: neither peer of this benchmark sends it.
HttpStatus SplitHeaders(const char* data, size_t len, HeaderBlock* out, const char** error) {
  std::string_view all(data, std::min(len, kMaxHttpHeader + 4));
  size_t end = all.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (len > kMaxHttpHeader) {
      *error = "HTTP header block too large";
      return HttpStatus::kError;
    }
    return HttpStatus::kNeedMore;
  }
  if (end > kMaxHttpHeader) {
    *error = "HTTP header block too large";
    return HttpStatus::kError;
  }
  out->consumed = end + 4;
  std::string_view block = all.substr(0, end);
  size_t eol = block.find("\r\n");
  out->first_line = block.substr(0, eol);
  std::string_view rest =
      eol == std::string_view::npos ? std::string_view() : block.substr(eol + 2);
  while (!rest.empty()) {
    size_t next = rest.find("\r\n");
    std::string_view line = rest.substr(0, next);
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 2);
    if (line.empty() || line.front() == ' ' || line.front() == '\t') {
      *error = "malformed HTTP header line";
      return HttpStatus::kError;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      *error = "HTTP header line without a name";
      return HttpStatus::kError;
    }
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    out->fields.emplace_back(name, value);
  }
  return HttpStatus::kOk;
}

const std::string_view* FindField(const HeaderBlock& block, std::string_view name) {
  for (const auto& f : block.fields) {
    if (EqualsIgnoreCase(f.first, name)) return &f.second;
  }
  return nullptr;
}

}  // namespace

ParseStatus ParseFrameHeader(const uint8_t* data, size_t len, Role role, uint64_t max_payload,
                             FrameHeader* out, const char** error) {
  if (len < 2) return ParseStatus::kNeedMore;
  const uint8_t b0 = data[0];
  const uint8_t b1 = data[1];
  if (b0 & 0x70) {
    *error = "reserved bits set without a negotiated extension";
    return ParseStatus::kError;
  }
  out->fin = (b0 & 0x80) != 0;
  out->opcode = b0 & 0x0F;
  out->masked = (b1 & 0x80) != 0;
  if (!IsKnownOpcode(out->opcode)) {
    *error = "unknown opcode";
    return ParseStatus::kError;
  }
  if (role == Role::kServer && !out->masked) {
    *error = "client frame not masked";
    return ParseStatus::kError;
  }
  if (role == Role::kClient && out->masked) {
    *error = "server frame masked";
    return ParseStatus::kError;
  }
  const bool control = (out->opcode & 0x08) != 0;
  uint64_t plen = b1 & 0x7F;
  size_t pos = 2;
  if (plen == 126) {
    if (len < 4) return ParseStatus::kNeedMore;
    plen = (uint64_t{data[2]} << 8) | data[3];
    if (plen < 126) {
      *error = "non-minimal 16-bit payload length";
      return ParseStatus::kError;
    }
    pos = 4;
  } else if (plen == 127) {
    if (len < 10) return ParseStatus::kNeedMore;
    plen = 0;
    for (int i = 0; i < 8; ++i) plen = (plen << 8) | data[2 + i];
    if (plen >> 63) {
      *error = "64-bit payload length with the most significant bit set";
      return ParseStatus::kError;
    }
    if (plen <= 0xFFFF) {
      *error = "non-minimal 64-bit payload length";
      return ParseStatus::kError;
    }
    pos = 10;
  }
  if (control && (!out->fin || plen > 125)) {
    *error = "control frame fragmented or longer than 125 bytes";
    return ParseStatus::kError;
  }
  if (plen > max_payload) {
    *error = "frame payload above the configured maximum";
    return ParseStatus::kError;
  }
  if (out->masked) {
    if (len < pos + 4) return ParseStatus::kNeedMore;
    std::memcpy(out->mask, data + pos, 4);
    pos += 4;
  }
  out->payload_len = plen;
  out->header_len = pos;
  return ParseStatus::kOk;
}

size_t WriteFrameHeader(uint8_t* out, bool fin, uint8_t opcode, uint64_t payload_len,
                        const uint8_t* mask) {
  out[0] = static_cast<uint8_t>((fin ? 0x80 : 0x00) | (opcode & 0x0F));
  const uint8_t mask_bit = mask ? 0x80 : 0x00;
  size_t pos;
  if (payload_len < 126) {
    out[1] = static_cast<uint8_t>(mask_bit | payload_len);
    pos = 2;
  } else if (payload_len <= 0xFFFF) {
    out[1] = mask_bit | 126;
    out[2] = static_cast<uint8_t>(payload_len >> 8);
    out[3] = static_cast<uint8_t>(payload_len);
    pos = 4;
  } else {
    out[1] = mask_bit | 127;
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<uint8_t>(payload_len >> (56 - 8 * i));
    pos = 10;
  }
  if (mask) {
    std::memcpy(out + pos, mask, 4);
    pos += 4;
  }
  return pos;
}

void ApplyMask(uint8_t* data, size_t len, const uint8_t mask[4], size_t offset) {
  // Rotate the key so that byte 0 of `data` lines up with mask[offset % 4], then work on 8 bytes
  // at a time (the compiler vectorizes this loop); memcpy keeps it free of alignment assumptions.
  uint8_t rotated[8];
  for (int i = 0; i < 8; ++i) rotated[i] = mask[(offset + i) & 3];
  uint64_t word;
  std::memcpy(&word, rotated, 8);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t chunk;
    std::memcpy(&chunk, data + i, 8);
    chunk ^= word;
    std::memcpy(data + i, &chunk, 8);
  }
  for (; i < len; ++i) data[i] ^= rotated[i & 7];
}

std::string Base64Encode(const uint8_t* data, size_t len) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((len + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (len - i == 1) {
    uint32_t v = uint32_t{data[i]} << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out += "==";
  } else if (len - i == 2) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

std::string ComputeAcceptKey(std::string_view client_key) {
  std::string input(client_key);
  input += kWebSocketGuid;
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return Base64Encode(digest, sizeof(digest));
}

std::string BuildUpgradeRequest(std::string_view host, std::string_view path,
                                std::string_view key) {
  std::string req;
  req.reserve(192 + path.size() + host.size());
  req += "GET ";
  req += path;
  req += " HTTP/1.1\r\nHost: ";
  req += host;
  req += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
  req += key;
  req += "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  return req;
}

HttpStatus ParseUpgradeRequest(const char* data, size_t len, UpgradeRequest* out,
                               const char** error) {
  HeaderBlock block;
  HttpStatus st = SplitHeaders(data, len, &block, error);
  if (st != HttpStatus::kOk) return st;
  std::string_view line = block.first_line;
  if (line.substr(0, 4) != "GET ") {
    *error = "not a GET request";
    return HttpStatus::kError;
  }
  line.remove_prefix(4);
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0 || line.substr(sp + 1) != "HTTP/1.1") {
    *error = "malformed request line";
    return HttpStatus::kError;
  }
  const std::string_view* upgrade = FindField(block, "Upgrade");
  const std::string_view* connection = FindField(block, "Connection");
  const std::string_view* version = FindField(block, "Sec-WebSocket-Version");
  const std::string_view* key = FindField(block, "Sec-WebSocket-Key");
  if (!upgrade || !HasToken(*upgrade, "websocket") || !connection ||
      !HasToken(*connection, "upgrade")) {
    *error = "not a WebSocket upgrade";
    return HttpStatus::kError;
  }
  if (!version || *version != "13") {
    *error = "unsupported Sec-WebSocket-Version";
    return HttpStatus::kError;
  }
  if (!key || key->empty()) {
    *error = "missing Sec-WebSocket-Key";
    return HttpStatus::kError;
  }
  out->path.assign(line.substr(0, sp));
  out->key.assign(*key);
  out->consumed = block.consumed;
  return HttpStatus::kOk;
}

HttpStatus ParseUpgradeResponse(const char* data, size_t len, std::string_view key,
                                UpgradeResponse* out, const char** error) {
  HeaderBlock block;
  HttpStatus st = SplitHeaders(data, len, &block, error);
  if (st != HttpStatus::kOk) return st;
  out->consumed = block.consumed;
  out->status_line.assign(block.first_line);
  std::string_view line = block.first_line;
  if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || line[8] != ' ') {
    *error = "malformed status line";
    return HttpStatus::kError;
  }
  int status = 0;
  for (int i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') {
      *error = "malformed status code";
      return HttpStatus::kError;
    }
    status = status * 10 + (line[i] - '0');
  }
  out->status = status;
  if (status != 101) {
    *error = "upgrade refused";
    return HttpStatus::kError;
  }
  const std::string_view* accept = FindField(block, "Sec-WebSocket-Accept");
  if (!accept || *accept != ComputeAcceptKey(key)) {
    *error = "missing or wrong Sec-WebSocket-Accept";
    return HttpStatus::kError;
  }
  return HttpStatus::kOk;
}

LogLinearHistogram::LogLinearHistogram() : buckets_(64 + 64 * 32, 0) {}

size_t LogLinearHistogram::BucketIndex(uint64_t value) {
  if (value < 64) return static_cast<size_t>(value);
  const int msb = 63 - __builtin_clzll(value);  // >= 6
  const int shift = msb - 5;                    // value >> shift is in [32, 63]
  const uint64_t top = value >> shift;
  return 64 + static_cast<size_t>(shift - 1) * 32 + static_cast<size_t>(top - 32);
}

uint64_t LogLinearHistogram::BucketUpperBound(size_t index) {
  if (index < 64) return index;
  const size_t shift = (index - 64) / 32 + 1;
  const uint64_t top = (index - 64) % 32 + 32;
  // The largest value whose top bits are `top`. Saturates for the last bucket.
  if (shift >= 58) return UINT64_MAX;
  return ((top + 1) << shift) - 1;
}

void LogLinearHistogram::Record(uint64_t value) {
  ++buckets_[BucketIndex(value)];
  ++count_;
  if (value > max_) max_ = value;
}

void LogLinearHistogram::Merge(const LogLinearHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

void LogLinearHistogram::Reset() {
  std::fill(buckets_.begin(), buckets_.end(), 0);
  count_ = 0;
  max_ = 0;
}

uint64_t LogLinearHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Rank of the wanted sample, 1-based: the smallest rank r with r >= q * count.
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.999999);
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(BucketUpperBound(i), max_);
  }
  return max_;
}

uint8_t* ByteBuffer::PrepareWrite(size_t n) {
  if (capacity_ - end_ >= n) return buf_.get() + end_;
  // Move unread bytes to the front before growing: steady-state traffic then never reallocates.
  if (begin_ > 0) {
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (capacity_ - end_ < n) {
    size_t cap = std::max({capacity_ * 2, end_ + n, size_t{4096}});
    std::unique_ptr<uint8_t[]> grown(new uint8_t[cap]);  // deliberately not value-initialised
    if (end_ > 0) std::memcpy(grown.get(), buf_.get(), end_);
    buf_ = std::move(grown);
    capacity_ = cap;
  }
  return buf_.get() + end_;
}

void ByteBuffer::Append(const void* src, size_t n) {
  if (n == 0) return;
  std::memcpy(PrepareWrite(n), src, n);
  Commit(n);
}

void ByteBuffer::Consume(size_t n) {
  begin_ += n;
  if (begin_ == end_) begin_ = end_ = 0;
}

void ByteBuffer::ShrinkIfIdle(size_t limit) {
  if (empty() && capacity_ > limit) {
    buf_.reset();
    capacity_ = 0;
    begin_ = end_ = 0;
  }
}

}  // namespace wsbench
