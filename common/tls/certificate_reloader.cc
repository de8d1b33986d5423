#include "common/tls/certificate_reloader.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace wsgate::common::tls {
namespace {

bool SameFiles(const ServerCertificate& a, const ServerCertificate& b) {
  return a.cert_chain_pem() == b.cert_chain_pem() && a.private_key_pem() == b.private_key_pem() &&
         a.client_ca_pem() == b.client_ca_pem();
}

}  // namespace

CertificateReloader::CertificateReloader(std::string name, ServerTlsFiles files,
                                         ServerCertificatePtr current, Subscriber subscriber)
    : name_(std::move(name)),
      files_(std::move(files)),
      subscriber_(std::move(subscriber)),
      current_(std::move(current)) {}

CertificateReloader::~CertificateReloader() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

void CertificateReloader::StartPolling(std::chrono::milliseconds interval) {
  poller_ = std::thread([this, interval] {
    std::unique_lock<std::mutex> lock(stop_mu_);
    while (!stop_cv_.wait_for(lock, interval, [this] { return stop_; })) {
      lock.unlock();
      Check();
      lock.lock();
    }
  });
}

CertificateReloader::Outcome CertificateReloader::Check() {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<ServerCertificatePtr> loaded = ServerCertificate::Load(files_);
  if (!loaded.ok()) {
    const std::string error(loaded.status().message());
    if (error != last_error_) {
      spdlog::error("{} certificate not reloaded, the one in use keeps serving: {}", name_, error);
      last_error_ = error;
    }
    return Outcome::kRefused;
  }
  last_error_.clear();
  if (SameFiles(**loaded, *current_)) return Outcome::kUnchanged;
  current_ = *std::move(loaded);
  spdlog::info("{} certificate reloaded from {} ({}, expires at {})", name_, files_.cert_file,
               current_->subject(), current_->not_after_unix());
  subscriber_(current_);
  return Outcome::kReloaded;
}

ServerCertificatePtr CertificateReloader::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

}  // namespace wsgate::common::tls
