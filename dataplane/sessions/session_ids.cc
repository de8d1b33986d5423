#include "dataplane/sessions/session_ids.h"


namespace wsgate::dataplane::sessions {

std::string SessionIdRegistry::Claim(std::string_view base) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string id(base);
  for (int n = 2; held_.count(id) != 0; ++n) id = std::string(base) + "~" + std::to_string(n);
  held_.insert(id);
  return id;
}

void SessionIdRegistry::Release(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  held_.erase(id);
}

size_t SessionIdRegistry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_.size();
}

}  // namespace wsgate::dataplane::sessions
