#include "common/tls/certificate_mirror.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace wsgate::common::tls {
namespace {

absl::Status Failure(const std::string& what, int err) {
  return absl::InternalError(absl::StrCat("certificate mirror: cannot ", what, ": ",
                                          std::strerror(err)));
}

absl::Status WriteFile(const std::string& path, std::string_view data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Failure("create " + path, errno);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return Failure("write " + path, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return Failure("close " + path, errno);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CertificateMirror>> CertificateMirror::Create(
    const std::string& parent, const ServerCertificate& first) {
  std::string tmpl = parent + "/wsgate-tls-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return Failure("create a directory in " + parent, errno);
  std::unique_ptr<CertificateMirror> mirror(new CertificateMirror(tmpl));
  if (absl::Status s = mirror->Publish(first); !s.ok()) return s;
  return mirror;
}

CertificateMirror::~CertificateMirror() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::Status CertificateMirror::Publish(const ServerCertificate& certificate) {
  const int previous = generation_;
  const std::string gen = absl::StrCat("gen-", generation_ + 1);
  const std::string gen_dir = absl::StrCat(dir_, "/", gen);
  if (::mkdir(gen_dir.c_str(), 0700) != 0) return Failure("create " + gen_dir, errno);
  if (absl::Status s = WriteFile(gen_dir + "/key.pem", certificate.private_key_pem()); !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteFile(gen_dir + "/cert.pem", certificate.cert_chain_pem()); !s.ok()) {
    return s;
  }
  if (!certificate.client_ca_pem().empty()) {
    if (absl::Status s = WriteFile(gen_dir + "/ca.pem", certificate.client_ca_pem()); !s.ok()) {
      return s;
    }
  }
  // The new link under a temporary name, then renamed over `current`: readers see the old
  // generation or the new one, never a mix.
  const std::string link_tmp = dir_ + "/current.new";
  ::unlink(link_tmp.c_str());
  if (::symlink(gen.c_str(), link_tmp.c_str()) != 0) return Failure("link " + link_tmp, errno);
  if (::rename(link_tmp.c_str(), (dir_ + "/current").c_str()) != 0) {
    return Failure("rename " + link_tmp, errno);
  }
  generation_ += 1;
  has_ca_ = !certificate.client_ca_pem().empty();
  // The generation before the previous one: gRPC has long finished any read of it.
  if (previous >= 2) {
    std::error_code ignored;
    std::filesystem::remove_all(absl::StrCat(dir_, "/gen-", previous - 1), ignored);
  }
  return absl::OkStatus();
}

}  // namespace wsgate::common::tls
