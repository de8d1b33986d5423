// The persisted routes of the embedded config store: <dir>/routes.json (a StoredState message
// in protobuf's JSON mapping). Writes are atomic: temp file in the same dir, fsync, rename, fsync
// of the directory. Not thread-safe; the ConfigStore serializes calls.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "wsgate/v1/config.pb.h"

namespace wsgate::controlplane {

class StateFile {
 public:
  explicit StateFile(std::string dir);
  const std::string& path() const { return path_; }

  // nullopt: no state file yet. An unreadable or corrupt file (or invalid routes in it) is an
  // error naming the path; the file is never modified by Load.
  absl::StatusOr<std::optional<wsgate::v1::StoredState>> Load() const;
  // Creates the directory if needed.
  absl::Status Save(const wsgate::v1::StoredState& state) const;

 private:
  std::string dir_;
  std::string path_;
};

}  // namespace wsgate::controlplane
