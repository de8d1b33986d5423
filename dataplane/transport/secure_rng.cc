#include "dataplane/transport/secure_rng.h"

#include <openssl/err.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace wsgate::dataplane::transport {

void SecureRandom32::Refill() {
  if (RAND_bytes(buf_.data(), static_cast<int>(buf_.size())) != 1) {
    spdlog::critical(
        "OpenSSL RAND_bytes failed (error {}); refusing to send predictable "
        "WebSocket masking keys",
        ERR_get_error());
    std::abort();
  }
  pos_ = 0;
}

}  // namespace wsgate::dataplane::transport
