// Keeps a server certificate current while the process runs: Kubernetes rotates a Secret by
// swapping the files under the mount, an operator replaces them and sends SIGHUP. Check() reads
// the files again (ServerCertificate::Load, so every check of the start applies) and, when what
// they hold differs from the certificate in use, hands the new one to the subscriber. A file that
// is missing, unreadable or bad is logged with the field and path, and the old certificate keeps
// serving: a half-written rotation never takes TLS down.
//
// Threading: Check() may be called from any thread (the signal loop on SIGHUP, the poll thread);
// checks are serialized by a mutex, so the subscriber is called by one thread at a time, in order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/tls/server_certificate.h"

namespace wsgate::common::tls {

class CertificateReloader {
 public:
  using Subscriber = std::function<void(const ServerCertificatePtr&)>;

  // `name` is the certificate's name in logs and on the expiry board ("control").
  // `current` is the certificate loaded at start (not null).
  CertificateReloader(std::string name, ServerTlsFiles files, ServerCertificatePtr current,
                      Subscriber subscriber);
  ~CertificateReloader();  // stops the poll thread

  // Polls every `interval` on a thread of its own (also what catches a rotation nobody signals).
  void StartPolling(std::chrono::milliseconds interval);

  enum class Outcome { kUnchanged, kReloaded, kRefused };
  // Reads the files now. kRefused: they do not load (logged); the certificate in use stays.
  Outcome Check();

  ServerCertificatePtr current() const;

 private:
  const std::string name_;
  const ServerTlsFiles files_;
  const Subscriber subscriber_;
  mutable std::mutex mu_;  // serializes checks; guards current_ and last_error_
  ServerCertificatePtr current_;
  std::string last_error_;  // logged once until it changes, so a poll does not flood the log
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by stop_mu_
  std::thread poller_;
};

}  // namespace wsgate::common::tls
