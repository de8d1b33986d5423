#include "dataplane/sessions/session_events.h"

#include <algorithm>
#include <utility>

namespace wsgate::dataplane::sessions {

EventWatcher::EventWatcher(std::string route, size_t capacity, std::function<void()> notify)
    : route_(std::move(route)), capacity_(std::max<size_t>(capacity, 1)), notify_(std::move(notify)) {}

void EventWatcher::Push(const SessionEvent& event) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (buffer_.size() >= capacity_) {
      ++dropped_pending_;
      ++dropped_total_;
      return;
    }
    was_empty = buffer_.empty();
    buffer_.push_back(event);
    buffer_.back().dropped_before = dropped_pending_;
    dropped_pending_ = 0;
  }
  if (was_empty && notify_) notify_();
}

std::optional<SessionEvent> EventWatcher::Pop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (buffer_.empty()) return std::nullopt;
  SessionEvent e = std::move(buffer_.front());
  buffer_.pop_front();
  return e;
}

uint64_t EventWatcher::dropped_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_total_;
}

std::shared_ptr<EventWatcher> SessionEventHub::Subscribe(std::string route, size_t capacity,
                                                         std::function<void()> notify) {
  auto w = std::make_shared<EventWatcher>(std::move(route), capacity, std::move(notify));
  std::lock_guard<std::mutex> lock(mu_);
  watchers_.push_back(w);
  watchers_count_.store(static_cast<int>(watchers_.size()), std::memory_order_relaxed);
  return w;
}

void SessionEventHub::Unsubscribe(const std::shared_ptr<EventWatcher>& watcher) {
  std::lock_guard<std::mutex> lock(mu_);
  watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), watcher), watchers_.end());
  watchers_count_.store(static_cast<int>(watchers_.size()), std::memory_order_relaxed);
}

void SessionEventHub::Emit(const SessionEvent& event) {
  // Copy the matching watchers so that their notify runs without the hub's lock.
  std::vector<std::shared_ptr<EventWatcher>> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& w : watchers_) {
      if (w->route().empty() || w->route() == event.route) targets.push_back(w);
    }
  }
  for (const auto& w : targets) w->Push(event);
}

}  // namespace wsgate::dataplane::sessions
