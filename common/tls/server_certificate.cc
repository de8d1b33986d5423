#include "common/tls/server_certificate.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace wsgate::common::tls {

const char kServerCipherList[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

namespace {

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

absl::Status Bad(const std::string& field, const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, " '", path, "': ", what));
}

// The oldest error OpenSSL queued (the root cause), then the queue is cleared.
std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no PEM data";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

absl::StatusOr<std::string> ReadFile(const std::string& field, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Bad(field, path, absl::StrCat("cannot read: ", std::strerror(errno)));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return Bad(field, path, "cannot read");
  if (s.str().empty()) return Bad(field, path, "the file is empty");
  return s.str();
}

BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
}

int64_t ToUnix(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

absl::StatusOr<ServerCertificatePtr> ServerCertificate::Load(const ServerTlsFiles& f) {
  auto out = std::shared_ptr<ServerCertificate>(new ServerCertificate());
  ERR_clear_error();

  absl::StatusOr<std::string> cert_pem = ReadFile(f.cert_field, f.cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  BioPtr cert_bio = MemBio(*cert_pem);
  X509Ptr leaf(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!leaf) return Bad(f.cert_field, f.cert_file, "not a PEM certificate: " + OpenSslError());

  absl::StatusOr<std::string> key_pem = ReadFile(f.key_field, f.key_file);
  if (!key_pem.ok()) return key_pem.status();
  BioPtr key_bio = MemBio(*key_pem);
  KeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!key) return Bad(f.key_field, f.key_file, "not a PEM private key: " + OpenSslError());
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    ERR_clear_error();
    return Bad(f.key_field, f.key_file,
               absl::StrCat("private key does not match the certificate in ", f.cert_file));
  }

  if (!f.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca_pem = ReadFile(f.client_ca_field, f.client_ca_file);
    if (!ca_pem.ok()) return ca_pem.status();
    BioPtr ca_bio = MemBio(*ca_pem);
    X509Ptr first(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr), &X509_free);
    if (!first) {
      return Bad(f.client_ca_field, f.client_ca_file,
                 "not a PEM CA certificate: " + OpenSslError());
    }
    out->ca_pem_ = *std::move(ca_pem);
  }

  namespace ssl = boost::asio::ssl;
  try {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                     ssl::context::no_compression | ssl::context::single_dh_use);
    SSL_CTX* native = ctx->native_handle();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(native, kServerCipherList) != 1) {
      return absl::InternalError("TLS: the cipher list was refused: " + OpenSslError());
    }
    ctx->use_certificate_chain(boost::asio::buffer(cert_pem->data(), cert_pem->size()));
    ctx->use_private_key(boost::asio::buffer(key_pem->data(), key_pem->size()), ssl::context::pem);
    if (!out->ca_pem_.empty()) {
      ctx->add_certificate_authority(boost::asio::buffer(out->ca_pem_.data(), out->ca_pem_.size()));
      ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    out->ctx_ = std::move(ctx);
  } catch (const std::exception& e) {
    ERR_clear_error();
    return Bad(f.cert_field, f.cert_file, absl::StrCat("cannot be used for TLS: ", e.what()));
  }

  out->not_after_ = ToUnix(X509_get0_notAfter(leaf.get()));
  char subject[256] = {};
  X509_NAME_oneline(X509_get_subject_name(leaf.get()), subject, sizeof(subject) - 1);
  out->subject_ = subject;
  out->cert_pem_ = *std::move(cert_pem);
  out->key_pem_ = *std::move(key_pem);
  return ServerCertificatePtr(std::move(out));
}

void ExpiryBoard::Set(const std::string& name, int64_t not_after_unix) {
  std::lock_guard<std::mutex> lock(mu_);
  expiry_[name] = not_after_unix;
}

std::map<std::string, int64_t> ExpiryBoard::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return expiry_;
}

}  // namespace wsgate::common::tls
