// The Redis URL parser of the message bus (dataplane/bus/redis_url.h). Invariants: an endpoint
// that parses has a host without brackets, a non-zero port and a non-negative database.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dataplane/bus/redis_url.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto endpoint = wsgate::dataplane::bus::ParseRedisUrl(input);
  if (endpoint.ok()) {
    FUZZ_CHECK(!endpoint->host.empty());
    FUZZ_CHECK(endpoint->host.front() != '[');
    FUZZ_CHECK(endpoint->port != 0);
    FUZZ_CHECK(endpoint->db >= 0);
  } else {
    FUZZ_CHECK(!endpoint.status().message().empty());
  }
  return 0;
}
