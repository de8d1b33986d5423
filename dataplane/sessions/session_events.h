// Session life events (opened, closed, limit hit, backpressure) from the workers to any number
// of watchers (gRPC WatchSessions streams).
//
// Threading: thread-safe. Workers call Emit; a watcher's owner calls Pop from its own thread.
// A worker never waits for a watcher: every watcher has a bounded buffer, an event that does
// not fit is dropped and counted, and the next event that does fit carries that count
// (`dropped_before`). With nobody watching, Emit is never reached: workers check active() (one
// relaxed atomic load) before they even build the event.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/sessions/session_info.h"

namespace wsgate::dataplane::sessions {

struct SessionEvent {
  enum class Type { kOpened = 1, kClosed = 2, kLimitHit = 3, kBackpressure = 4 };
  Type type = Type::kOpened;
  UnixNanos time = 0;
  std::string session_id;
  std::string route;
  std::string remote_address;
  uint16_t close_code = 0;   // kClosed: what the client got or sent; 1006 for a drop
  std::string close_reason;  // kClosed
  std::string limit;         // kLimitHit: the limit's name (wsgate_limit_hits_total{limit})
  uint64_t dropped_before = 0;  // events lost to this watcher's full buffer just before this one
};

class EventWatcher {
 public:
  // `notify` is called (on the emitting thread, without any lock held) when an event arrives in
  // an empty buffer; it must be quick and must not call back into the hub.
  EventWatcher(std::string route, size_t capacity, std::function<void()> notify);

  const std::string& route() const { return route_; }
  // The oldest buffered event, or nullopt when none.
  std::optional<SessionEvent> Pop();
  // Events dropped since the watcher was created.
  uint64_t dropped_total() const;

 private:
  friend class SessionEventHub;
  void Push(const SessionEvent& event);

  const std::string route_;  // empty: every route
  const size_t capacity_;
  const std::function<void()> notify_;
  mutable std::mutex mu_;
  std::deque<SessionEvent> buffer_;
  uint64_t dropped_pending_ = 0;  // not yet reported in an event's dropped_before
  uint64_t dropped_total_ = 0;
};

class SessionEventHub {
 public:
  // Cheap check for the emitters: false when nobody watches.
  bool active() const { return watchers_count_.load(std::memory_order_relaxed) > 0; }
  // `route` empty: events of every route. `capacity` >= 1.
  std::shared_ptr<EventWatcher> Subscribe(std::string route, size_t capacity,
                                          std::function<void()> notify);
  void Unsubscribe(const std::shared_ptr<EventWatcher>& watcher);
  // Offers the event to every watcher whose route filter matches. Never blocks on a watcher
  // (a short mutex per watcher, held for a deque push).
  void Emit(const SessionEvent& event);

 private:
  std::atomic<int> watchers_count_{0};
  std::mutex mu_;
  std::vector<std::shared_ptr<EventWatcher>> watchers_;
};

}  // namespace wsgate::dataplane::sessions
