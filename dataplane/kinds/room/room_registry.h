// Kind `room`: who is in which room, shared by the workers of a data plane (one per process,
// created by StartDataPlane and handed to every worker's FanoutKinds).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace wsgate::dataplane::transport {

// Who is in which room in this process: the duplicate client_id check (409) and the member
// counts of wsgate_room_members. Thread-safe.
class RoomRegistry {
 public:
  // Adds member `token` as (route, room, client_id). When that id is already a member: false
  // (policy reject), or with `replace` the old member's `evict` is called (outside the lock) and
  // the new one takes its place. `evict` must be thread-safe (it posts to the member's worker).
  bool TryJoin(const std::string& route, const std::string& room, const std::string& client_id,
               const std::string& token, std::function<void()> evict, bool replace);
  // Only the member that holds the entry (`token`) removes it: an evicted member leaving later
  // does not remove its replacement.
  void Leave(const std::string& route, const std::string& room, const std::string& client_id,
             const std::string& token);
  // Members per route name (routes with none are absent).
  std::map<std::string, int64_t> MembersByRoute() const;

 private:
  mutable std::mutex mu_;
  struct Member {
    std::string token;
    std::function<void()> evict;
  };
  std::map<std::tuple<std::string, std::string, std::string>, Member> members_;
  std::map<std::string, int64_t> per_route_;
};

}  // namespace wsgate::dataplane::transport
