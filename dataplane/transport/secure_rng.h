// A cryptographically strong 32-bit generator for websocketpp's client masking keys and
// Sec-WebSocket-Key nonces (the config's `rng_type`).
//
// websocketpp's stock client rng draws from std::random_device for every frame; on our machines
// that is the `rdseed` instruction, which stalls (FIELD-NOTES: 5x fewer messages per second).
// RFC 6455 section 5.3 asks for masking keys an attacker cannot predict, so a plain PRNG such as
// mt19937 is not acceptable either. This class takes its bytes from OpenSSL's CSPRNG (a DRBG
// seeded once from the OS), 4 KiB at a time, so the cost per frame is a copy of 4 bytes.
//
// Not thread-safe: each websocketpp endpoint owns one instance, and an endpoint is owned by one
// worker thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace wsgate::dataplane::transport {

class SecureRandom32 {
 public:
  SecureRandom32() = default;
  SecureRandom32(const SecureRandom32&) = delete;
  SecureRandom32& operator=(const SecureRandom32&) = delete;

  uint32_t operator()() {
    if (pos_ + sizeof(uint32_t) > buf_.size()) Refill();
    uint32_t v;
    __builtin_memcpy(&v, buf_.data() + pos_, sizeof(v));
    pos_ += sizeof(v);
    return v;
  }

 private:
  // Aborts the process if OpenSSL cannot produce random bytes: predictable masking keys would be
  // a silent security bug, and this cannot happen on a healthy system.
  void Refill();

  static constexpr size_t kBatchBytes = 4096;
  std::array<unsigned char, kBatchBytes> buf_{};
  size_t pos_ = kBatchBytes;  // empty: the first call fills the buffer
};

}  // namespace wsgate::dataplane::transport
