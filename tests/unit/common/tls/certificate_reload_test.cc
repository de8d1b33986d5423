// The reloader and the mirror against real files: certificates made by the openssl CLI.
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/tls/certificate_mirror.h"
#include "common/tls/certificate_reloader.h"
#include "common/tls/server_certificate.h"

namespace wsgate::common::tls {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class CertificateReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("wsgate-reload-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const char* name : {"a", "b"}) {
      const std::string cmd =
          "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 "
          "-subj /CN=" + std::string(name) + " -keyout " + (dir_ / name).string() + ".key -out " +
          (dir_ / name).string() + ".pem 2>/dev/null";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }
    Install("a.pem", "a.key");
    files_.cert_file = (dir_ / "live.pem").string();
    files_.key_file = (dir_ / "live.key").string();
    files_.cert_field = "--control-tls-cert";
    files_.key_field = "--control-tls-key";
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Install(const std::string& cert, const std::string& key) {
    fs::copy_file(dir_ / cert, dir_ / "live.pem", fs::copy_options::overwrite_existing);
    fs::copy_file(dir_ / key, dir_ / "live.key", fs::copy_options::overwrite_existing);
  }

  fs::path dir_;
  ServerTlsFiles files_;
};

TEST_F(CertificateReloadTest, ReloadsChangedFilesAndKeepsTheOldOnABadPair) {
  absl::StatusOr<ServerCertificatePtr> first = ServerCertificate::Load(files_);
  ASSERT_TRUE(first.ok()) << first.status();
  std::vector<std::string> seen;
  CertificateReloader reloader("control", files_, *first,
                               [&](const ServerCertificatePtr& c) { seen.push_back(c->subject()); });
  EXPECT_EQ(reloader.Check(), CertificateReloader::Outcome::kUnchanged);
  EXPECT_TRUE(seen.empty());

  Install("b.pem", "b.key");
  EXPECT_EQ(reloader.Check(), CertificateReloader::Outcome::kReloaded);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "/CN=b");
  EXPECT_EQ(reloader.current()->cert_chain_pem(), ReadAll(dir_ / "b.pem"));

  Install("b.pem", "a.key");  // the key of the other certificate
  EXPECT_EQ(reloader.Check(), CertificateReloader::Outcome::kRefused);
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_EQ(reloader.current()->subject(), "/CN=b");

  fs::remove(dir_ / "live.pem");  // a rotation caught half-way
  EXPECT_EQ(reloader.Check(), CertificateReloader::Outcome::kRefused);
  EXPECT_EQ(reloader.current()->subject(), "/CN=b");
}

TEST_F(CertificateReloadTest, MirrorHoldsThePublishedPairPrivatelyAndCleansUp) {
  absl::StatusOr<ServerCertificatePtr> a = ServerCertificate::Load(files_);
  ASSERT_TRUE(a.ok()) << a.status();
  Install("b.pem", "b.key");
  absl::StatusOr<ServerCertificatePtr> b = ServerCertificate::Load(files_);
  ASSERT_TRUE(b.ok()) << b.status();

  std::string root;
  {
    absl::StatusOr<std::unique_ptr<CertificateMirror>> mirror =
        CertificateMirror::Create(dir_.string(), **a);
    ASSERT_TRUE(mirror.ok()) << mirror.status();
    CertificateMirror& m = **mirror;
    root = fs::path(m.cert_path()).parent_path().parent_path().string();
    struct stat st {};
    ASSERT_EQ(::stat(root.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);  // it holds a private key
    EXPECT_EQ(ReadAll(m.cert_path()), (*a)->cert_chain_pem());
    EXPECT_EQ(ReadAll(m.key_path()), (*a)->private_key_pem());
    EXPECT_EQ(m.ca_path(), "");

    ASSERT_TRUE(m.Publish(**b).ok());
    EXPECT_EQ(ReadAll(m.cert_path()), (*b)->cert_chain_pem());
    EXPECT_EQ(ReadAll(m.key_path()), (*b)->private_key_pem());
    ASSERT_TRUE(m.Publish(**a).ok());
    EXPECT_EQ(ReadAll(m.cert_path()), (*a)->cert_chain_pem());
    // gen-1 is gone, gen-2 (the one before current) is kept for a reader that was in it.
    EXPECT_FALSE(fs::exists(fs::path(root) / "gen-1"));
    EXPECT_TRUE(fs::exists(fs::path(root) / "gen-2"));
    EXPECT_TRUE(fs::exists(fs::path(root) / "gen-3"));
  }
  EXPECT_FALSE(fs::exists(root));
}

}  // namespace
}  // namespace wsgate::common::tls
