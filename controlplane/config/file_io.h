// Small POSIX file helpers for the loader and the state file. Errors name the path.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace wsgate::controlplane {

// The whole file. NOT_FOUND when it does not exist; FAILED_PRECONDITION when it is not a regular
// file (a directory, say); UNAVAILABLE when it cannot be opened or read (permissions, I/O).
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Replaces `path` with `data` atomically: a temp file in the same directory, written, fsynced,
// renamed over `path`, then the directory fsynced so the rename itself survives a crash. On error
// the temp file is removed and `path` is untouched. The file gets mode 0600 (it may hold header
// values such as credentials).
absl::Status WriteFileAtomically(const std::string& path, const std::string& data);

}  // namespace wsgate::controlplane
