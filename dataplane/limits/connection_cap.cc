#include "dataplane/limits/connection_cap.h"

#include <sys/resource.h>

#include <algorithm>

namespace wsgate::dataplane::limits {

ConnectionCap::ConnectionCap(int64_t max) : max_(max > 0 ? max : DefaultFromDescriptorLimit()) {}

int64_t ConnectionCap::DefaultFor(uint64_t descriptor_limit) {
  const uint64_t reserve = std::clamp<uint64_t>(descriptor_limit / 8, 32, 1024);
  if (descriptor_limit <= reserve + 2) return 1;
  return static_cast<int64_t>((descriptor_limit - reserve) / 2);
}

int64_t ConnectionCap::DefaultFromDescriptorLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
    return DefaultFor(1u << 20);
  }
  return DefaultFor(rl.rlim_cur);
}

}  // namespace wsgate::dataplane::limits
