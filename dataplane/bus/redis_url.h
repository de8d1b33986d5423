// REDIS_URL parsing: a pure function, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace wsgate::dataplane::bus {

struct RedisEndpoint {
  std::string host;  // a name or an address; IPv6 without the brackets
  uint16_t port = 6379;
  std::string username;  // empty: AUTH with the password only (or no AUTH)
  std::string password;  // empty: no AUTH
  int db = 0;            // SELECT on the publish connection when not 0
};

// Parses `redis://[[username]:password@]host[:port][/db]` (the form the seed's REDIS_URL uses,
// and the redis-rs / redis-py one). Username and password may be percent-encoded; IPv6 hosts go
// in brackets. Errors are INVALID_ARGUMENT with a message that names the part at fault
// (`rediss://` and `unix://` are refused: TLS and Unix sockets are not supported yet).
absl::StatusOr<RedisEndpoint> ParseRedisUrl(std::string_view url);

}  // namespace wsgate::dataplane::bus
