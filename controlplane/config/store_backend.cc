#include "controlplane/config/store_backend.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "controlplane/config/state_file.h"

namespace wsgate::controlplane {
namespace {

class StateFileBackend final : public StoreBackend {
 public:
  explicit StateFileBackend(const std::string& dir) : file_(dir) {}
  std::string origin() const override { return absl::StrCat("state file ", file_.path()); }
  absl::StatusOr<std::optional<wsgate::v1::StoredState>> Load() override { return file_.Load(); }
  absl::StatusOr<bool> Save(const wsgate::v1::StoredState& state, uint64_t) override {
    if (auto s = file_.Save(state); !s.ok()) return s;
    return true;
  }

 private:
  StateFile file_;
};

}  // namespace

std::unique_ptr<StoreBackend> MakeStateFileBackend(const std::string& state_dir) {
  return std::make_unique<StateFileBackend>(state_dir);
}

}  // namespace wsgate::controlplane
