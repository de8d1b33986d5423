#include "dataplane/outbound/tls.h"

#include <openssl/ssl.h>

#include <boost/system/system_error.hpp>
#include <exception>
#include <mutex>

#include "absl/status/status.h"

namespace wsgate::dataplane::outbound {

namespace {

absl::StatusOr<TlsContextPtr> BuildTlsContext(const TlsSettings& settings) {
  namespace ssl = boost::asio::ssl;
  // Boost.Asio reports OpenSSL failures as exceptions; they stop here.
  try {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    switch (settings.verify) {
      case TlsSettings::Verify::kSystemStore:
        ctx->set_default_verify_paths();
        ctx->set_verify_mode(ssl::verify_peer);
        break;
      case TlsSettings::Verify::kCaFile:
        if (settings.ca_file.empty()) {
          return absl::InvalidArgumentError("TLS verification with a CA file needs ca_file");
        }
        ctx->load_verify_file(settings.ca_file);
        ctx->set_verify_mode(ssl::verify_peer);
        break;
      case TlsSettings::Verify::kOff:
        ctx->set_verify_mode(ssl::verify_none);
        break;
    }
    return ctx;
  } catch (const boost::system::system_error& e) {
    return absl::InvalidArgumentError(std::string("TLS context: ") + e.what());
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("TLS context: ") + e.what());
  }
}

// The system trust store is one ~200 KB bundle parsed into X509 objects: 50-150 ms each time.
// Every route that verifies against it shares one context, built on first use and kept for the
// process (a bundle updated on disk is picked up by a restart, as with most TLS clients).
absl::StatusOr<TlsContextPtr> SystemStoreContext() {
  static std::mutex mu;
  static TlsContextPtr shared;
  std::lock_guard<std::mutex> lock(mu);
  if (shared) return shared;
  absl::StatusOr<TlsContextPtr> built = BuildTlsContext(TlsSettings{});
  if (built.ok()) shared = *built;
  return built;
}

}  // namespace

absl::StatusOr<TlsContextPtr> MakeTlsContext(const TlsSettings& settings) {
  if (settings.verify == TlsSettings::Verify::kSystemStore) return SystemStoreContext();
  return BuildTlsContext(settings);
}

bool VerifiesPeer(boost::asio::ssl::context& ctx) {
  return (SSL_CTX_get_verify_mode(ctx.native_handle()) & SSL_VERIFY_PEER) != 0;
}

}  // namespace wsgate::dataplane::outbound
