#include "controlplane/config/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace wsgate::controlplane {
namespace {

std::string Errno() { return std::strerror(errno); }

// Closes the fd on every path out of a function.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports the error (close can report a deferred write error).
  bool Close() {
    int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  // O_NONBLOCK: a FIFO at the path must not hang the caller; it is refused below.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": does not exist"));
    return absl::UnavailableError(absl::StrCat(path, ": cannot open: ", Errno()));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return absl::UnavailableError(absl::StrCat(path, ": cannot stat: ", Errno()));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
  }
  std::string data;
  data.reserve(static_cast<size_t>(st.st_size));
  std::vector<char> buf(64 * 1024);
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat(path, ": cannot read: ", Errno()));
    }
    if (n == 0) break;
    data.append(buf.data(), static_cast<size_t>(n));
  }
  return data;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& data) {
  const std::string dir = DirOf(path);
  std::string tmp = absl::StrCat(path, ".tmp-XXXXXX");
  Fd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (fd.get() < 0) {
    return absl::UnavailableError(absl::StrCat(path, ": cannot create a temp file: ", Errno()));
  }
  auto fail = [&](const char* what) {
    std::string msg = absl::StrCat(path, ": ", what, ": ", Errno());
    ::unlink(tmp.c_str());
    return absl::UnavailableError(msg);
  };
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write the temp file");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("cannot fsync the temp file");
  if (!fd.Close()) return fail("cannot close the temp file");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename the temp file");
  // Without this the rename may not survive a crash even though the data did.
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() < 0 || ::fsync(dfd.get()) != 0) {
    // The new file is in place; only its durability is in doubt. Report it, since the caller
    // promises durability before acknowledging.
    return absl::UnavailableError(
        absl::StrCat(path, ": written, but cannot fsync the directory ", dir, ": ", Errno()));
  }
  return absl::OkStatus();
}

}  // namespace wsgate::controlplane
