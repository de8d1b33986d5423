// A private copy of a checked certificate, for a TLS server that reads its files itself
// (gRPC's FileWatcherCertificateProvider). gRPC re-reads whatever the files hold and, when a
// rotation goes wrong (a key that does not match its certificate), fails its handshakes rather
// than keeping the old pair. So gRPC never reads the operator's files: it reads this mirror, which
// only ever holds pairs that ServerCertificate::Load accepted.
//
// Layout: <dir>/gen-N/{key.pem,cert.pem,ca.pem} and <dir>/current -> gen-N. A new pair is written
// into a new generation and the `current` link is renamed over in one step, the swap gRPC's
// watcher is built for (it re-reads when a file changed while it read). The previous generation
// is removed at the next publish, long after any read of it. The directory is 0700 and removed
// with the mirror: it holds a private key.
//
// Threading: Publish is called by one thread at a time (the reloader's subscriber).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/tls/server_certificate.h"

namespace wsgate::common::tls {

class CertificateMirror {
 public:
  // Creates the directory under `parent` (e.g. /tmp) and publishes `first` into it.
  static absl::StatusOr<std::unique_ptr<CertificateMirror>> Create(const std::string& parent,
                                                                   const ServerCertificate& first);
  ~CertificateMirror();  // removes the directory

  // The paths to give the server (stable across publishes).
  std::string key_path() const { return dir_ + "/current/key.pem"; }
  std::string cert_path() const { return dir_ + "/current/cert.pem"; }
  // Empty when the certificate has no client CA.
  std::string ca_path() const { return has_ca_ ? dir_ + "/current/ca.pem" : std::string(); }

  absl::Status Publish(const ServerCertificate& certificate);

 private:
  explicit CertificateMirror(std::string dir) : dir_(std::move(dir)) {}
  const std::string dir_;
  bool has_ca_ = false;
  int generation_ = 0;
};

}  // namespace wsgate::common::tls
