// Process-wide uniqueness of session ids. A session's id is its natural id where the route has
// one (pubsub: the session path parameter; room and external_client: the client id parameter),
// otherwise a generated "s-<worker>-<n>". When the id is already held by an open session (a
// second connection with the same client id), it gets a suffix: "<id>~2", "<id>~3", ... (the
// first free one). The first holder keeps the bare id.
//
// Thread-safe: one mutex, taken when a session is registered and when it ends, never per
// message.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

namespace wsgate::dataplane::sessions {

class SessionIdRegistry {
 public:
  // Returns `base`, or `base~N` with the smallest N >= 2 that is free, and holds it.
  std::string Claim(std::string_view base);
  void Release(const std::string& id);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::unordered_set<std::string> held_;
};

}  // namespace wsgate::dataplane::sessions
