// Frames a received message for sending again without a second message.
//
// Used today by `echo` (a websocketpp connection sending back what it read, unmasked) and, for
// MaskInPlace and EncodeFrameHeader, by the relay (proxy_relay.cc) for the frames it makes
// itself. It was written for the websocketpp proxy path, which the relay replaced; the history
// below is why it exists.
//
// websocketpp's connection::send(msg) frames a message that is not "prepared" by allocating a new
// message (a make_shared and a payload string), copying (and for the client role masking) the
// payload into it byte by byte, and only then queueing it. For a proxy that forwards every
// message exactly once that is two allocations, two frees and a copy per message per hop; the
// callgrind profile of the 64 B benchmark showed malloc/free at ~28% of the worker's instructions
// and the byte-wise masking of prepare_data_frame at 7% (bench/README.md, "Profile").
//
// FrameInPlace does what hybi13::prepare_data_frame does, on the received message itself: it
// masks the payload in place (8 bytes at a time) when the leg is a client, writes the frame
// header and marks the message prepared, so send() only queues it. What it skips, and why that
// is safe here:
// - UTF-8 validation of text messages: websocketpp validated them when they were read (hybi13
//   consume fails the connection on invalid UTF-8 in a text frame), and the payload is unchanged.
// - compression: permessage-deflate is disabled in ws_config.h for both legs.
// The message must not be read afterwards as plain payload (a masked payload is scrambled):
// callers count its size first and forward it exactly once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace wsgate::dataplane::transport {

// XORs `data` with the 4-byte masking key (RFC 6455 section 5.3), 8 bytes at a time.
inline void MaskInPlace(char* data, size_t size, uint32_t key) {
  const uint64_t key8 = (static_cast<uint64_t>(key) << 32) | key;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, 8);
    w ^= key8;
    std::memcpy(data + i, &w, 8);
  }
  unsigned char k[4];
  std::memcpy(k, &key, 4);
  for (; i < size; ++i) data[i] = static_cast<char>(data[i] ^ k[i & 3]);
}

// Writes the RFC 6455 frame header of one complete data frame into `out` (at most 14 bytes) and
// returns its length. Same bytes as websocketpp's frame::prepare_header, without building two
// temporary strings.
inline size_t EncodeFrameHeader(char* out, uint8_t opcode, bool fin, uint64_t size, bool masked,
                                uint32_t key) {
  size_t n = 0;
  out[n++] = static_cast<char>((fin ? 0x80 : 0x00) | (opcode & 0x0f));
  const char mask_bit = masked ? static_cast<char>(0x80) : 0;
  if (size <= 125) {
    out[n++] = static_cast<char>(mask_bit | static_cast<char>(size));
  } else if (size <= 0xffff) {
    out[n++] = static_cast<char>(mask_bit | 126);
    out[n++] = static_cast<char>(size >> 8);
    out[n++] = static_cast<char>(size);
  } else {
    out[n++] = static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out[n++] = static_cast<char>(size >> shift);
  }
  if (masked) {
    std::memcpy(out + n, &key, 4);  // memory order = wire order, as in MaskInPlace
    n += 4;
  }
  return n;
}

// Frames `msg` (a data message: text or binary) for sending; `masked` for a client-role leg,
// with `key` drawn from a cryptographically strong generator. No-op if already prepared.
template <typename Message>
void FrameInPlace(Message& msg, bool masked, uint32_t key) {
  if (msg.get_prepared()) return;
  std::string& payload = msg.get_raw_payload();
  if (masked) MaskInPlace(payload.data(), payload.size(), key);
  char header[14];
  const size_t n = EncodeFrameHeader(header, static_cast<uint8_t>(msg.get_opcode()),
                                     msg.get_fin(), payload.size(), masked, key);
  msg.set_header(std::string(header, n));  // fits the small-string buffer: no allocation
  msg.set_prepared(true);
}

}  // namespace wsgate::dataplane::transport
