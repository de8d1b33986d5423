// A server's certificate/key pair (and optionally the CA that client certificates must chain
// to), read from files, checked and turned into what a TLS server needs: the PEM texts (gRPC
// takes those) and an Asio/OpenSSL server context (the admin port, later the data-plane
// listener). Also the expiry board that /metrics reads.
//
// Loading reads the disk: call it at start (or at a reload), never on a thread that serves.
// A loaded certificate is immutable, so one may be shared by every thread; a reload builds a new
// one and swaps the pointer, so connections in flight keep the one they
// started with and a bad file leaves the old certificate serving.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace wsgate::common::tls {

// Which files, and the names the operator gave them (a flag, a YAML field, a variable), so that
// every error names the field as well as the path.
struct ServerTlsFiles {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // empty: client certificates are not asked for
  std::string cert_field = "cert";
  std::string key_field = "key";
  std::string client_ca_field = "client_ca";
};

class ServerCertificate {
 public:
  // Reads and checks all files: each readable and PEM, the key matching the certificate, the CA
  // file holding at least one certificate. Errors are INVALID_ARGUMENT:
  // "--control-tls-key '/etc/k.pem': private key does not match the certificate".
  static absl::StatusOr<std::shared_ptr<const ServerCertificate>> Load(const ServerTlsFiles& f);

  const std::string& cert_chain_pem() const { return cert_pem_; }
  const std::string& private_key_pem() const { return key_pem_; }
  const std::string& client_ca_pem() const { return ca_pem_; }  // empty: no mutual TLS
  bool requires_client_certificate() const { return !ca_pem_.empty(); }
  // The leaf certificate's notAfter, in seconds since the Unix epoch.
  int64_t not_after_unix() const { return not_after_; }
  const std::string& subject() const { return subject_; }

  // TLS 1.2 or later, ECDHE + AEAD ciphers only for TLS 1.2 (TLS 1.3's suites are all AEAD),
  // no compression, no renegotiation, server cipher preference; with a client CA, a client
  // certificate is required and verified. The context is shared: read-only once built.
  const std::shared_ptr<boost::asio::ssl::context>& server_context() const { return ctx_; }

 private:
  ServerCertificate() = default;
  std::string cert_pem_, key_pem_, ca_pem_, subject_;
  int64_t not_after_ = 0;
  std::shared_ptr<boost::asio::ssl::context> ctx_;
};

using ServerCertificatePtr = std::shared_ptr<const ServerCertificate>;

// The TLS 1.2 cipher list every wsgate TLS server uses (Mozilla's "intermediate" profile).
extern const char kServerCipherList[];

// Each loaded certificate's notAfter by a fixed, bounded name ("control", later "listener"):
// what wsgate_tls_certificate_expiry_timestamp_seconds exports. Thread-safe.
class ExpiryBoard {
 public:
  void Set(const std::string& name, int64_t not_after_unix);
  std::map<std::string, int64_t> Snapshot() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, int64_t> expiry_;
};

}  // namespace wsgate::common::tls
