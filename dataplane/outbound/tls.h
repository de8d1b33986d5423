// TLS client contexts for outbound https:// (and later wss://) connections.
//
// A context is built when a route is set up, on the control-plane thread, never on a worker:
// loading a CA file reads the disk. Once built it is only read (OpenSSL's SSL_CTX may then be
// shared by every worker), so routes hold it in a shared_ptr<const ...>-like way.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace wsgate::dataplane::outbound {

struct TlsSettings {
  enum class Verify {
    kSystemStore,  // the default: the system's trust store (/etc/ssl/certs)
    kCaFile,       // only the CAs in `ca_file` (PEM)
    kOff,          // no verification at all: only when a route says so explicitly
  };
  Verify verify = Verify::kSystemStore;
  std::string ca_file;
};

using TlsContextPtr = std::shared_ptr<boost::asio::ssl::context>;

// TLS 1.2 or later, peer verification per `settings`. Never throws. Thread-safe. Every call with
// Verify::kSystemStore returns the same context (the system bundle is read once per process);
// the others build a new one (a CA file is read on every call, so a replaced file is picked up).
absl::StatusOr<TlsContextPtr> MakeTlsContext(const TlsSettings& settings);

// Whether connections made with `ctx` verify the peer (and so its host name).
bool VerifiesPeer(boost::asio::ssl::context& ctx);

}  // namespace wsgate::dataplane::outbound
