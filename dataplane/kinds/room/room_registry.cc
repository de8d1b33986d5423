#include "dataplane/kinds/room/room_registry.h"

#include <utility>

namespace wsgate::dataplane::transport {

bool RoomRegistry::TryJoin(const std::string& route, const std::string& room,
                           const std::string& client_id, const std::string& token,
                           std::function<void()> evict, bool replace) {
  std::function<void()> evict_old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, added] = members_.try_emplace({route, room, client_id}, Member{token, evict});
    if (added) {
      ++per_route_[route];
      return true;
    }
    if (!replace) return false;
    evict_old = std::move(it->second.evict);
    it->second = Member{token, std::move(evict)};
  }
  if (evict_old) evict_old();
  return true;
}

void RoomRegistry::Leave(const std::string& route, const std::string& room,
                         const std::string& client_id, const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = members_.find({route, room, client_id});
  if (found == members_.end() || found->second.token != token) return;
  members_.erase(found);
  auto it = per_route_.find(route);
  if (it != per_route_.end() && --it->second <= 0) per_route_.erase(it);
}

std::map<std::string, int64_t> RoomRegistry::MembersByRoute() const {
  std::lock_guard<std::mutex> lock(mu_);
  return per_route_;
}

}  // namespace wsgate::dataplane::transport
